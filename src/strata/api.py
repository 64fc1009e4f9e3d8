"""The Python API: `train` a recipe, `load` a bundle. The CLI calls exactly these.

>>> import strata
>>> result = strata.train({"data": {"dataset": "iris", "target": "species"},
...                        "train": {"epochs": 30}}, quiet=True)
>>> result.metrics["test"]["accuracy"] > 0.8
True
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from strata.errors import DataError, RecipeError

if TYPE_CHECKING:
    import pandas as pd

    from strata.bundle import TrainedModel
    from strata.data.batches import TensorSet
    from strata.data.split import Split
    from strata.features.pipeline import Pipeline
    from strata.recipe import Recipe
    from strata.training.callbacks import Callback


@dataclass
class TrainResult:
    model: TrainedModel
    metrics: dict[str, dict[str, Any]]  # {"val": {...}, "test": {...}}
    history: list[dict[str, float]]
    path: Path | None  # where the bundle was written, if it was


@dataclass
class Prepared:
    """Data ready for training: the fitted pipeline, the split and a TensorSet per part."""

    task: str
    why: str  # how the task was read from the target, for the user
    pipeline: Pipeline
    split: Split
    sets: dict[str, TensorSet]
    data_hash: str


def as_recipe(recipe: Recipe | dict[str, Any] | str | Path) -> Recipe:
    from strata.recipe import Recipe

    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    if isinstance(recipe, str | Path):
        return Recipe.from_yaml(recipe)
    raise RecipeError(f"recipe must be a Recipe, a dict or a YAML path, got {type(recipe).__name__}")


def prepare(recipe: Recipe, frame: pd.DataFrame) -> Prepared:
    """Split the table and fit the feature pipeline on the training rows only."""
    import torch

    from strata.data.batches import TensorSet
    from strata.data.sources import frame_hash
    from strata.data.split import holdout
    from strata.features import target
    from strata.features._columns import level_key
    from strata.features.pipeline import fit_pipeline, transform_quietly

    targets = recipe.data.targets
    target.check_present(frame, targets)
    task, why = target.infer_task(frame, targets, recipe.data.task)
    labels, names = None, None
    if task != "regression":
        keys = np.array([level_key(v) for v in frame[targets[0]].to_numpy(dtype=object)])
        levels, labels = np.unique(keys, return_inverse=True)
        names = [str(level) for level in levels]
    split = holdout(labels, len(frame), recipe.split, recipe.seeds.data, names)
    if labels is not None:
        unseen = sorted(set(range(len(names))) - set(labels[split.train].tolist()))
        if unseen:
            raise DataError(
                f"target '{targets[0]}': class {names[unseen[0]]!r} has no rows in the training split; "
                f"set split.stratify: true or add rows of that class"
            )
    pipeline = fit_pipeline(frame, split.train, recipe.features, targets, task, recipe.data.drop)
    sets = {}
    for part, rows in split._asdict().items():
        rows_frame = frame.iloc[rows]
        inputs = transform_quietly(pipeline, rows_frame).tensors()
        sets[part] = TensorSet(inputs, torch.from_numpy(pipeline.encode_target(rows_frame)))
    return Prepared(task, why, pipeline, split, sets, frame_hash(frame))


def _monitors(task: str, has_val: bool) -> list[str]:
    val = ["val_loss", *(["val_accuracy"] if task != "regression" else ["val_mae", "val_rmse", "val_r2"])]
    return ["train_loss", *(val if has_val else [])]


def _callbacks(recipe: Recipe, task: str, has_val: bool, quiet: bool) -> list[Callback]:
    from strata.errors import did_you_mean
    from strata.training.callbacks import EarlyStopping, Progress

    callbacks: list[Callback] = [Progress(recipe.train.epochs, quiet)]
    stop = recipe.train.early_stopping
    if stop is None:
        return callbacks
    valid = _monitors(task, has_val)
    if stop.monitor not in valid:
        needs_val = stop.monitor.startswith("val_") and not has_val
        hint = (
            "needs a validation split but split.val is 0; set split.val (e.g. 0.1) or monitor train_loss"
            if needs_val
            else f"is not measured{did_you_mean(stop.monitor, valid)}; available: {', '.join(valid)}"
        )
        raise RecipeError(f"train.early_stopping.monitor: {stop.monitor!r} {hint}")
    callbacks.append(EarlyStopping(stop.monitor, stop.mode, stop.patience, stop.min_delta, stop.restore_best))
    return callbacks


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("strata", "torch", "numpy", "pandas", "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def train(
    recipe: Recipe | dict[str, Any] | str | Path,
    data: pd.DataFrame | str | Path | None = None,
    *,
    out: str | Path | None = None,
    quiet: bool = False,
    callbacks: list[Callback] | None = None,
) -> TrainResult:
    """Train what `recipe` describes. `data` (a DataFrame or file) replaces the recipe's data source.

    The bundle is written to `out` when given (the CLI defaults it to `models/<name>`).
    """
    from strata._console import Reporter
    from strata.bundle import TrainedModel
    from strata.data.sources import load_frame
    from strata.evaluation.metrics import epoch_score
    from strata.models import build
    from strata.models.blocks import count_parameters
    from strata.training import losses
    from strata.training.trainer import Trainer

    recipe = as_recipe(recipe)
    report = Reporter(quiet)
    frame = load_frame(recipe.data, data)
    prep = prepare(recipe, frame)
    classes = prep.pipeline.target.get("classes", [])
    report.note(f"target {', '.join(recipe.data.targets)}: {prep.task} ({prep.why})")
    for note in prep.pipeline.notes:
        report.note(f"  {note}")

    loss_name, head = losses.resolve(recipe.train.loss, prep.task, len(classes), len(recipe.data.targets))
    weights = (
        losses.class_weights(recipe.train.loss, prep.sets["train"].target.numpy(), classes)
        if prep.task != "regression"
        else None
    )
    network = build(recipe.model, prep.pipeline, head.size, recipe.seeds.model)
    has_val = len(prep.sets["val"]) > 0
    trainer = Trainer(
        network,
        losses.make(loss_name, recipe.train.loss, weights),
        recipe.train,
        recipe.seeds,
        score=epoch_score(prep.task, prep.pipeline.target, head.kind),
        callbacks=[*_callbacks(recipe, prep.task, has_val, quiet), *(callbacks or [])],
    )
    history = trainer.fit(prep.sets["train"], prep.sets["val"] if has_val else None)

    meta = {
        "name": recipe.display_name,
        "task": prep.task,
        "loss": loss_name,
        "head": asdict(head),
        "history": history,
        "epochs_run": len(history),
        "best_epoch": trainer.best_epoch,
        "stopped": trainer.stop_reason,
        "n_parameters": count_parameters(network),
        "seeds": recipe.seeds._asdict(),
        "rows": {k: len(v) for k, v in prep.sets.items()},
        "fingerprint": {"recipe": recipe.hash(), "data": prep.data_hash},
        "versions": versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    model = TrainedModel(network, prep.pipeline, recipe, meta)
    metrics = {
        part: model.score(trainer.predict(prep.sets[part].inputs), prep.sets[part].target)
        for part in ("val", "test")
        if len(prep.sets[part])
    }
    meta["metrics"] = metrics
    model.artifacts["learning_curve.png"] = partial(_learning_curve, history, trainer.best_epoch, recipe.display_name)

    if trainer.stop_reason:
        report.note(trainer.stop_reason)
    report.metrics(metrics, classes)
    path = model.save(out) if out is not None else None
    if path is not None:
        report.note(f"model saved to {path}/")
    return TrainResult(model, metrics, history, path)


def _learning_curve(history: list[dict[str, float]], best_epoch: int | None, name: str) -> bytes:
    from strata.evaluation.plots import learning_curve

    return learning_curve(history, best_epoch, title=f"{name}: learning curve")


def load(path: str | Path) -> TrainedModel:
    """Load a saved bundle folder; predictions equal those of the process that trained it."""
    from strata.bundle import load as load_bundle

    return load_bundle(path)
