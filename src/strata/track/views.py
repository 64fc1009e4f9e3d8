"""What `strata runs ...` and `strata reproduce` print: rich tables of runs from the store."""

from __future__ import annotations

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
    from strata.training.callbacks import better_is_lower

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
        marked = [_fmt(v) for v in values] if key == "lr" else _marked(values, lower=better_is_lower(key))
        metrics.add_row(key, *marked)
    console = _console()
    console.print(params if params.row_count else "no params differ")
    console.print(metrics)


def _marked(values: list[float | None], lower: bool) -> list[str]:
    known = [v for v in values if v is not None]
    if len(set(known)) < 2:
        return [_fmt(v) for v in values]
    best = min(known) if lower else max(known)
    return [_fmt(v) + (" ★" if v == best else "") for v in values]


def print_reproduction(report: Reproduction) -> None:
    table = _table(f"Run {report.original[:8]} trained again as {str(report.rerun)[:8]}", "value", "recorded",
                   "reproduced", "same")  # fmt: skip
    for what, then, now, same in report.rows:
        table.add_row(what, _fmt(then), _fmt(now), "yes" if same else "[red]NO[/red]")
    console = _console()
    console.print(table)
    differing = [what for what, *_, same in report.rows if not same]
    if differing:
        console.print(f"[red]not reproduced: {len(differing)} of {len(report.rows)} values differ "
                      f"({', '.join(differing[:6])})[/red]")  # fmt: skip
    else:
        console.print("reproduced: every metric and the weights are identical")
