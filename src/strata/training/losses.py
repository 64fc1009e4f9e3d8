"""Loss functions chosen from the task (or set explicitly), and the output head they need."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from strata._labels import level_key
from strata.errors import RecipeError, did_you_mean
from strata.models.heads import Head
from strata.recipe import LossConfig

CLASSIFICATION = ("cross_entropy", "bce")
REGRESSION = ("mse", "mae", "huber")


def resolve(cfg: LossConfig, task: str, n_classes: int, n_targets: int) -> tuple[str, Head]:
    """The loss name (`auto` resolved) and output head, checked against the task."""
    name = cfg.name
    if name == "auto":
        name = {"binary": "bce", "multiclass": "cross_entropy"}.get(task, "mse")
    valid = REGRESSION if task == "regression" else ("bce", "cross_entropy") if task == "binary" else ("cross_entropy",)
    if name not in valid:
        raise RecipeError(
            f"train.loss.name: {name!r} does not fit a {task} target; use one of "
            f"{', '.join(valid)}{did_you_mean(name, valid)}"
        )
    if task == "regression" and (cfg.class_weights or cfg.label_smoothing):
        raise RecipeError(
            "train.loss: class_weights and label_smoothing apply to classification, but the target is regression"
        )
    if name == "bce":
        return name, Head("sigmoid", 1)
    if name == "cross_entropy":
        return name, Head("softmax", n_classes)
    return name, Head("identity", n_targets)


def class_weights(cfg: LossConfig, codes: np.ndarray, classes: list) -> torch.Tensor | None:
    """Per-class weights: 'balanced' is n / (k * count), like scikit-learn; or given per class."""
    if cfg.class_weights is None:
        return None
    if cfg.class_weights == "balanced":
        counts = np.bincount(codes, minlength=len(classes)).astype(np.float64)
        return torch.tensor(len(codes) / (len(classes) * np.maximum(counts, 1)), dtype=torch.float32)
    keys = [level_key(c) for c in classes]
    unknown = [k for k in cfg.class_weights if k not in keys]
    if unknown:
        yaml_hint = " (YAML reads yes/no/on/off as true/false: quote them)" if unknown[0] in ("true", "false") else ""
        raise RecipeError(
            f"train.loss.class_weights: unknown class {unknown[0]!r}"
            f"{did_you_mean(unknown[0], keys)} (classes: {', '.join(keys)}){yaml_hint}"
        )
    return torch.tensor([cfg.class_weights.get(k, 1.0) for k in keys], dtype=torch.float32)


def make(
    name: str, cfg: LossConfig, weights: torch.Tensor | None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """loss(outputs, y): y holds class codes (int64, N) or scaled targets (float32, N x T)."""
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    if name == "bce":
        return _BinaryCrossEntropy(weights, cfg.label_smoothing)
    if name == "mse":
        return nn.MSELoss()
    if name == "mae":
        return nn.L1Loss()
    return nn.HuberLoss(delta=cfg.huber_delta or 1.0)


class _BinaryCrossEntropy(nn.Module):
    """BCE on one logit, with class weights (weighted mean, as CrossEntropyLoss) and label smoothing."""

    def __init__(self, weights: torch.Tensor | None, smoothing: float):
        super().__init__()
        self.smoothing = smoothing
        self.register_buffer("weights", weights)  # a buffer, so .to(device) moves it

    def forward(self, logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        soft = codes.ndim == 2  # mixup's class probabilities (N, 2), not codes
        y = codes[:, 1].to(logits.dtype) if soft else codes.to(logits.dtype)
        if self.smoothing:
            y = y * (1 - self.smoothing) + 0.5 * self.smoothing
        if self.weights is None:
            return F.binary_cross_entropy_with_logits(logits[:, 0], y)
        w = codes.to(self.weights.dtype) @ self.weights if soft else self.weights[codes]
        return (F.binary_cross_entropy_with_logits(logits[:, 0], y, reduction="none") * w).sum() / w.sum()
