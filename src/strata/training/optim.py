"""Optimizers and learning-rate schedules.

Schedules are pure functions of the step (`lr_factor`), applied per batch through LambdaLR:
easy to test, to plot, and to resume (the only state is the step count). `train.optimizer.lr` is
the peak rate; every schedule is a multiplier in [0, 1] of it, after an optional linear warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from strata.recipe import OptimizerConfig, ScheduleConfig


def make_optimizer(
    model: nn.Module, cfg: OptimizerConfig, lr_scale: Callable[[str], float] | None = None
) -> torch.optim.Optimizer:
    """Weight decay applies to weight matrices and embeddings, not to biases or norm scales.
    `lr_scale(parameter name)` multiplies a parameter's rate (transfer learning's backbone rate).
    Frozen parameters stay in the groups (an optimizer skips parameters without gradients), so
    parts thawed later in training are trained from then on."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        decay = cfg.weight_decay if p.ndim >= 2 else 0.0
        groups.setdefault((decay, lr_scale(name) if lr_scale else 1.0), []).append(p)
    groups_list = [
        {"params": params, "weight_decay": decay, "lr": cfg.lr * scale} for (decay, scale), params in groups.items()
    ]
    return _optimizer(groups_list or [{"params": []}], cfg)


def _optimizer(groups: list[dict], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum or 0.0, nesterov=bool(cfg.nesterov))
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum or 0.0)
    kind = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    return kind(groups, lr=cfg.lr, betas=cfg.betas or (0.9, 0.999))


def lr_factor(cfg: ScheduleConfig, step: int, steps_per_epoch: int, epochs: int, lr: float) -> float:
    """Multiplier of the peak LR for optimizer step `step` (0-based).

    Time after warm-up is measured from the end of the warm-up, in epochs.
    """
    steps_per_epoch = max(steps_per_epoch, 1)
    total = steps_per_epoch * epochs
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / steps_per_epoch  # epochs since warm-up ended
    span = max(total - warmup, 1) / steps_per_epoch  # epochs the schedule runs for
    if cfg.name == "step":
        return (cfg.gamma or 0.1) ** math.floor(t / (cfg.step_size or max(epochs / 3, 1)))
    if cfg.name == "exponential":
        return (cfg.gamma or 0.95) ** t
    if cfg.name == "cosine":
        floor = (cfg.min_lr or 0.0) / lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t / span, 1.0)))
    if cfg.name == "cyclic":  # triangular: min_lr -> lr -> min_lr every cycle_epochs
        floor = (lr / 10 if cfg.min_lr is None else cfg.min_lr) / lr
        # The cycle starts low; after a warm-up (which ends at the peak) it starts at the peak instead.
        phase = (t / (cfg.cycle_epochs or 4.0) + (0.5 if warmup else 0.0)) % 1.0
        return floor + (1 - floor) * (1 - abs(2 * phase - 1))
    if cfg.name == "onecycle":  # as torch's OneCycleLR: lr/25 -> lr -> lr/25e4, cosine both ways
        return _one_cycle(step - warmup, total - warmup, cfg.pct_start or 0.3)
    return 1.0


def _one_cycle(step: int, total: int, pct_start: float) -> float:
    """Step-for-step the same curve as torch.optim.lr_scheduler.OneCycleLR (cosine annealing)."""
    start, end = 1 / 25, 1 / 25e4
    peak = max(pct_start * total - 1, 1e-9)  # the step at which the peak is reached
    if step <= peak:
        return 1 + (start - 1) * (1 + math.cos(math.pi * step / peak)) / 2
    p = min((step - peak) / max(total - 1 - peak, 1e-9), 1.0)
    return end + (1 - end) * (1 + math.cos(math.pi * p)) / 2


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int, epochs: int, lr: float
) -> torch.optim.lr_scheduler.LambdaLR | None:
    if cfg.name == "none" and not cfg.warmup_epochs:
        return None
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch, epochs, lr))
