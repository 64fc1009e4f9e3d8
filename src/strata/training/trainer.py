"""The training loop: one seeded permutation per epoch, index-sliced batches, callbacks at epoch ends.

Randomness is owned, not global: batch order comes from a generator seeded with the data seed,
dropout from the torch RNG seeded with the training seed inside `fork_rng`, so a run neither
depends on nor disturbs the caller's random state. On CPU two runs are bit-identical.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from strata.data.batches import TensorSet
from strata.models.heads import run
from strata.recipe import Seeds, TrainConfig
from strata.training.callbacks import Callback
from strata.training.optim import make_optimizer, make_scheduler

Score = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
Inputs = dict[str, torch.Tensor]
Augment = Callable[[Inputs, torch.Tensor, torch.Generator], tuple[Inputs, torch.Tensor]]


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        cfg: TrainConfig,
        seeds: Seeds,
        score: Score | None = None,
        callbacks: Sequence[Callback] = (),
        augment: Augment | None = None,
        frozen: Callable[[], list[nn.Module]] | None = None,
        lr_scale: Callable[[str], float] | None = None,
    ):
        self.model, self.loss, self.cfg, self.seeds = model, loss, cfg, seeds
        self.frozen = frozen  # parts kept in eval mode while training (frozen batch-norm statistics)
        self.augment = augment  # (inputs, target, generator) -> (inputs, target), training batches only
        self.score = score  # extra validation metrics from (outputs, target), e.g. accuracy
        self.callbacks = list(callbacks)
        self.optimizer = make_optimizer(model, cfg.optimizer, lr_scale)
        self.history: list[dict[str, float]] = []
        self.stop_reason: str | None = None
        self.best_epoch: int | None = None
        # L1 applies to weight matrices, like weight decay.
        self._l1_params = [p for p in model.parameters() if p.ndim >= 2] if cfg.l1 else []

    def stop(self, reason: str) -> None:
        """Ask the loop to stop after this epoch; the reason is kept in the run's metadata."""
        self.stop_reason = reason

    def fit(self, train: TensorSet, val: TensorSet | None = None) -> list[dict[str, float]]:
        """Train for up to `cfg.epochs` epochs; returns the history, one row of metrics per epoch."""
        self.history, self.stop_reason, self.best_epoch = [], None, None
        scheduler = make_scheduler(
            self.optimizer,
            self.cfg.schedule,
            train.n_batches(self.cfg.batch_size),
            self.cfg.epochs,
            self.cfg.optimizer.lr,
        )
        order = torch.Generator().manual_seed(self.seeds.data)
        self._augment_draws = torch.Generator().manual_seed(self.seeds.data + 1)  # its own stream: order stays
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(self.seeds.train)
            for cb in self.callbacks:
                cb.on_train_begin(self)
            for epoch in range(1, self.cfg.epochs + 1):
                logs = self._epoch(epoch, train, val, order, scheduler)
                self.history.append(logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, logs)
                if self.stop_reason:
                    break
            for cb in self.callbacks:
                cb.on_train_end(self)
        return self.history

    def _epoch(
        self,
        epoch: int,
        train: TensorSet,
        val: TensorSet | None,
        order: torch.Generator,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    ) -> dict[str, float]:
        lr = self.optimizer.param_groups[0]["lr"]  # the rate of the epoch's first step
        start = time.perf_counter()
        train_loss = self.train_epoch(train, order, scheduler)
        logs = {"epoch": epoch, "train_loss": train_loss, "seconds": time.perf_counter() - start, "lr": lr}
        if val is not None and len(val):
            logs.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
        if not math.isfinite(train_loss):
            self.stop(f"training loss became {train_loss} in epoch {epoch}: lower train.optimizer.lr or set train.clip")
        return logs

    def train_epoch(
        self, data: TensorSet, order: torch.Generator, scheduler: torch.optim.lr_scheduler.LRScheduler | None
    ) -> float:
        self.model.train()
        for part in self.frozen() if self.frozen else []:
            part.eval()
        losses, sizes = [], []
        clip = self.cfg.clip
        for inputs, target in data.batches(self.cfg.batch_size, order):
            if self.augment is not None:
                inputs, target = self.augment(inputs, target, self._augment_draws)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(**inputs), target)
            losses.append(loss.detach())  # summed once per epoch: no host sync per step
            sizes.append(len(target))
            if self._l1_params:
                loss = loss + self.cfg.l1 * sum(p.abs().sum() for p in self._l1_params)
            loss.backward()
            if clip is not None and clip.norm is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip.norm, foreach=True)
            elif clip is not None:
                nn.utils.clip_grad_value_(self.model.parameters(), clip.value, foreach=True)
            self.optimizer.step()
            if scheduler is not None:
                scheduler.step()
        weights = torch.tensor(sizes, dtype=torch.float32)
        return float(torch.stack(losses).float() @ weights / weights.sum())

    def predict(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw network outputs for all rows, in eval mode."""
        return run(self.model, inputs, out_size=0)

    def outputs(self, data: TensorSet, chunk: int = 8192) -> torch.Tensor:
        """Raw outputs for every row of a set (in memory or streamed), `chunk` rows at a time."""
        parts = [self.predict(inputs) for inputs in data.chunks(chunk)]
        return torch.cat(parts) if parts else torch.empty(0, 0)

    def evaluate(self, data: TensorSet) -> dict[str, float]:
        outputs = self.outputs(data)
        with torch.inference_mode():
            metrics = {"loss": float(self.loss(outputs, data.target))}
            if self.score is not None:
                metrics.update(self.score(outputs, data.target))
        return metrics
