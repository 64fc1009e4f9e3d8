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
    from strata.training.checkpoint import Saving
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
    resume: str | Path | None = None,
    checkpoints: str | Path | None = None,
) -> TrainResult:
    """Train what `recipe` describes. `data` (a DataFrame or file) replaces the recipe's data source.

    The bundle is written to `out` when given (the CLI defaults it to `models/<name>`). Unless the
    recipe says `track: false`, the run is logged to MLflow (`parent_run` nests it under another run).
    Checkpoints go to `checkpoints`, else `<out>.checkpoints/` (docs/training.md), and are removed
    once the run has finished; `resume` (that folder, or the tracked run's id) goes on from the
    last good one, to the same weights as a run never interrupted.
    """
    from strata import distributed
    from strata.bundle import check_destination
    from strata.errors import StrataError
    from strata.training import checkpoint

    recipe = as_recipe(recipe)
    if resume is not None and distributed.launched():  # rank 0 alone would go on from the checkpoint
        raise StrataError("resume: a checkpoint continues a run in one process; under torchrun, train from the start")
    place = Path(checkpoints) if checkpoints is not None else None
    saving = checkpoint.plan(recipe, Path(out) if out is not None else None, place, resume)  # a bad --resume: now
    run_tags = {**(run_tags or {}), **_saving_tags(saving)}
    main = distributed.is_main()  # under torchrun, rank 0 alone logs, prints and writes (strata.distributed)
    if out is not None and main:
        check_destination(Path(out))  # before the work, not after it
    source = data_source(recipe, data)
    run = _start_run(recipe, source, parent_run, run_tags or {}) if recipe.track.enabled and main else None
    try:
        with distributed.session():  # the processes torchrun started, in one group; nothing in one process
            if not main:
                return _train_share(recipe, data, callbacks or [])
            return _train(recipe, data, source, Path(out) if out is not None else None, quiet, callbacks or [], run,
                          saving=saving)  # fmt: skip
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
    saving: Saving | None = None,
) -> TrainResult:
    from strata import workflow
    from strata._console import Reporter
    from strata.bundle import TrainedModel
    from strata.data.sources import load_frame

    report = Reporter(quiet)
    frame = load_frame(recipe.data, data)
    prep = workflow.prepare(recipe, frame, summarise=True)
    frame = frame[list(recipe.card.slices)]  # the inputs are tensors now: keep what the slice metrics read
    _release_table()
    _start_saving(saving, recipe, prep.data_hash, run, report)
    report.note(f"target {', '.join(recipe.data.targets)}: {prep.task} ({prep.why})")
    report.notes(f"  {note}" for note in _shown(prep.pipeline.notes))
    extra = [*callbacks, *([run.epoch_logger()] if run else [])]
    if recipe.track.tensorboard:
        extra.append(_tensorboard(recipe, run))
    fitted = workflow.fit(recipe, prep, quiet, extra, saving)
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
    if prep.reference is not None:
        model.artifacts["reference.json"] = _reference(prep.reference, prep, fitted)  # now: it needs the model
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
    _end_saving(saving)
    history = fitted.trainer.history
    return TrainResult(model, meta["metrics"], history, path, run.id if run else None)


def _end_saving(saving: Saving | None) -> None:
    """The run is done: its result is the bundle, not the checkpoints."""
    if saving is not None:
        saving.done()


def _saving_tags(saving: Saving | None) -> dict[str, str]:
    """Where a tracked run keeps its checkpoints (so `--resume RUN` finds them), and the run it resumes."""
    if saving is None:
        return {}
    tags = {"strata.checkpoints": str(saving.folder.resolve())}
    if saving.resume is not None and saving.resume.meta.get("run"):
        tags["strata.resumed_from"] = saving.resume.meta["run"]
    return tags


def _start_saving(saving: Saving | None, recipe: Recipe, data_hash: str, run: TrackedRun | None, report: Any) -> None:
    """Check a resumed run's data; say where checkpoints go; bring a resumed run's tracking up to date."""
    from strata import __version__
    from strata.errors import StrataError
    from strata.training import checkpoint

    if saving is None:
        return
    checkpoint.check_data(saving, data_hash)
    saving.meta = {"recipe": recipe.hash(), "data": data_hash, "run": run.id if run else None, "strata": __version__}
    if saving.resume is None:
        left = next(checkpoint.checkpoints(saving.folder), None)
        if left is not None:  # hours of training, perhaps: never removed without being asked
            raise StrataError(f"'{saving.folder}' holds checkpoints of an unfinished run (last: {left.stem}): go on "
                              f"with --resume {saving.folder}, or delete that folder to start again")  # fmt: skip
        report.note(f"checkpoints: {saving.folder}/ every {saving.every} epoch(s); "
                    f"if stopped, go on with --resume {saving.folder}")  # fmt: skip
        return
    done = saving.resume
    report.note(f"resuming from {done.path} (epoch {done.epoch})")
    if run is not None:  # a new run: the interrupted one's epochs, then this one's
        for row in done.state["history"]:
            run.log_metrics({k: v for k, v in row.items() if k not in ("epoch", "seconds")}, step=int(row["epoch"]))
        if done.meta.get("run"):
            with contextlib.suppress(Exception):  # it may be in another store, or gone
                run.store.client.set_terminated(done.meta["run"], status="KILLED")


def _train_share(recipe: Recipe, data: Any, callbacks: list[Callback]) -> TrainResult:
    """A process of a data-parallel run other than rank 0: it trains on its share of every batch, in
    step with rank 0, which measures, logs and writes. Its result has the history and no metrics."""
    from strata import workflow
    from strata.bundle import TrainedModel
    from strata.data.sources import load_frame

    prep = workflow.prepare(recipe, load_frame(recipe.data, data))
    fitted = workflow.fit(recipe, prep, True, callbacks)
    history = fitted.trainer.history
    model = TrainedModel(fitted.trainer.model, prep.pipeline, recipe, {"history": history})
    return TrainResult(model, {}, history, None)


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


def _release_table() -> None:
    """Give a Parquet table's memory back once the frame is gone: its columns lived in arrow's memory
    pool, which keeps freed pages otherwise (136 MB for a million rows of 32 numbers,
    bench/scaling.py). A frame the caller passed in stays theirs: nothing is freed then."""
    import sys

    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


def _reference(features: dict[str, Any], prep: Any, fitted: Any) -> bytes:
    """The training rows' distributions (`prepare` summarised them) with the model's predictions on
    them, for `strata drift` and the server's /monitor."""
    import json

    from strata import workflow
    from strata.features import target
    from strata.monitoring import with_predictions

    predicted = workflow.predictions(fitted, prep.sets["train"])
    if prep.task == "regression":
        predicted = target.decode(predicted, prep.pipeline.target)
    ref = with_predictions(features, predicted, prep.classes or None)
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
