"""Callbacks: one job each. Hooks are no-ops unless overridden; state is resumable: `state_dict`
returns plain values and tensors, which a checkpoint stores as JSON and safetensors."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import RecipeError, did_you_mean

if TYPE_CHECKING:
    from strata.training.trainer import Trainer

LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "mape", "error", "brier", "ece", "median_ae")


class Callback:
    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch."""

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        """After an epoch and its validation; `logs` is that epoch's history row."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch, whether it ran out or was stopped."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


def better_is_lower(metric: str) -> bool:
    return any(metric.endswith(s) for s in LOWER_IS_BETTER)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs;
    optionally put back the weights of the best epoch."""

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ):
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, patience, min_delta, restore_best
        self.mode = ("min" if better_is_lower(monitor) else "max") if mode == "auto" else mode
        self.best, self.best_epoch, self.wait = math.inf if self.mode == "min" else -math.inf, 0, 0
        self.best_weights: dict[str, Any] | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            known = [k for k in logs if k not in ("epoch", "lr", "seconds")]
            raise RecipeError(
                f"train.early_stopping.monitor: {self.monitor!r} is not measured"
                f"{did_you_mean(self.monitor, known)}; available: {', '.join(known)}"
            )
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, int(logs["epoch"]), 0
            if self.restore_best:
                self.best_weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.stop(
                f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                f"(best {self.best:.4g} at epoch {self.best_epoch})"
            )

    def on_train_end(self, trainer: Trainer) -> None:
        trainer.best_epoch = self.best_epoch
        if self.restore_best and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_weights = state.get("best_weights")


class Progress(Callback):
    """A rich progress bar over epochs when writing to a terminal; a line per tenth of the run otherwise."""

    def __init__(self, epochs: int, quiet: bool = False):
        self.epochs, self.quiet = epochs, quiet
        self.bar: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.quiet or not sys.stderr.isatty():
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            transient=True,
        )
        self.task = self.bar.add_task("train", total=self.epochs, status="")
        self.bar.start()

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        status = "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if k.endswith("loss") or k == "val_accuracy")
        if self.bar is not None:
            self.bar.update(self.task, advance=1, status=status)
        elif not self.quiet and (logs["epoch"] % max(self.epochs // 10, 1) == 0 or logs["epoch"] == 1):
            print(f"epoch {int(logs['epoch'])}/{self.epochs}  {status}", file=sys.stderr, flush=True)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.stop()


class TensorBoard(Callback):
    """Every number of each epoch's history row as a TensorBoard scalar, in `folder`
    (`tensorboard --logdir` its parent to compare runs). Needs the `tensorboard` package."""

    def __init__(self, folder: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RecipeError(
                "track.tensorboard: the tensorboard package is not installed; "
                "pip install 'strata[tensorboard]' or set track.tensorboard: false"
            ) from None
        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder))

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        step = int(logs["epoch"])
        for name, value in logs.items():
            if name != "epoch":
                group = "loss" if name.endswith("loss") else name if name in ("lr", "seconds") else "metrics"
                self.writer.add_scalar(f"{group}/{name}", value, step)

    def on_train_end(self, trainer: Trainer) -> None:
        self.writer.flush()
        self.writer.close()
