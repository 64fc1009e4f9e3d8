"""What `strata runs ...` and `strata reproduce` print: rich tables of runs from the store."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from strata.errors import StrataError
from strata.track.store import Store

if TYPE_CHECKING:
    from strata.experiments import Reproduction

KEY_METRICS = ("test_accuracy", "test_f1", "test_r2", "test_rmse", "test_accuracy_mean", "test_r2_mean", "val_loss")


def _console() -> Any:
    from strata._console import console

    return console()


def _table(title: str, *columns: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 or not name.startswith(("test", "val", "run ")) else "right")
    return table


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M") if ms else ""


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "—" if value is None else str(value)


def print_runs(uri: str | None, experiment: str | None, limit: int) -> None:
    store = Store.open(uri)
    runs = store.all_runs(experiment, limit=limit)
    names = {e.experiment_id: e.name for e in store.client.search_experiments()}
    shown = [m for m in KEY_METRICS if any(m in r.data.metrics for r in runs)][:3]
    table = _table(f"Runs in {store.uri}", "run", "started", "experiment", "name", "status", *shown)
    for run in runs:
        child = "↳ " if "mlflow.parentRunId" in run.data.tags else ""
        table.add_row(run.info.run_id[:8], _when(run.info.start_time), names.get(run.info.experiment_id, "?"),
                      child + run.data.tags.get("mlflow.runName", ""), run.info.status,
                      *(_fmt(run.data.metrics.get(m)) for m in shown))  # fmt: skip
    _console().print(table if runs else f"no runs in {store.uri}")


def print_run(uri: str | None, ref: str) -> None:
    store = Store.open(uri)
    run = store.run(ref)
    console = _console()
    info, tags = run.info, run.data.tags
    console.print(f"[bold]run {info.run_id}[/bold]  {tags.get('mlflow.runName', '')}  {info.status}")
    console.print(f"experiment '{store.client.get_experiment(info.experiment_id).name}', "
                  f"started {_when(info.start_time)}, ended {_when(info.end_time)}")  # fmt: skip
    if "mlflow.parentRunId" in tags:
        console.print(f"part of run {tags['mlflow.parentRunId']}")
    metrics = _table("Metrics (last value)", "metric", "value")
    for key, value in sorted(run.data.metrics.items()):
        metrics.add_row(key, _fmt(value))
    fingerprint = _table("Fingerprint and environment", "tag", "value")
    for key, value in sorted(tags.items()):
        if key.startswith(("strata.", "mlflow.source.git")):
            fingerprint.add_row(key, value)
    params = _table("Params (the resolved recipe)", "key", "value")
    for key, value in sorted(run.data.params.items()):
        params.add_row(key, value)
    for table in (metrics, fingerprint, params):
        console.print(table)
    artifacts = [a.path for a in store.client.list_artifacts(info.run_id)]
    console.print("artifacts: " + (", ".join(artifacts) or "none"))


def print_comparison(uri: str | None, refs: list[str]) -> None:
    if len(refs) < 2:
        raise StrataError("runs compare: give at least two runs")
    store = Store.open(uri)
    runs = [store.run(r) for r in refs]
    heads = [f"run {r.info.run_id[:8]}" for r in runs]
    params = _table("Params that differ", "param", *heads)
    for key in sorted(set().union(*(r.data.params for r in runs))):
        values = [r.data.params.get(key) for r in runs]
        if len(set(values)) > 1:
            params.add_row(key, *(_fmt(v) for v in values))
    metrics = _table("Metrics (★ best)", "metric", *heads)
    for key in sorted(set().union(*(r.data.metrics for r in runs))):
        values = [r.data.metrics.get(key) for r in runs]
        lower = _lower_is_better(key)
        metrics.add_row(key, *([_fmt(v) for v in values] if lower is None else _marked(values, lower)))
    console = _console()
    console.print(params if params.row_count else "no params differ")
    console.print(metrics)


def _lower_is_better(key: str) -> bool | None:
    """Whether a lower value of a logged metric is better; None where neither is (the learning rate,
    a spread over seeds). A seed summary (test_rmse_mean, its interval) goes the way of its metric."""
    from strata.training.callbacks import better_is_lower

    if key == "lr" or key.endswith("_std"):
        return None
    return better_is_lower(re.sub(r"_(mean|ci_low|ci_high)$", "", key))


def _marked(values: list[float | None], lower: bool) -> list[str]:
    known = [v for v in values if v is not None]
    if len(set(known)) < 2:
        return [_fmt(v) for v in values]
    best = min(known) if lower else max(known)
    return [_fmt(v) + (" ★" if v == best else "") for v in values]


def print_reproduction(report: Reproduction) -> None:
    table = _table(f"Run {report.original[:8]} trained again as {str(report.rerun)[:8]}", "value", "recorded",
                   "reproduced", "difference", "same")  # fmt: skip
    for column in table.columns:
        column.overflow = "fold"  # a differing hash or last digit must show, not end in an ellipsis
    for what, then, now, same in report.rows:
        table.add_row(what, *_reproduced(then, now, same))
    console = _console()
    console.print(table)
    failing = [what for what, *_, same in report.rows if not same]
    tolerated = [what for what, then, now, same in report.rows if same and then != now]
    if failing:
        console.print(f"[red]not reproduced: {len(failing)} of {len(report.rows)} values differ "
                      f"({', '.join(failing[:6])})[/red]")  # fmt: skip
    elif tolerated:
        console.print(f"reproduced within tolerance {report.tolerance:g}: {len(tolerated)} of {len(report.rows)} "
                      f"values differ ({', '.join(tolerated[:6])})")  # fmt: skip
    else:
        console.print("reproduced: every metric and the weights are identical")


def _reproduced(then: Any, now: Any, same: bool) -> tuple[str, str, str, str]:
    """(recorded, reproduced, difference, same) cells of one value: equal values are shown short,
    differing ones in full (a last-bits difference must not look equal), with their difference."""
    if then == now:
        return _fmt(then), _fmt(now), "", "yes"
    numbers = isinstance(then, float) and isinstance(now, float)
    delta = f"{now - then:+.3g}" if numbers else ""
    status = "differs (tolerated)" if same else "[red]NO[/red]"
    return _full(then), _full(now), delta, status


def _full(value: Any) -> str:
    return repr(value) if isinstance(value, float) else _fmt(value)
