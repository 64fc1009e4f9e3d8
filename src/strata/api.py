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

from strata.errors import DataError, RecipeError, TrainingError

if TYPE_CHECKING:
    import pandas as pd

    from strata._console import Reporter
    from strata.bundle import TrainedModel
    from strata.data.batches import TensorSet
    from strata.data.split import Split
    from strata.features.pipeline import Pipeline
    from strata.models.heads import Head
    from strata.recipe import Recipe
    from strata.training.callbacks import Callback
    from strata.training.trainer import Trainer


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

    @property
    def classes(self) -> list:
        return self.pipeline.target.get("classes", [])


def as_recipe(recipe: Recipe | dict[str, Any] | str | Path) -> Recipe:
    from strata.recipe import Recipe

    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    if isinstance(recipe, str | Path):
        return Recipe.from_yaml(recipe)
    raise RecipeError(f"recipe must be a Recipe, a dict or a YAML path, got {type(recipe).__name__}")


def _class_codes(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]]:
    from strata._labels import level_key

    keys = np.array([level_key(v) for v in frame[column].to_numpy(dtype=object)])
    levels, codes = np.unique(keys, return_inverse=True)
    return codes, [str(level) for level in levels]


def prepare(recipe: Recipe, frame: pd.DataFrame) -> Prepared:
    """Split the table and fit the feature pipeline on the training rows only."""
    import torch

    from strata.data.batches import TensorSet
    from strata.data.sources import frame_hash
    from strata.data.split import holdout
    from strata.features import target
    from strata.features.pipeline import as_tensors, fit_pipeline, transform_quietly

    targets = recipe.data.targets
    target.check_present(frame, targets)
    task, why = target.infer_task(frame, targets, recipe.data.task)
    codes, names = _class_codes(frame, targets[0]) if task != "regression" else (None, None)
    split = holdout(codes, len(frame), recipe.split, recipe.seeds.data, names)
    if codes is not None:
        unseen = sorted(set(range(len(names))) - set(codes[split.train].tolist()))
        if unseen:
            raise DataError(
                f"target '{targets[0]}': class {names[unseen[0]]!r} has no rows in the training split; "
                f"set split.stratify: true or add rows of that class"
            )
    pipeline = fit_pipeline(frame, split.train, recipe.features, targets, task, recipe.data.drop)
    sets = {}
    for part, rows in split._asdict().items():
        rows_frame = frame.iloc[rows]
        inputs = as_tensors(transform_quietly(pipeline, rows_frame))
        sets[part] = TensorSet(inputs, torch.from_numpy(pipeline.encode_target(rows_frame)))
    return Prepared(task, why, pipeline, split, sets, frame_hash(frame))


def _callbacks(recipe: Recipe, prep: Prepared, quiet: bool) -> list[Callback]:
    from strata.evaluation.metrics import epoch_metrics
    from strata.training.callbacks import EarlyStopping, Progress

    callbacks: list[Callback] = [Progress(recipe.train.epochs, quiet)]
    stop = recipe.train.early_stopping
    if stop is None:
        return callbacks
    has_val = len(prep.sets["val"]) > 0
    if stop.monitor.startswith("val_") and not has_val:
        raise RecipeError(
            f"train.early_stopping.monitor: {stop.monitor!r} needs a validation split but split.val is 0; "
            f"set split.val (e.g. 0.1) or monitor train_loss"
        )
    measured = ["train_loss", "val_loss", *(f"val_{m}" for m in epoch_metrics(prep.task, len(recipe.data.targets)))]
    if stop.monitor not in measured:
        raise RecipeError(
            f"train.early_stopping.monitor: {stop.monitor!r} is not measured for a {prep.task} target "
            f"with {len(recipe.data.targets)} target column(s); available: {', '.join(measured)}"
        )
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


@dataclass
class Fitted:
    trainer: Trainer
    head: Head
    loss: str  # the loss name, `auto` resolved


def _fit(recipe: Recipe, prep: Prepared, quiet: bool, extra: list[Callback]) -> Fitted:
    """Build the network and train it; raises TrainingError when the weights end up unusable."""
    from strata.evaluation.metrics import epoch_score
    from strata.models import build
    from strata.training import losses
    from strata.training.trainer import Trainer

    loss_name, head = losses.resolve(recipe.train.loss, prep.task, len(prep.classes), len(recipe.data.targets))
    weights = (
        losses.class_weights(recipe.train.loss, prep.sets["train"].target.numpy(), prep.classes)
        if prep.task != "regression"
        else None
    )
    network = build(recipe.model, prep.pipeline, head.size, recipe.seeds.model)
    trainer = Trainer(
        network,
        losses.make(loss_name, recipe.train.loss, weights),
        recipe.train,
        recipe.seeds,
        score=epoch_score(prep.task, prep.pipeline.target, head.kind),
        callbacks=[*_callbacks(recipe, prep, quiet), *extra],
    )
    val = prep.sets["val"] if len(prep.sets["val"]) else None
    trainer.fit(prep.sets["train"], val)
    if not all(p.isfinite().all() for p in network.parameters()):
        raise TrainingError(
            f"training diverged, nothing was saved: {trainer.stop_reason or 'the weights are not finite'}"
        )
    return Fitted(trainer, head, loss_name)


def _meta(recipe: Recipe, prep: Prepared, fitted: Fitted) -> dict[str, Any]:
    from strata.models.blocks import count_parameters

    trainer = fitted.trainer
    return {
        "name": recipe.display_name, "task": prep.task, "loss": fitted.loss, "head": asdict(fitted.head),
        "history": trainer.history, "epochs_run": len(trainer.history), "best_epoch": trainer.best_epoch,
        "stopped": trainer.stop_reason, "n_parameters": count_parameters(trainer.model),
        "seeds": recipe.seeds._asdict(), "rows": {k: len(v) for k, v in prep.sets.items()},
        "fingerprint": {"recipe": recipe.hash(), "data": prep.data_hash},
        "versions": versions(), "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


def _split_metrics(trainer: Trainer, prep: Prepared, head: Head) -> dict[str, dict[str, Any]]:
    from strata.evaluation.metrics import score
    from strata.models.heads import to_predictions

    metrics = {}
    for part in ("val", "test"):
        data = prep.sets[part]
        if len(data):
            predictions = to_predictions(head, trainer.predict(data.inputs)).numpy().astype(np.float64)
            metrics[part] = score(prep.task, prep.pipeline.target, data.target.numpy(), predictions)
    return metrics


def _announce(report: Reporter, recipe: Recipe, prep: Prepared) -> None:
    report.note(f"target {', '.join(recipe.data.targets)}: {prep.task} ({prep.why})")
    for note in prep.pipeline.notes:
        report.note(f"  {note}")


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
    from strata.bundle import TrainedModel, check_destination
    from strata.data.sources import load_frame

    recipe = as_recipe(recipe)
    if out is not None:
        check_destination(Path(out))  # before the work, not after it
    report = Reporter(quiet)
    prep = prepare(recipe, load_frame(recipe.data, data))
    _announce(report, recipe, prep)
    fitted = _fit(recipe, prep, quiet, callbacks or [])
    trainer = fitted.trainer
    model = TrainedModel(trainer.model, prep.pipeline, recipe, _meta(recipe, prep, fitted))
    metrics = model.meta["metrics"] = _split_metrics(trainer, prep, fitted.head)
    model.artifacts["learning_curve.png"] = partial(
        _learning_curve, trainer.history, trainer.best_epoch, recipe.display_name
    )
    if trainer.stop_reason:
        report.note(trainer.stop_reason)
    report.metrics(metrics, prep.classes)
    path = model.save(out) if out is not None else None
    if path is not None:
        report.note(f"model saved to {path}/")
    return TrainResult(model, metrics, trainer.history, path)


def _learning_curve(history: list[dict[str, float]], best_epoch: int | None, name: str) -> bytes:
    from strata.evaluation.plots import learning_curve

    return learning_curve(history, best_epoch, title=f"{name}: learning curve")


def load(path: str | Path) -> TrainedModel:
    """Load a saved bundle folder; predictions equal those of the process that trained it."""
    from strata.bundle import load as load_bundle

    return load_bundle(path)
