"""What Strata prints: notes, and metric tables. Silent with quiet=True."""

from __future__ import annotations

from typing import Any

from strata.evaluation.metrics import HEADLINE


def console() -> Any:
    """A rich console; written to a pipe or a file, tables get 160 columns instead of rich's 80."""
    import sys

    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


class Reporter:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            self._console = console()
        return self._console

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def notes(self, lines: Any) -> None:
        for line in lines:
            self.note(line)

    def metrics(self, by_split: dict[str, dict[str, Any]], classes: list | None = None) -> None:
        """Headline metrics side by side per split; per-class scores and the confusion matrix of the last."""
        if self.quiet or not by_split:
            return
        for split, values in by_split.items():
            if "error" in values:
                self.console.print(f"[red]{split}: {values['error']}[/red]")
        self.console.print(metrics_table(by_split))
        last_name, last = list(by_split.items())[-1]
        if "per_class" in last:
            self.console.print(per_class_table(last["per_class"], last_name))
        if "per_target" in last:
            self.console.print(metrics_table(last["per_target"], title=f"Per target ({last_name})"))
        if "baselines" in last:
            compared = {"model": last, **last["baselines"]}
            self.console.print(metrics_table(compared, title=f"Forecast against the baselines ({last_name})"))
        if "confusion_matrix" in last and classes and len(classes) <= 12:
            self.console.print(confusion_table(last["confusion_matrix"], classes, last_name))

    def diagnosis(self, found: Any) -> None:
        """The learning-curve verdict and what to try next."""
        if self.quiet:
            return
        colour = {"well fit": "green", "unstable": "red"}.get(found.verdict, "yellow")
        self.console.print(f"diagnosis: [{colour}]{found.verdict}[/{colour}]: {found.detail}")
        for tip in found.suggestions:
            self.console.print(f"  try: {tip}")

    def spread(self, summary: dict[str, dict[str, float]], part: str, over: str = "seeds") -> None:
        """Mean, standard deviation and 95% confidence interval of each metric over seeds (or folds)."""
        if self.quiet or not summary:
            return
        from rich.table import Table

        n = next(iter(summary.values()))["n"]
        table = Table(title=f"{part} metrics over {n} {over} (95% CI, t-distribution)", title_justify="left")
        for col in ("metric", "mean", "std", "95% CI"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for name, s in summary.items():
            table.add_row(name, f"{s['mean']:.4f}", f"{s['std']:.4f}", f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}]")
        self.console.print(table)


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def metrics_table(by_split: dict[str, dict[str, Any]], title: str = "Metrics") -> Any:
    from rich.table import Table

    with_ci = next((v for v in by_split.values() if v.get("ci")), None)
    if with_ci:
        title += f" (\\[low, high]: {with_ci['ci_level']:.0%} bootstrap interval, {with_ci['bootstrap']} resamples)"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for split in by_split:
        table.add_column(split, justify="right")
    names = [m for m in HEADLINE if any(m in v for v in by_split.values())]
    for name in names:
        table.add_row(name, *(with_interval(v, name) for v in by_split.values()))
    return table


def with_interval(values: dict[str, Any], name: str) -> str:
    """'0.9620 [0.9410, 0.9790]' when the metric has a bootstrap interval, else the value alone."""
    value, interval = values.get(name), values.get("ci", {}).get(name)
    if value is None or not interval:
        return _fmt(value)
    return f"{value:.4f} \\[{interval[0]:.4f}, {interval[1]:.4f}]"  # \\[: a bracket, not rich markup


def per_class_table(per_class: dict[str, dict[str, Any]], split: str) -> Any:
    from rich.table import Table

    table = Table(title=f"Per class ({split})", title_justify="left")
    for col in ("class", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, row in per_class.items():
        table.add_row(name, *(_fmt(row[k]) for k in ("precision", "recall", "f1", "support")))
    return table


def confusion_table(matrix: list[list[int]], classes: list, split: str) -> Any:
    from rich.table import Table

    table = Table(title=f"Confusion matrix ({split}; rows = true, columns = predicted)", title_justify="left")
    table.add_column("")
    for c in classes:
        table.add_column(str(c), justify="right")
    for c, row in zip(classes, matrix, strict=True):
        table.add_row(str(c), *(str(v) for v in row))
    return table
