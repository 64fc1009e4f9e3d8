"""The Python API: `train` a recipe, `load` a bundle or a registered model. The CLI calls these.

>>> import strata
>>> result = strata.train({"data": {"dataset": "iris", "target": "species"},
...                        "train": {"epochs": 30}, "track": False}, quiet=True)
>>> result.metrics["test"]["accuracy"] > 0.8
True
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import RecipeError

if TYPE_CHECKING:
    import pandas as pd

    from strata.bundle import TrainedModel
    from strata.recipe import Recipe
    from strata.track.run import TrackedRun
    from strata.training.callbacks import Callback
    from strata.training.lr_finder import RangeTest


@dataclass
class TrainResult:
    model: TrainedModel
    metrics: dict[str, dict[str, Any]]  # {"val": {...}, "test": {...}}
    history: list[dict[str, float]]
    path: Path | None  # where the bundle was written, if it was
    run_id: str | None = None  # the MLflow run, when tracked


def as_recipe(recipe: Recipe | dict[str, Any] | str | Path) -> Recipe:
    from strata.recipe import Recipe

    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    if isinstance(recipe, str | Path):
        return Recipe.from_yaml(recipe)
    raise RecipeError(f"recipe must be a Recipe, a dict or a YAML path, got {type(recipe).__name__}")


def data_source(recipe: Recipe, data: Any) -> str:
    """Where the training table comes from, as recorded with the run: file:, dataset: or dataframe."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return "dataframe"
    if isinstance(data, str | Path):
        return f"file:{Path(data).resolve()}"
    if recipe.data.path:
        return f"file:{Path(recipe.data.path).resolve()}"
    if recipe.data.images:
        return f"images:{Path(recipe.data.images).resolve()}"
    return f"dataset:{recipe.data.dataset}" if recipe.data.dataset else "none"


def train(
    recipe: Recipe | dict[str, Any] | str | Path,
    data: pd.DataFrame | str | Path | None = None,
    *,
    out: str | Path | None = None,
    quiet: bool = False,
    callbacks: list[Callback] | None = None,
    parent_run: str | None = None,
    run_tags: dict[str, str] | None = None,
) -> TrainResult:
    """Train what `recipe` describes. `data` (a DataFrame or file) replaces the recipe's data source.

    The bundle is written to `out` when given (the CLI defaults it to `models/<name>`). Unless the
    recipe says `track: false`, the run is logged to MLflow (`parent_run` nests it under another run).
    """
    from strata.bundle import check_destination

    recipe = as_recipe(recipe)
    if out is not None:
        check_destination(Path(out))  # before the work, not after it
    source = data_source(recipe, data)
    run = _start_run(recipe, source, parent_run, run_tags or {}) if recipe.track.enabled else None
    try:
        return _train(recipe, data, source, Path(out) if out is not None else None, quiet, callbacks or [], run)
    except BaseException:
        if run is not None:
            with contextlib.suppress(Exception):  # the original error matters more
                run.finish("FAILED")
        raise


def _train(
    recipe: Recipe,
    data: Any,
    source: str,
    out: Path | None,
    quiet: bool,
    callbacks: list[Callback],
    run: TrackedRun | None,
) -> TrainResult:
    from strata import workflow
    from strata._console import Reporter
    from strata.bundle import TrainedModel
    from strata.data.sources import load_frame

    report = Reporter(quiet)
    frame = load_frame(recipe.data, data)
    prep = workflow.prepare(recipe, frame)
    report.note(f"target {', '.join(recipe.data.targets)}: {prep.task} ({prep.why})")
    report.notes(f"  {note}" for note in _shown(prep.pipeline.notes))
    extra = [*callbacks, *([run.epoch_logger()] if run else [])]
    if recipe.track.tensorboard:
        extra.append(_tensorboard(recipe, run))
    fitted = workflow.fit(recipe, prep, quiet, extra)
    report.notes(f"transfer: {note}" for note in fitted.notes)
    meta = workflow.describe(recipe, prep, fitted, source)
    meta["metrics"] = workflow.held_out_metrics(fitted, prep)
    workflow.add_intervals(recipe, prep, fitted, meta["metrics"])
    if prep.forecast is not None and prep.forecast.interval is not None:  # for the bundle's forecasts
        low, high = prep.forecast.interval
        meta["interval"] = {"level": prep.forecast.confidence, "lower": low.tolist(), "upper": high.tolist(),
                            "units": "per-series scaled"}  # fmt: skip
    found = workflow.diagnosis(recipe, prep, fitted)
    meta["diagnosis"] = found.to_dict()
    meta["feature_notes"] = list(prep.pipeline.notes)
    meta["slice_split"], meta["slices"] = workflow.slice_metrics(recipe, prep, fitted, frame)
    if run is not None:
        meta["run"] = {"id": run.id, "experiment": run.experiment, "tracking_uri": run.store.uri}
    model = TrainedModel(fitted.trainer.model, prep.pipeline, recipe, meta)
    if recipe.evaluate.plots:
        model.artifacts.update(workflow.plots(recipe, prep, fitted))
    model.artifacts["model_card.md"] = partial(_card, model)
    if prep.task != "forecast" and prep.pipeline.column_for("image") is None:  # drift is measured on tables and text
        model.artifacts["reference.json"] = _reference(frame, prep, fitted)  # now: it needs the training rows
    if recipe.evaluate.report:
        model.artifacts["report.html"] = partial(_report, model)
    if meta["stopped"]:
        report.note(meta["stopped"])
    report.metrics(meta["metrics"], prep.classes)
    report.diagnosis(found)
    path = model.save(out) if out is not None else None
    if path is not None:
        shown = f" (report: {path / 'report.html'})" if recipe.evaluate.report else ""
        report.note(f"model saved to {path}/{shown}")
    if run is not None:
        _finish_run(run, model, path)
        report.note(f"run {run.id} logged to {run.store.uri} (experiment '{run.experiment}')")
    history = fitted.trainer.history
    return TrainResult(model, meta["metrics"], history, path, run.id if run else None)


def _shown(notes: list[str], most: int = 12) -> list[str]:
    """How the columns were read, at most `most` lines: a signal of 40 steps is not 40 lines to read."""
    if len(notes) <= most:
        return notes
    return [*notes[: most - 2], f"... and {len(notes) - most + 2} more columns (all in the report)", notes[-1]]


def _start_run(recipe: Recipe, source: str, parent: str | None, tags: dict[str, str]) -> TrackedRun:
    """Open the store and the run before any work: an unreachable server fails in a second, not after training."""
    from strata import __version__
    from strata.track.run import TrackedRun
    from strata.track.store import Store

    store = Store.open(recipe.track.uri)
    tags = {
        "strata.version": __version__,
        "strata.data_source": source,
        "strata.recipe_hash": recipe.hash(),
        "strata.train_hash": recipe.hash(seed=False),
        "strata.seed": str(recipe.seed),
        **{f"strata.seed.{part}": str(value) for part, value in recipe.seeds._asdict().items()},
        **recipe.track.tags,
        **tags,
    }
    run = TrackedRun.start(store, recipe.track.experiment or recipe.display_name, recipe.display_name, tags, parent)
    run.log_params(recipe.flat())
    return run


def _finish_run(run: TrackedRun, model: TrainedModel, path: Path | None) -> None:
    """Final metrics, fingerprint tags and artifacts (the bundle, and its card, recipe and plots at the top)."""
    import tempfile

    from strata.evaluation.metrics import HEADLINE
    from strata.fingerprint import schema_hash

    meta = model.meta
    final = {f"{part}_{m}": v for part, values in meta["metrics"].items() for m, v in values.items() if m in HEADLINE}
    for part, values in meta["metrics"].items():  # bootstrap intervals, beside the metric they bound
        for m, (low, high) in values.get("ci", {}).items():
            final.update({f"{part}_{m}_ci_low": low, f"{part}_{m}_ci_high": high})
    run.log_metrics(final, step=meta["epochs_run"])
    env = {f"strata.env.{k}": v for k, v in meta["versions"].items()}
    git = (
        {"mlflow.source.git.commit": meta["git"]["commit"], "strata.git_dirty": meta["git"]["dirty"]}
        if meta["git"]
        else {}
    )
    fingerprint = meta["fingerprint"]
    run.set_tags(
        {
            "strata.data_hash": fingerprint["data"],
            "strata.weights_hash": fingerprint["weights"],
            "strata.schema_hash": schema_hash(model.pipeline),
            "strata.task": model.task,
            "strata.best_epoch": meta["best_epoch"],
            **env,
            **git,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        bundle = path if path is not None else model.save(Path(tmp) / "bundle")
        run.log_artifacts(bundle, "bundle")
        for name in ("model_card.md", "recipe.yaml", "report.html", *sorted(p.name for p in bundle.glob("*.png"))):
            if (bundle / name).exists():
                run.log_artifacts(bundle / name)
    model.path = path  # not the temporary copy
    run.finish()


def _reference(frame: pd.DataFrame, prep: Any, fitted: Any) -> bytes:
    """The training rows' distributions and the model's predictions on them, for `strata drift` and
    the server's /monitor."""
    import json

    from strata import workflow
    from strata.features import target
    from strata.monitoring import reference

    predicted = workflow.predictions(fitted, prep.sets["train"])
    if prep.task == "regression":
        predicted = target.decode(predicted, prep.pipeline.target)
    rows = frame.iloc[prep.split.train]
    ref = reference(rows, prep.pipeline.columns, predicted, prep.task, prep.classes or None)
    return json.dumps(ref, allow_nan=False).encode()


def _card(model: TrainedModel) -> bytes:
    from strata import card

    return card.render(model).encode()


def _report(model: TrainedModel) -> bytes:
    from strata.evaluation.report import render

    images = {name.removesuffix(".png"): make() for name, make in model.artifacts.items() if name.endswith(".png")}
    return render(model, images=images).encode()


def _tensorboard(recipe: Recipe, run: TrackedRun | None) -> Callback:
    from datetime import datetime

    from strata.training.callbacks import TensorBoard

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(recipe.track.tensorboard_dir) / f"{recipe.display_name}-{run.id[:8] if run else stamp}"
    return TensorBoard(folder)


def _measured_each_epoch(recipe: Recipe, data: Any) -> list[str]:
    """The metric names a run of `recipe` logs every epoch (train_loss; val_* with a validation split)."""
    from strata.data.sources import load_frame
    from strata.evaluation.metrics import epoch_metrics
    from strata.features import target

    if recipe.forecast is not None:
        return ["train_loss", "val_loss"]
    frame = load_frame(recipe.data, data)
    task, _ = target.infer_task(frame, recipe.data.targets, recipe.data.task)
    per_epoch = ["loss", *epoch_metrics(task, len(recipe.data.targets))]
    return ["train_loss", *(f"val_{m}" for m in per_epoch if recipe.split.val > 0)]


def lr_find(
    recipe: Recipe | dict[str, Any] | str | Path,
    data: pd.DataFrame | str | Path | None = None,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
) -> RangeTest:
    """The learning-rate range test on the recipe's training split, from the weights `train` would
    start from. The result's `suggestion` is the rate where the smoothed loss falls fastest."""
    from strata import workflow
    from strata.data.sources import load_frame
    from strata.training.lr_finder import range_test

    recipe = as_recipe(recipe)
    if steps < 10:
        raise RecipeError(f"lr-find: steps must be at least 10, got {steps}")
    if not 0 < start < end:
        raise RecipeError(f"lr-find: needs 0 < start < end, got start {start:g} and end {end:g}")
    prep = workflow.prepare(recipe, load_frame(recipe.data, data))
    built = workflow.build(recipe, prep)
    return range_test(built.network, built.loss, prep.sets["train"], recipe.train, recipe.seeds, start, end, steps)


def report(source: str | Path, out: str | Path = "report.html", tracking_uri: str | None = None) -> Path:
    """Write the self-contained HTML report of a bundle folder or a tracked run (id or its start)."""
    from strata.evaluation.report import write

    return write(source, out, tracking_uri)


def load(path: str | Path, tracking_uri: str | None = None) -> TrainedModel:
    """Load a bundle folder, or a registered model: `models:/NAME@ALIAS` or `models:/NAME/VERSION`
    (from `tracking_uri`, else $STRATA_TRACKING_URI, else the local store). Predictions equal those
    of the process that trained the model. A folder written by `strata ensemble` loads as an Ensemble."""
    from strata.bundle import load as load_bundle

    if not str(path).startswith("models:/") and (Path(path) / "ensemble.json").is_file():
        from strata.ensemble import load as load_ensemble

        return load_ensemble(path)  # type: ignore[return-value]  # the same predict/evaluate interface
    if str(path).startswith("models:/"):
        from strata.track.registry import load_registered

        return load_registered(str(path), tracking_uri)
    return load_bundle(path)
