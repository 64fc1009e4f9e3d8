"""Hyperparameter search: `strata tune recipe.yaml` / `strata.tune(recipe)`.

The recipe's `tune:` section names a search space over any recipe key; Optuna proposes values
(grid, random or TPE), each trial is an ordinary `strata.train` of the recipe with those values (an
MLflow child run under the study's parent run, a bundle under `<out>/trials/<n>`), pruned early from
its per-epoch validation metric when a pruner is set. The study lives in SQLite by default, so an
interrupted search resumes, and `jobs` worker processes (or machines, with a shared database
`--storage`) work on one study. The best trial's resolved recipe is written to `<out>/best.yaml`
and its bundle copied to `<out>/best/`, with the study's plots.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import RecipeError, TrainingError

if TYPE_CHECKING:
    import pandas as pd

    from strata.recipe import Recipe
    from strata.training.callbacks import Callback


@dataclass
class TuneResult:
    best_value: float
    best_params: dict[str, Any]
    best_recipe: Recipe
    summary: dict[str, Any]  # complete, pruned and failed trial counts, the direction, the metric, the best
    path: Path  # the output folder: best.yaml, best/, trials/, plots
    study_name: str


def _pruning(report: Any, metric: str) -> Callback:
    """Per-epoch: hand the monitored validation metric to Optuna, which may stop the trial."""
    from strata.training.callbacks import Callback

    class Prune(Callback):
        def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
            if metric in logs:
                report(int(logs["epoch"]), float(logs[metric]))

    return Prune()


def trial_value(history: list[dict[str, float]], best_epoch: int | None, metric: str) -> float:
    """The metric at the epoch whose weights the run kept (early stopping), else at the last epoch."""
    row = history[best_epoch - 1] if best_epoch else history[-1]
    if metric not in row:
        measured = sorted(k for k in row if k.startswith("val_") or k == "train_loss")
        raise RecipeError(f"tune.metric: {metric!r} is not measured each epoch by this run; measured: "
                          f"{', '.join(measured)} (a validation split is needed for val_ metrics)")  # fmt: skip
    return float(row[metric])


def objective(
    trial: Any, raw: dict[str, Any], data: Any, out: str, parent: str | None, metric: str, cv: int | None
) -> float:
    """One trial: the recipe with the trial's values, trained (or cross-validated) like any run.
    A top-level function of plain arguments, so that worker processes can receive it."""
    from strata.api import train
    from strata.recipe import Recipe
    from strata.tuning.space import suggest
    from strata.tuning.study import reporter

    base = Recipe.from_dict(raw)
    params = suggest(trial, base.tune.space)
    recipe = base.override({**params, "tune": None, "name": f"{base.display_name}-trial-{trial.number}"})
    trial.set_user_attr("params", params)
    if cv:
        from strata.crossval import cross_validate

        result = cross_validate(recipe, data, folds=cv)
        name = metric.removeprefix("val_")
        if name not in result.summary:
            raise RecipeError(
                f"tune.metric: with tune.cv the metric is a held-out one, e.g. val_accuracy or "
                f"val_rmse; {metric!r} gives {name!r}, not one of {', '.join(result.summary)}"
            )
        return float(result.summary[name]["mean"])
    tags = {"strata.trial": str(trial.number), "strata.study": raw.get("name") or recipe.display_name}
    done = train(recipe, data, out=Path(out) / "trials" / str(trial.number), quiet=True, parent_run=parent,
                 run_tags=tags, callbacks=[_pruning(reporter(trial), metric)])  # fmt: skip
    if done.run_id:
        trial.set_user_attr("run_id", done.run_id)
    return trial_value(done.history, done.model.meta.get("best_epoch"), metric)


def tune(
    recipe: Recipe | dict[str, Any] | str | Path,
    data: pd.DataFrame | str | Path | None = None,
    *,
    jobs: int = 1,
    storage: str | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
) -> TuneResult:
    """Search the recipe's `tune.space`; see the module docstring. `jobs` > 1 needs `data` to be a
    file path or the recipe's own source (each worker process reads it)."""
    from strata import api
    from strata._console import Reporter
    from strata.tuning.space import check_space
    from strata.tuning.study import open_study, run

    recipe = api.as_recipe(recipe)
    cfg = recipe.tune
    if cfg is None:
        raise RecipeError("tune: the recipe has no tune section; add tune.space (see docs/tuning.md)")
    check_space(cfg.space, recipe)  # every key and range, before any trial
    if jobs < 1:
        raise RecipeError(f"--jobs {jobs}: expected at least 1 worker")
    check_metric(recipe, data)
    folder = Path(out) if out is not None else Path("models") / f"{recipe.display_name}-tune"
    name = recipe.display_name
    study = open_study(name, storage, cfg, cfg.seed if cfg.seed is not None else recipe.seed)
    parent = _parent_run(recipe, name, api.data_source(recipe, data)) if recipe.track.enabled else None
    report = Reporter(quiet)
    raw = recipe.to_dict()
    work = partial(objective, raw=raw, data=_portable(data), out=str(folder), parent=parent.id if parent else None,
                   metric=cfg.metric, cv=cfg.cv)  # fmt: skip
    try:
        # a diverging trial (too high a learning rate) is a failed trial, not the end of the search
        with _TrialBar(report, cfg.trial_count) as bar:
            run(study, work, cfg, jobs=jobs, progress=bar, catch=(TrainingError,))
        result = _finish(recipe, study, folder, parent, report, data)
    except BaseException:
        if parent is not None:
            parent.finish("FAILED")
        raise
    return result


def check_metric(recipe: Recipe, data: Any) -> None:
    """tune.metric must be one the trials will measure (checked before any trial, so a typo does not
    cost a trial nor leave a failed study behind under the recipe's name)."""
    from strata.api import _measured_each_epoch

    cfg = recipe.tune
    if cfg.cv and cfg.pruner != "none":
        raise RecipeError("tune.pruner: a cross-validated trial (tune.cv) has no per-epoch value to prune on; "
                          "set pruner: none or remove tune.cv")  # fmt: skip
    measured = _measured_each_epoch(recipe, data)
    if cfg.cv:
        from strata.evaluation.metrics import HEADLINE

        measured = [f"val_{m}" for m in HEADLINE]
    if cfg.metric not in measured:
        from strata.errors import did_you_mean

        hint = did_you_mean(cfg.metric, measured)
        raise RecipeError(f"tune.metric: {cfg.metric!r} is not measured for this recipe{hint}; "
                          f"measured: {', '.join(measured)}")  # fmt: skip


def _portable(data: Any) -> Any:
    return str(Path(data).resolve()) if isinstance(data, str | Path) else data


class _TrialBar:
    """A progress bar of the study: trials done of the budget, the best value, the pruned count; and
    one line per finished trial above it."""

    def __init__(self, report: Any, total: int):
        self.report, self.total, self.bar = report, total, None

    def __enter__(self) -> _TrialBar:
        if not self.report.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("tuning"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
            self.bar = Progress(*columns, TimeElapsedColumn(), console=self.report.console)
            self.task = self.bar.add_task("", total=self.total)
            self.bar.start()
        return self

    def __exit__(self, *_: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, study: Any, trial: Any) -> None:
        import optuna

        states = [t.state for t in study.trials]
        done = sum(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states)
        pruned = sum(s == optuna.trial.TrialState.PRUNED for s in states)
        best = f"{study.best_value:.5g}" if _has_best(study) else "-"
        value = f"{trial.value:.5g}" if trial.value is not None else trial.state.name.lower()
        if self.bar is None:
            return
        self.bar.console.print(f"trial {trial.number}: {value}")
        self.bar.update(self.task, completed=min(done, self.total), description=f"best {best}, {pruned} pruned")


def _has_best(study: Any) -> bool:
    try:
        study.best_value  # noqa: B018 - raises while no trial is complete
    except ValueError:
        return False
    return True


def _parent_run(recipe: Recipe, name: str, source: str) -> Any:
    from strata import __version__
    from strata.track.run import TrackedRun
    from strata.track.store import Store

    store = Store.open(recipe.track.uri)
    tags = {"strata.version": __version__, "strata.data_source": source, "strata.kind": "tune",
            **recipe.track.tags}  # fmt: skip
    run = TrackedRun.start(store, recipe.track.experiment or recipe.display_name, f"{name}-tune", tags, None)
    run.log_params({f"tune.{k}": v for k, v in recipe.flat().items() if k.startswith("tune.")})
    return run


def _finish(recipe: Recipe, study: Any, folder: Path, parent: Any, report: Any, data: Any) -> TuneResult:
    """best.yaml, the best bundle with the study's plots beside it, and the parent run's summary."""
    from strata._files import write_atomically
    from strata.tuning.study import plots, summary

    found = summary(study)
    if found.get("best_value") is None:
        raise RecipeError("tune: no trial completed (all failed or were pruned); see the runs' errors")
    best_recipe = recipe.override({**found["best_params"], "tune": None})
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / "best.yaml", best_recipe.to_yaml())
    best_trial = found["best_trial"]
    source = folder / "trials" / str(best_trial)
    if recipe.tune.cv and not source.exists():  # cross-validated trials keep no bundle: train the best once
        from strata.api import train

        train(best_recipe, data, out=source, quiet=True, parent_run=parent.id if parent else None)
    images = plots(study)
    for file, png in images.items():
        write_atomically(folder / file, png)
    if source.exists():
        target = folder / "best"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
        for file, png in images.items():
            (target / file).write_bytes(png)
        from strata.evaluation.report import write

        write(target, target / "report.html")  # the report again, now with the search's plots
    if parent is not None:
        parent.log_metrics({f"best_{recipe.tune.metric}": found["best_value"],
                            **{f"trials_{k}": found[k] for k in ("complete", "pruned", "failed")}})  # fmt: skip
        parent.set_tags({"strata.best_trial": str(best_trial), **{f"strata.best.{k}": str(v)
                        for k, v in found["best_params"].items()}})  # fmt: skip
        parent.log_artifacts(folder / "best.yaml")
        for file in images:
            parent.log_artifacts(folder / file)
        parent.finish()
    report.note(f"best trial {best_trial}: {recipe.tune.metric} {found['best_value']:.5g} with "
                + ", ".join(f"{k}={v}" for k, v in found["best_params"].items()))  # fmt: skip
    report.note(f"best recipe: {folder / 'best.yaml'}; its bundle: {folder / 'best'}")
    return TuneResult(found["best_value"], found["best_params"], best_recipe, found, folder, study.study_name)
