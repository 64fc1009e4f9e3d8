"""Metrics. Final (test) metrics come from scikit-learn; per-epoch validation scores are cheap torch ops.

Classification metrics take class codes and an (N x C) probability matrix; regression metrics take
values in the target's own units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def classification(codes: np.ndarray, proba: np.ndarray, classes: list) -> dict[str, Any]:
    from sklearn import metrics as skm

    labels = list(range(len(classes)))
    proba = proba / proba.sum(1, keepdims=True)  # exact in float64, as log_loss checks
    pred = proba.argmax(1)
    p, r, f, support = skm.precision_recall_fscore_support(codes, pred, labels=labels, zero_division=0)
    out: dict[str, Any] = {
        "accuracy": float(skm.accuracy_score(codes, pred)),
        "precision": float(p.mean()),
        "recall": float(r.mean()),
        "f1": float(f.mean()),
        "roc_auc": _roc_auc(codes, proba),
        "log_loss": float(skm.log_loss(codes, proba, labels=labels)),
        "per_class": {
            str(c): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": skm.confusion_matrix(codes, pred, labels=labels).tolist(),
    }
    return out


def _roc_auc(codes: np.ndarray, proba: np.ndarray) -> float | None:
    """Binary AUC, or macro one-vs-rest for several classes; None when a class is absent."""
    from sklearn.metrics import roc_auc_score

    present = np.unique(codes)
    if len(present) < proba.shape[1] or len(present) < 2:
        return None
    if proba.shape[1] == 2:
        return float(roc_auc_score(codes, proba[:, 1]))
    return float(roc_auc_score(codes, proba, multi_class="ovr", average="macro"))


def regression(y: np.ndarray, pred: np.ndarray, names: list[str]) -> dict[str, Any]:
    from sklearn import metrics as skm

    y, pred = y.reshape(len(y), -1), pred.reshape(len(pred), -1)
    out: dict[str, Any] = {
        "mae": float(skm.mean_absolute_error(y, pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "r2": float(skm.r2_score(y, pred)) if len(y) > 1 else None,
    }
    if len(names) > 1:
        out["per_target"] = {n: regression(y[:, i], pred[:, i], [n]) for i, n in enumerate(names)}
    return out


HEADLINE = ("accuracy", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2")


def epoch_score(task: str, target_state: dict[str, Any], head_kind: str) -> Callable[..., dict[str, float]]:
    """Validation scores computed each epoch from raw outputs (torch, no sklearn, no copies)."""
    import torch

    if task != "regression":

        def score(outputs: torch.Tensor, codes: torch.Tensor) -> dict[str, float]:
            pred = (outputs[:, 0] > 0).long() if head_kind == "sigmoid" else outputs.argmax(1)
            return {"accuracy": float((pred == codes).float().mean())}

        return score

    std = torch.tensor(target_state["std"], dtype=torch.float32)

    def score_regression(outputs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        err = (outputs - y) * std  # back in the target's units
        ss_tot = ((y - y.mean(0)) * std).pow(2).sum(0).clamp_min(1e-12)
        return {
            "mae": float(err.abs().mean()),
            "rmse": float(err.pow(2).mean().sqrt()),
            "r2": float((1 - err.pow(2).sum(0) / ss_tot).mean()),
        }

    return score_regression
