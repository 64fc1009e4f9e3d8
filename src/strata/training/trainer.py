"""The training loop: one seeded permutation per epoch, index-sliced batches, callbacks at epoch ends.

Randomness is owned, not global: batch order comes from a generator seeded with the data seed,
dropout from the torch RNG seeded with the training seed inside `fork_rng`, so a run neither
depends on nor disturbs the caller's random state. On CPU two runs are bit-identical.

`state_dict` holds everything a run needs to go on exactly as it would have (weights, optimizer,
schedule, callbacks, every random stream): a run resumed from an epoch's checkpoint ends with the
same weights, bit for bit, as one never stopped (checkpoint.py writes and verifies the files).
Options that change the step (accumulation, mixed precision, a GPU) are set up once in `fit`;
unset, the step is the plain fp32 one on the CPU.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from strata import distributed
from strata._process import tune_for_training, use_channels_last
from strata.data.batches import TensorSet
from strata.errors import StrataError
from strata.models.heads import Rows, run
from strata.recipe import Seeds, TrainConfig
from strata.training import device as devices
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
        self._net = model  # what training batches run through: DDP's wrapper under torchrun (strata.distributed)
        self.history: list[dict[str, float]] = []
        self.stop_reason: str | None = None
        self.best_epoch: int | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.placement = devices.place(cfg)  # warns now about options this machine cannot give
        self._channels_last = False
        self._order = torch.Generator()
        self._augment_draws = torch.Generator()
        # L1 applies to weight matrices, like weight decay.
        self._l1_params = [p for p in model.parameters() if p.ndim >= 2] if cfg.l1 else []

    def stop(self, reason: str) -> None:
        """Ask the loop to stop after this epoch; the reason is kept in the run's metadata."""
        self.stop_reason = reason

    def fit(
        self, train: TensorSet, val: TensorSet | None = None, resume: dict[str, Any] | None = None
    ) -> list[dict[str, float]]:
        """Train for up to `cfg.epochs` epochs; returns the history, one row of metrics per epoch.
        `resume` is a `state_dict()` saved at an epoch's end: training goes on from the next epoch."""
        tune_for_training()  # process tuning for CPU training, once per process (strata/_process.py; issue 9)
        self.history, self.stop_reason, self.best_epoch = [], None, None
        if self.placement.moved:
            train = self._to_device(train)
        nhwc = not self.placement.moved and use_channels_last(self.model)  # CPU convolutions (_process.py; issue 9)
        self._net = distributed.wrap(self.model, train)  # the model itself unless `train` is a process's shard
        if self.placement.compile:
            self._net = torch.compile(self._net)
        self.scheduler = scheduler = self._scheduler(train)
        self._order = order = torch.Generator().manual_seed(self.seeds.data)
        self._augment_draws = torch.Generator().manual_seed(self.seeds.data + 1)  # its own stream: order stays
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        try:
            with torch.random.fork_rng(devices=cuda), _caller_random_state():
                torch.manual_seed(self.seeds.train)
                for cb in self.callbacks:
                    cb.on_train_begin(self)
                if resume is not None:
                    self.load_state_dict(resume)
                self._epochs(train, val, order, scheduler)
                for cb in self.callbacks:
                    cb.on_train_end(self)
        finally:  # also when training fails or is interrupted: the caller's model as it was laid out
            if nhwc:  # back to plain contiguous weights for the bundle and exports (issue 9)
                self.model.to(memory_format=torch.contiguous_format)
            if self.placement.moved:  # the bundle, predictions and exports work on the CPU
                self._to_cpu()
        return self.history

    def _epochs(
        self,
        train: TensorSet,
        val: TensorSet | None,
        order: torch.Generator,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    ) -> None:
        """The epochs after those in the history (a resumed run has some), until the last or a stop."""
        first = len(self.history) + 1 if not self.stop_reason else self.cfg.epochs + 1
        for epoch in range(first, self.cfg.epochs + 1):
            logs = self._epoch(epoch, train, val, order, scheduler)
            self.history.append(logs)
            for cb in self.callbacks:
                cb.on_epoch_end(self, logs)
            if self.stop_reason:
                break

    def _scheduler(self, train: TensorSet) -> torch.optim.lr_scheduler.LRScheduler | None:
        steps = -(-train.n_batches(self.cfg.batch_size) // (self.cfg.accumulate or 1))  # optimizer steps per epoch
        return make_scheduler(self.optimizer, self.cfg.schedule, steps, self.cfg.epochs, self.cfg.optimizer.lr)

    def _to_cpu(self) -> None:
        self.model.to("cpu", memory_format=torch.contiguous_format)
        if isinstance(self.loss, nn.Module):
            self.loss.to("cpu")

    def _to_device(self, train: TensorSet) -> TensorSet:
        """Put the network (and the loss's class weights) on the device. An in-memory training set
        that fits is copied to the GPU once; other batches are copied one by one from pinned memory,
        after augmentation (which draws on the CPU)."""
        place = self.placement
        self._channels_last = place.device.type == "cuda" and devices.has_conv2d(self.model)
        self.model.to(place.device, memory_format=torch.channels_last if self._channels_last else torch.preserve_format)
        if isinstance(self.loss, nn.Module):
            self.loss.to(place.device)
        if place.scale:
            self.scaler = torch.amp.GradScaler(place.device.type)
        if type(train) is TensorSet and self.augment is None and _fits(train, place.device):
            train = TensorSet({k: self._moved(v) for k, v in train.inputs.items()}, self._moved(train.target))
        return train

    def _moved(self, tensor: torch.Tensor) -> torch.Tensor:
        return devices.to_device(tensor, self.placement.device, self._channels_last)

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
        k, moved = self.cfg.accumulate or 1, self.placement.moved
        for group in _groups(data.batches(self.cfg.batch_size, order), k):  # k micro-batches per step
            self.optimizer.zero_grad(set_to_none=True)
            rows = sum(len(target) for _, target in group) if k > 1 else 0
            for inputs, target in group:
                if self.augment is not None:
                    inputs, target = self.augment(inputs, target, self._augment_draws)
                if moved:
                    inputs, target = {n: self._moved(x) for n, x in inputs.items()}, self._moved(target)
                loss = self._loss(inputs, target)
                losses.append(loss.detach())  # summed once per epoch: no host sync per step
                sizes.append(len(target))
                if self._l1_params:
                    loss = loss + self.cfg.l1 * sum(p.abs().sum() for p in self._l1_params)
                if rows:  # the group's mean loss, as one batch of all its rows would have it
                    loss = loss * (len(target) / rows)
                (loss if self.scaler is None else self.scaler.scale(loss)).backward()
            self._step(scheduler)
        weights = torch.tensor(sizes, dtype=torch.float32)
        return float(torch.stack(losses).float().cpu() @ weights / weights.sum())

    def _loss(self, inputs: Inputs, target: torch.Tensor) -> torch.Tensor:
        if self.placement.autocast is None:
            return self.loss(self._net(**inputs), target)
        with torch.autocast(self.placement.device.type, dtype=self.placement.autocast):
            return self.loss(self._net(**inputs), target)

    def _step(self, scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> None:
        """Clip the summed gradients, update the weights, advance the schedule by one step."""
        clip, scaler = self.cfg.clip, self.scaler
        if scaler is not None and clip is not None:
            scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        if clip is not None and clip.norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), clip.norm, foreach=True)
        elif clip is not None:
            nn.utils.clip_grad_value_(self.model.parameters(), clip.value, foreach=True)
        if scaler is None:
            self.optimizer.step()
        else:
            scaler.step(self.optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step()

    def predict(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw network outputs for all rows, in eval mode (on the CPU, wherever the network is)."""
        device = next(self.model.parameters(), torch.empty(0)).device
        if device.type == "cpu":
            return run(self.model, inputs, out_size=0)
        return run(self.model, {k: v.to(device) for k, v in inputs.items()}, out_size=0).cpu()

    def outputs(self, data: TensorSet, chunk: int = 8192) -> torch.Tensor:
        """Raw outputs for every row of a set (in memory or streamed), `chunk` rows at a time."""
        out, start = Rows(len(data)), 0
        for inputs in data.chunks(chunk):
            part = self.predict(inputs)
            out.put(start, part)
            start += len(part)
        return out.result(torch.empty(0, 0))

    def evaluate(self, data: TensorSet) -> dict[str, float]:
        outputs = self.outputs(data)
        with torch.inference_mode():
            if self.placement.moved and isinstance(self.loss, nn.Module):  # its class weights are there
                device = self.placement.device
                metrics = {"loss": float(self.loss(outputs.to(device), data.target.to(device)))}
            else:
                metrics = {"loss": float(self.loss(outputs, data.target))}
            if self.score is not None:
                metrics.update(self.score(outputs, data.target))
        return metrics

    # ---- resumable state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to go on from the end of the last epoch as if never stopped."""
        import numpy as np

        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        names = _callback_keys(self.callbacks)
        return {
            "epoch": len(self.history), "history": self.history, "stop_reason": self.stop_reason,
            "best_epoch": self.best_epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "callbacks": {name: state for name, cb in zip(names, self.callbacks, strict=True)
                          if (state := cb.state_dict())},
            "rng": {
                "python": random.getstate(), "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "order": self._order.get_state(), "augment": self._augment_draws.get_state(),
            },
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (inside `fit`, after the callbacks' on_train_begin)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        names = _callback_keys(self.callbacks)
        missing = sorted(set(state["callbacks"]) - set(names))
        if missing:
            raise StrataError(f"the checkpoint holds the state of callbacks this run lacks: {', '.join(missing)}")
        for name, cb in zip(names, self.callbacks, strict=True):
            if name in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][name])
        self.history, self.stop_reason = list(state["history"]), state["stop_reason"]
        self.best_epoch = state["best_epoch"]
        _set_rng(state["rng"], self._order, self._augment_draws)


@contextlib.contextmanager
def _caller_random_state() -> Iterator[None]:
    """Python's and NumPy's global generators as the caller had them, after training: a resumed run
    restores those of the interrupted one (for callbacks that draw from them) without disturbing
    the caller's, as torch's `fork_rng` does for torch's."""
    import numpy as np

    python, numpy = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)


def _set_rng(rng: dict[str, Any], order: torch.Generator, augment: torch.Generator) -> None:
    import numpy as np

    random.setstate(rng["python"])
    kind, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
    order.set_state(rng["order"])
    augment.set_state(rng["augment"])


def _callback_keys(callbacks: Iterable[Callback]) -> list[str]:
    """`EarlyStopping`, `EarlyStopping#2`...: a callback's saved state finds it again by type and rank."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        name = type(cb).__name__
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


def _groups(batches: Iterable[Any], k: int) -> Iterator[tuple[Any, ...]]:
    """Batches k at a time (the last group may be shorter); k == 1: each alone."""
    if k == 1:
        for batch in batches:
            yield (batch,)
        return
    group: list[Any] = []
    for batch in batches:
        group.append(batch)
        if len(group) == k:
            yield tuple(group)
            group = []
    if group:
        yield tuple(group)


def _fits(data: TensorSet, device: torch.device) -> bool:
    """An in-memory set goes to the GPU whole when it takes at most half the free memory there."""
    size = sum(x.nbytes for x in data.inputs.values()) + data.target.nbytes
    free, _ = torch.cuda.mem_get_info(device) if device.type == "cuda" else (0, 0)
    return size <= free // 2
