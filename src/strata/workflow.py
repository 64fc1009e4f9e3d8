"""The steps of one training run, as plain functions on plain objects: prepare the data, fit the
network, measure it, describe it. `strata.api.train` strings them together (and adds tracking)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from strata.errors import DataError, RecipeError, TrainingError, did_you_mean

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    import torch
    from torch import nn

    from strata.data.batches import TensorSet
    from strata.data.split import Split
    from strata.evaluation.diagnosis import Diagnosis
    from strata.features.pipeline import Pipeline
    from strata.models.heads import Head
    from strata.recipe import Recipe
    from strata.training.callbacks import Callback
    from strata.training.checkpoint import Saving
    from strata.training.trainer import Augment, Trainer


# ------------------------------------------------------------------------------------- prepare
@dataclass
class Prepared:
    """Data ready for training: the fitted pipeline, the split and a TensorSet per part."""

    task: str
    why: str  # how the task was read from the target, for the user
    pipeline: Pipeline
    split: Split
    sets: dict[str, TensorSet]
    data_hash: str
    forecast: Any = None  # a forecast's evaluation windows (strata.forecasting.Evaluation)
    reference: dict[str, Any] | None = None  # the training rows' distributions for drift, when asked for

    @property
    def classes(self) -> list:
        return self.pipeline.target.get("classes", [])


def _class_codes(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]]:
    from strata.features._columns import row_keys

    keys = row_keys(frame[column]).astype(str)
    levels, codes = np.unique(keys, return_inverse=True)
    return codes, [str(level) for level in levels]


def prepare(recipe: Recipe, frame: pd.DataFrame, split: Split | None = None, summarise: bool = False) -> Prepared:
    """Split the table and fit the feature pipeline on the training rows only (a forecast: cut
    it by time and window it, see strata.forecasting). `split` replaces the recipe's hold-out split
    (cross-validation passes each fold's). `summarise` also summarises the training rows' inputs for
    drift monitoring (`Prepared.reference`, tables and text only), before the tensors are made so
    that its scratch memory is not added to theirs."""
    import torch

    if recipe.forecast is not None:
        from strata import forecasting

        return forecasting.prepare(recipe, frame)

    from strata.data.batches import StreamSet, TensorSet
    from strata.data.sources import frame_hash
    from strata.data.split import holdout
    from strata.features import target
    from strata.features.pipeline import as_tensors, fit_pipeline, transform_quietly

    targets = recipe.data.targets
    target.check_present(frame, targets)
    for column in recipe.card.slices:
        if column not in frame.columns:
            raise DataError(f"card.slices: column '{column}' is not in the data{did_you_mean(column, frame.columns)}")
    task, why = target.infer_task(frame, targets, recipe.data.task)
    data_hash = frame_hash(frame)  # before the inputs are made: its scratch memory is reused for them
    codes, names = _class_codes(frame, targets[0]) if task != "regression" else (None, None)
    if split is None:
        split = holdout(codes, len(frame), recipe.split, recipe.seeds.data, names)
    if codes is not None:
        unseen = sorted(set(range(len(names))) - set(codes[split.train].tolist()))
        if unseen:
            raise DataError(
                f"target '{targets[0]}': class {names[unseen[0]]!r} has no rows in the training split; "
                f"set split.stratify: true or add rows of that class"
            )
    pipeline = fit_pipeline(frame, split.train, recipe.features, targets, task, recipe.data.drop)
    reference = None
    if summarise and pipeline.column_for("image") is None:  # drift is measured on tables and text
        from strata.monitoring import feature_reference

        reference = feature_reference(frame, pipeline.columns, task, split.train)
    sets = {}
    for part, rows in split._asdict().items():  # column by column at the part's rows: the table is not copied
        target_rows = torch.from_numpy(pipeline.encode_target(frame, rows))
        if frame.attrs.get("streamed"):  # image files read batch by batch, never all at once
            picture = next(c for c in pipeline.columns if c["kind"] == "image")
            paths = frame[picture["name"]].iloc[rows].tolist()
            sets[part] = StreamSet(paths, target_rows, picture["state"], "image")
            continue
        sets[part] = TensorSet(as_tensors(transform_quietly(pipeline, frame, rows)), target_rows)
    return Prepared(task, why, pipeline, split, sets, data_hash, reference=reference)


# ----------------------------------------------------------------------------------------- fit
@dataclass
class Fitted:
    trainer: Trainer
    head: Head
    loss: str  # the loss name, `auto` resolved
    notes: list[str] = field(default_factory=list)  # how the network started (transfer learning)
    seen: dict[int, tuple[Any, np.ndarray]] = field(default_factory=dict)  # predictions by set, made once


def _callbacks(recipe: Recipe, prep: Prepared, quiet: bool) -> list[Callback]:
    from strata.evaluation.metrics import epoch_metrics
    from strata.training.callbacks import EarlyStopping, Progress

    callbacks: list[Callback] = [Progress(recipe.train.epochs, quiet)]
    stop = recipe.train.early_stopping
    if stop is None:
        return callbacks
    if stop.monitor.startswith("val_") and not len(prep.sets["val"]):
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


@dataclass
class Built:
    network: nn.Module  # freshly initialised from the model seed (or from model.pretrained's weights)
    loss: nn.Module
    loss_name: str  # `auto` resolved
    head: Head
    notes: list[str] = field(default_factory=list)  # what transfer learning did
    frozen: Callable[[], list[nn.Module]] | None = None  # parts kept in eval mode while training
    lr_scale: Callable[[str], float] | None = None  # per-parameter rate multiplier (fine_tune)
    callbacks: list[Callback] = field(default_factory=list)  # gradual unfreezing


def build(recipe: Recipe, prep: Prepared) -> Built:
    """The untrained network and its loss, as `fit` starts from them (the LR finder uses this too)."""
    from strata.models import build as build_network
    from strata.training import losses

    if prep.task == "forecast":  # values, one per predicted step, scaled per series
        loss_name, head = losses.resolve(recipe.train.loss, "regression", 0, prep.pipeline.outputs)
    else:
        loss_name, head = losses.resolve(recipe.train.loss, prep.task, len(prep.classes), len(recipe.data.targets))
    weights = None
    if prep.task != "regression":
        weights = losses.class_weights(recipe.train.loss, prep.sets["train"].target.numpy(), prep.classes)
    network = build_network(recipe.model, prep.pipeline, head.size, recipe.seeds.model)
    built = Built(network, losses.make(loss_name, recipe.train.loss, weights), loss_name, head)
    if recipe.model.type == "minilm":  # a pretrained encoder: it learns slower than the new head
        factor = recipe.model.encoder_lr
        built.lr_scale = lambda name: factor if name.startswith("encoder.") else 1.0
        built.notes.append(f"fine-tuning all-MiniLM-L6-v2 at {factor:g} x train.optimizer.lr")
    if recipe.model.pretrained:
        _transfer(recipe, prep, built)
    return built


def _transfer(recipe: Recipe, prep: Prepared, built: Built) -> None:
    """Start from model.pretrained's weights; freeze or scale the backbone as model.transfer says."""
    from strata.api import load
    from strata.fingerprint import weights_hash
    from strata.models import transfer

    cfg, network = recipe.model, built.network
    source = load(cfg.pretrained)
    if source.recipe.model.type != cfg.type:
        raise RecipeError(f"model.pretrained: '{cfg.pretrained}' is a {source.recipe.model.type} model; "
                          f"this recipe builds a {cfg.type} (set model.type: {source.recipe.model.type})")  # fmt: skip
    built.notes.append(f"starting weights hash {weights_hash(source.network.state_dict())}"
                       + (f" (run {source.meta['run']['id'][:12]})" if source.meta.get("run") else ""))  # fmt: skip
    same = source.task == prep.task and source.pipeline.target.get("classes") == prep.pipeline.target.get("classes")
    built.notes += transfer.copy_weights(network, source, cfg.pretrained, same)
    if (cfg.transfer or "fine_tune") == "feature_extraction":
        parts = transfer.backbone(network)
        transfer.freeze(parts)
        built.frozen = lambda: parts
        built.notes.append("feature extraction: the backbone is frozen; the layers on top of it learn")
        return
    top, factor = transfer.classifier_prefixes(network), cfg.backbone_lr or 0.1
    built.lr_scale = lambda name: 1.0 if name.startswith(top) else factor
    built.notes.append(f"fine-tuning: the backbone learns at {factor:g} x train.optimizer.lr")
    if cfg.unfreeze_every:
        thaw = transfer.GradualUnfreezing(transfer.stages(network), cfg.unfreeze_every)
        built.frozen, built.callbacks = thaw.frozen, [thaw]
        built.notes.append(f"gradual unfreezing: one more backbone stage every {cfg.unfreeze_every} epochs")


def fit(recipe: Recipe, prep: Prepared, quiet: bool, extra: list[Callback], saving: Saving | None = None) -> Fitted:
    """Build the network and train it; raises TrainingError when the weights end up unusable.
    With `saving`, checkpoints are written as it goes (and training resumes from `saving.resume`)."""
    from strata import distributed
    from strata.evaluation.metrics import epoch_score
    from strata.training.trainer import Trainer

    built = build(recipe, prep)
    network, head, loss_name = built.network, built.head, built.loss_name
    # Under torchrun: this process's shard of the batches, validation on rank 0 only, and the callback
    # that keeps the processes in step (strata.distributed); in one process the sets as they are.
    train, val, in_step = distributed.data_parallel(
        recipe, prep.sets["train"], prep.sets["val"] if len(prep.sets["val"]) else None
    )
    trainer = Trainer(
        network,
        built.loss,
        recipe.train,
        recipe.seeds,
        score=epoch_score(prep.task, prep.pipeline.target, head.kind),
        callbacks=[*in_step, *built.callbacks, *_callbacks(recipe, prep, quiet), *extra, *_saver(saving)],
        augment=_augmenter(recipe, prep),
        frozen=built.frozen,
        lr_scale=built.lr_scale,
    )
    trainer.fit(train, val, resume=saving.resume.state if saving and saving.resume else None)
    if not all(p.isfinite().all() for p in network.parameters()) or _diverged(recipe, trainer):
        raise TrainingError(
            f"training diverged, nothing was saved: {trainer.stop_reason or 'the weights are not finite'}"
        )
    return Fitted(trainer, head, loss_name, built.notes)


def _saver(saving: Saving | None) -> list[Callback]:
    """The checkpoint writer: last, so that the state it saves is that of the whole epoch's end."""
    if saving is None:
        return []
    from strata.training.checkpoint import Checkpointer

    return [Checkpointer(saving)]


def _augmenter(recipe: Recipe, prep: Prepared) -> Augment | None:
    """The recipe's augment steps as the trainer's batch hook: on the `image` input, else on
    `numeric` (a signal of one channel for cnn1d, a table otherwise)."""
    steps = recipe.train.augment
    if not steps:
        return None
    from strata.data.augment import Augmenter

    slots = prep.sets["train"].slots
    key = "image" if "image" in slots else "numeric"
    signal = recipe.model.type == "cnn1d"
    if key not in slots:
        raise RecipeError("train.augment: the steps change numbers or pictures, and this data has neither")
    if any(s.name == "mixup" for s in steps) and len(slots) > 1:
        raise RecipeError(f"train.augment: mixup mixes one model input, and this data has {len(slots)} "
                          f"({', '.join(slots)}); remove mixup or the categorical columns")  # fmt: skip
    augmenter = Augmenter(steps, len(prep.classes) if prep.task != "regression" else None)
    try:
        augmenter.check("image" if key == "image" else "signal" if signal else "table")
    except DataError as err:
        raise RecipeError(f"train.{err}") from None

    def apply(inputs: dict[str, torch.Tensor], target: torch.Tensor, draws: torch.Generator) -> tuple[Any, Any]:
        x = inputs[key].unsqueeze(1) if signal else inputs[key]
        x, target = augmenter(x, target, draws)
        return {**inputs, key: x.squeeze(1) if signal else x}, target

    return apply


def _diverged(recipe: Recipe, trainer: Trainer) -> bool:
    """The loss became NaN or infinite and the weights are those of that epoch (not a restored,
    earlier one): finite weights can still be useless, with outputs of 1e30."""
    import math

    history = trainer.history
    if not history or math.isfinite(history[-1]["train_loss"]):
        return False
    stop, best = recipe.train.early_stopping, trainer.best_epoch
    restored = stop is not None and stop.restore_best and best and math.isfinite(history[best - 1]["train_loss"])
    return not restored


# ------------------------------------------------------------------------------------- measure
def predictions(fitted: Fitted, data: TensorSet) -> np.ndarray:
    """Probabilities (N x classes) or scaled values (N x targets), as float64. Metrics, intervals,
    plots and slices all read the test part: it is run through the network (for a streamed set,
    its files decoded) once, after training."""
    from strata.models.heads import to_predictions

    if id(data) not in fitted.seen:  # the set is kept beside its predictions, so its id stays its own
        outputs = to_predictions(fitted.head, fitted.trainer.outputs(data)).numpy().astype(np.float64)
        fitted.seen[id(data)] = (data, outputs)
    return fitted.seen[id(data)][1]


def held_out_metrics(fitted: Fitted, prep: Prepared) -> dict[str, dict[str, Any]]:
    """Metrics of the validation and test parts (those that have rows)."""
    from strata.evaluation.metrics import score

    if prep.task == "forecast":
        from strata import forecasting

        return forecasting.held_out_metrics(fitted, prep)

    return {
        part: score(
            prep.task, prep.pipeline.target, prep.sets[part].target.numpy(), predictions(fitted, prep.sets[part])
        )
        for part in ("val", "test")
        if len(prep.sets[part])
    }


def add_intervals(recipe: Recipe, prep: Prepared, fitted: Fitted, metrics: dict[str, dict[str, Any]]) -> None:
    """Bootstrap intervals for the headline metrics of the test part (else validation), in place."""
    from strata.evaluation.bootstrap import attach

    part = "test" if "test" in metrics else "val" if "val" in metrics else None
    if part is None or prep.task == "forecast":  # overlapping windows are not independent rows
        return
    y, predicted = prep.sets[part].target.numpy(), predictions(fitted, prep.sets[part])
    cfg = recipe.evaluate
    attach(metrics[part], prep.pipeline.target, y, predicted, cfg.bootstrap, recipe.seeds.data, cfg.confidence)


def diagnosis(recipe: Recipe, prep: Prepared, fitted: Fitted) -> Diagnosis:
    """The learning curves' verdict; the constant-prediction floor is left out where the loss is
    reweighted or smoothed (it would not be comparable)."""
    from strata.evaluation.diagnosis import baseline_loss, diagnose

    loss = recipe.train.loss
    mixed = any(step.name == "mixup" for step in recipe.train.augment)  # soft targets raise the loss floor
    reweighted = loss.class_weights is not None or loss.label_smoothing > 0 or mixed
    task = "regression" if prep.task == "forecast" else prep.task
    baseline = None if reweighted else baseline_loss(task, fitted.loss, prep.sets["train"].target.numpy())
    stop = recipe.train.early_stopping
    kept = fitted.trainer.best_epoch if stop is not None and stop.restore_best and fitted.trainer.stop_reason else None
    return diagnose(fitted.trainer.history, baseline, kept)


def plots(recipe: Recipe, prep: Prepared, fitted: Fitted) -> dict[str, Callable[[], bytes]]:
    """{file name: render()} of the run's plots, drawn on the test part (else validation); rendered
    only when called, once."""
    from functools import partial

    from strata.evaluation import plots as draw
    from strata.features import target

    title, history = f"{recipe.display_name}: learning curve", fitted.trainer.history
    out: dict[str, Callable[[], bytes]] = {
        "learning_curve.png": partial(
            draw.learning_curve, history, fitted.trainer.best_epoch or lowest_val_epoch(history), title
        )
    }
    if prep.task == "forecast":
        from strata import forecasting

        out.update(forecasting.plots(recipe, prep, fitted))
        return {k: Once(v) for k, v in out.items()}
    state, targets = prep.pipeline.target, recipe.data.targets
    parts = {p: prep.sets[p].target.numpy() for p in ("train", "val", "test") if len(prep.sets[p])}
    if prep.task != "regression":
        out["target_balance.png"] = partial(draw.target_balance, parts, prep.classes, targets[0])
    else:
        for i, column in enumerate(targets):
            file = "target_balance.png" if len(targets) == 1 else f"target_balance_{_file_part(column)}.png"
            values = {p: target.decode(v, state)[:, i] for p, v in parts.items()}
            out[file] = partial(draw.target_balance, values, None, column)
    part = "test" if len(prep.sets["test"]) else "val" if len(prep.sets["val"]) else None
    if part is not None:
        y, predicted = prep.sets[part].target.numpy(), predictions(fitted, prep.sets[part])
        if not np.isfinite(predicted).all():
            return {k: Once(v) for k, v in out.items()}
        if prep.task != "regression":
            from sklearn.metrics import confusion_matrix

            matrix = confusion_matrix(y, predicted.argmax(1), labels=range(len(prep.classes))).tolist()
            out["confusion_matrix.png"] = partial(draw.confusion, matrix, prep.classes, part)
            if len(np.unique(y)) > 1:
                out["roc.png"] = partial(draw.roc, y, predicted, prep.classes, part)
                out["precision_recall.png"] = partial(draw.precision_recall, y, predicted, prep.classes, part)
            out["reliability.png"] = partial(draw.reliability, y, predicted, part)
        else:
            y, predicted = target.decode(y, state), target.decode(predicted, state)
            for i, column in enumerate(targets):
                file = "regression_fit.png" if len(targets) == 1 else f"regression_fit_{_file_part(column)}.png"
                out[file] = partial(draw.regression_fit, y[:, i], predicted[:, i], column, part)
    return {k: Once(v) for k, v in out.items()}


class Once:
    """A renderer that runs once and keeps its bytes (the report reuses the bundle's PNGs);
    picklable, unlike functools.cache, so a model holding it still pickles."""

    def __init__(self, render: Callable[[], bytes]):
        self.render, self.done = render, None

    def __call__(self) -> bytes:
        if self.done is None:
            self.done = self.render()
        return self.done


def _file_part(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "target"


def slice_metrics(recipe: Recipe, prep: Prepared, fitted: Fitted, frame: pd.DataFrame) -> tuple[str, dict[str, Any]]:
    """(part, {column: {level: {"rows", metrics...}}}) on the test part (else validation) for the
    columns in card.slices. Numeric columns with many values are cut at their quartiles."""
    import pandas as pd

    from strata._labels import level_key
    from strata.evaluation.metrics import score

    part = "test" if len(prep.sets["test"]) else "val"
    data = prep.sets[part]
    if not recipe.card.slices or not len(data) or prep.task == "forecast":
        return part, {}
    rows = getattr(prep.split, part)
    y, predicted = data.target.numpy(), predictions(fitted, data)
    out: dict[str, Any] = {}
    for column in recipe.card.slices:
        values = frame[column].iloc[rows]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 10:
            values = pd.qcut(values, 4, duplicates="drop").astype(str)
        keys = np.array(["<missing>" if pd.isna(v) else level_key(v) for v in values.to_numpy(dtype=object)])
        out[column] = {
            level: {"rows": int(mask.sum()), **score(prep.task, prep.pipeline.target, y[mask], predicted[mask])}
            for level in sorted(set(keys.tolist()))
            for mask in [keys == level]
        }
    return part, out


# ------------------------------------------------------------------------------------ describe
def lowest_val_epoch(history: list[dict[str, float]]) -> int | None:
    """The epoch of the lowest finite validation loss: the best epoch when early stopping did not pick one."""
    losses = [(h["val_loss"], h["epoch"]) for h in history if "val_loss" in h and np.isfinite(h["val_loss"])]
    return int(min(losses)[1]) if losses else None


def data_summary(source: str, prep: Prepared) -> dict[str, Any]:
    """Where the data came from and the target's balance (classes) or spread (values) in training."""
    from strata.features import target

    if prep.task == "forecast":
        from strata import forecasting

        return forecasting.data_summary(source, prep)

    y = prep.sets["train"].target.numpy()
    if prep.task != "regression":
        counts = np.bincount(y, minlength=len(prep.classes))
        balance: dict[str, Any] = {"counts": {str(c): int(n) for c, n in zip(prep.classes, counts, strict=True)}}
    else:
        values = target.decode(y, prep.pipeline.target)
        balance = {
            "stats": {
                name: {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}
                for name, v in zip(prep.pipeline.target["columns"], values.T, strict=True)
            }
        }
    return {"source": source, "target": balance}


def describe(recipe: Recipe, prep: Prepared, fitted: Fitted, source: str) -> dict[str, Any]:
    """The bundle's meta.json (metrics, slices and the run are added by the caller)."""
    from strata.fingerprint import environment, git_state, weights_hash
    from strata.models.blocks import count_parameters

    trainer = fitted.trainer
    return {
        "name": recipe.display_name, "task": prep.task, "loss": fitted.loss, "head": asdict(fitted.head),
        "history": trainer.history, "epochs_run": len(trainer.history),
        "best_epoch": trainer.best_epoch or lowest_val_epoch(trainer.history),
        "stopped": trainer.stop_reason, "n_parameters": count_parameters(trainer.model),
        "seeds": recipe.seeds._asdict(), "rows": {k: len(v) for k, v in prep.sets.items()},
        **({"transfer": fitted.notes} if fitted.notes else {}),
        "data": data_summary(source, prep),
        "fingerprint": {"recipe": recipe.hash(), "data": prep.data_hash,
                        "weights": weights_hash(trainer.model.state_dict())},
        "versions": environment(), "git": git_state(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
