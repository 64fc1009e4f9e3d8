"""Metrics. Final metrics come from scikit-learn; per-epoch validation scores are cheap torch ops.

Classification metrics take class codes and an (N x C) probability matrix; regression metrics take
values in the target's own units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from strata._labels import level_key

HEADLINE = (
    "accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc", "pr_auc", "log_loss", "brier", "ece",
    "mae", "rmse", "r2", "mape", "median_ae", "smape", "mase_naive", "mase_seasonal", "coverage",
)  # fmt: skip


FORECAST = ("mae", "rmse", "mape", "smape", "mase_naive", "mase_seasonal", "coverage")  # a forecast's, in its report


def score(task: str, target_state: dict[str, Any], y: np.ndarray, predictions: np.ndarray) -> dict[str, Any]:
    """Metrics from an encoded target and the model's predictions (probabilities, or scaled values)."""
    from strata.features import target

    if not np.isfinite(predictions).all():  # a diverged model: say so instead of failing in sklearn
        bad = int((~np.isfinite(predictions)).any(axis=1).sum())
        return {"error": f"the model outputs NaN or infinity for {bad} of {len(predictions)} rows"}
    if task != "regression":
        return classification(y, predictions, target_state["classes"])
    names = target_state["columns"]
    return regression(target.decode(y, target_state), target.decode(predictions, target_state), names)


def classification(codes: np.ndarray, proba: np.ndarray, classes: list) -> dict[str, Any]:
    """Macro averages are over the classes present in the labels or the predictions (as scikit-learn
    averages them); weighted averages weight each class by its support; `per_class` lists every
    class the model knows."""
    from sklearn import metrics as skm

    everything = list(range(len(classes)))
    proba = proba / proba.sum(1, keepdims=True)  # exact in float64, as log_loss checks
    pred = proba.argmax(1)
    p, r, f, support = skm.precision_recall_fscore_support(codes, pred, labels=everything, zero_division=0)
    present = np.union1d(codes, pred)
    weights = support / max(support.sum(), 1)
    return {
        "accuracy": float(skm.accuracy_score(codes, pred)),
        "balanced_accuracy": float(r[np.unique(codes)].mean()),  # mean recall over the classes in the labels
        "precision": float(p[present].mean()),
        "recall": float(r[present].mean()),
        "f1": float(f[present].mean()),
        "precision_weighted": float(p @ weights),
        "recall_weighted": float(r @ weights),
        "f1_weighted": float(f @ weights),
        "roc_auc": _roc_auc(codes, proba),
        "pr_auc": _pr_auc(codes, proba),
        "log_loss": float(skm.log_loss(codes, proba, labels=everything)),
        "brier": float(skm.brier_score_loss(codes, proba if len(classes) > 2 else proba[:, 1], labels=everything)),
        "ece": expected_calibration_error(codes, proba),
        "per_class": {
            level_key(c): {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": skm.confusion_matrix(codes, pred, labels=everything).tolist(),
    }


def expected_calibration_error(codes: np.ndarray, proba: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: the share-weighted gap between confidence and accuracy in equal-width bins."""
    confidence = proba.max(1)
    correct = proba.argmax(1) == codes
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = 0.0
    for b in np.unique(which):
        inside = which == b
        gap += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(gap)


def _pr_auc(codes: np.ndarray, proba: np.ndarray) -> float | None:
    """Average precision: binary, or the macro mean one-vs-rest over the classes in the labels."""
    from sklearn.metrics import average_precision_score

    present = np.unique(codes)
    if len(present) < 2:
        return None
    if proba.shape[1] == 2:
        return float(average_precision_score(codes == 1, proba[:, 1]))
    return float(np.mean([average_precision_score(codes == k, proba[:, k]) for k in present]))


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
    """MAE, RMSE, R², MAPE and median absolute error in the target's units. MAPE leaves out rows
    whose target is zero (a percentage of zero is undefined) and is None when every target is.
    With several targets, whose units differ, the top level keeps only the mean R² (unitless);
    each target's metrics are under `per_target`."""
    from sklearn import metrics as skm

    y, pred = y.reshape(len(y), -1), pred.reshape(len(pred), -1)
    if len(names) > 1:
        per_target = {n: regression(y[:, i], pred[:, i], [n]) for i, n in enumerate(names)}
        r2 = [m["r2"] for m in per_target.values()]
        return {"r2": None if None in r2 else float(np.mean(r2)), "per_target": per_target}
    nonzero = nonzero_targets(y[:, 0])
    return {
        "mae": float(skm.mean_absolute_error(y, pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "r2": float(skm.r2_score(y, pred)) if len(y) > 1 else None,
        "mape": float(np.mean(np.abs((y - pred)[nonzero, 0] / y[nonzero, 0]))) if nonzero.any() else None,
        "median_ae": float(skm.median_absolute_error(y, pred)),
    }


def nonzero_targets(y: np.ndarray) -> np.ndarray:
    """Rows whose target is not zero, for MAPE. Targets pass through float32 scaling, so a zero comes
    back as about 1e-7 of the target's scale: anything within 1e-5 of the largest |target| is zero."""
    scale = float(np.abs(y).max()) if len(y) else 0.0
    return np.abs(y) > max(1e-5 * scale, 1e-12)


def epoch_metrics(task: str, n_targets: int) -> list[str]:
    """Names of the per-epoch validation metrics `epoch_score` computes (besides the loss)."""
    if task == "forecast":  # scaled per series: the loss is the comparable number; MASE comes at the end
        return []
    if task != "regression":
        return ["accuracy"]
    return ["r2"] if n_targets > 1 else ["mae", "rmse", "r2"]


def epoch_score(task: str, target_state: dict[str, Any], head_kind: str) -> Callable[..., dict[str, float]] | None:
    """Validation scores computed each epoch from raw outputs (torch, no sklearn, no copies)."""
    import torch

    if task == "forecast":
        return None

    if task != "regression":

        def score_classes(outputs: torch.Tensor, codes: torch.Tensor) -> dict[str, float]:
            pred = (outputs[:, 0] > 0).long() if head_kind == "sigmoid" else outputs.argmax(1)
            return {"accuracy": float((pred == codes).float().mean())}

        return score_classes

    std = torch.tensor(target_state["std"], dtype=torch.float32)
    single = len(target_state["columns"]) == 1

    def score_values(outputs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        scale = std.to(outputs.device)
        err = (outputs - y) * scale  # back in the target's units
        ss_tot = ((y - y.mean(0)) * scale).pow(2).sum(0).clamp_min(1e-12)
        r2 = float((1 - err.pow(2).sum(0) / ss_tot).mean())
        if not single:
            return {"r2": r2}
        return {"mae": float(err.abs().mean()), "rmse": float(err.pow(2).mean().sqrt()), "r2": r2}

    return score_values
