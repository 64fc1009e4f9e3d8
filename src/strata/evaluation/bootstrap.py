"""Bootstrap confidence intervals for the headline metrics, computed for all resamples at once.

A resample is represented by how many times it draws each row (a row of multinomial counts `W`),
so metrics that are averages become one matrix product, and confusion matrices and ROC-AUC are
weighted sums: no Python loop calls a metric function a thousand times. The percentile interval
of the resampled values is reported. Tests check the resampled values against scikit-learn run on
the same resamples.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from strata.evaluation.metrics import nonzero_targets

CHUNK = 200  # resamples per block: bounds memory at CHUNK x rows floats


def resample_weights(n_rows: int, n: int, seed: int | list[int]) -> np.ndarray:
    """(n, n_rows) counts: how often each resample draws each row. `seed` may be a list (a seed
    sequence's entropy), so block b of a run seeded s draws from [s, b]: no two runs share blocks."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_rows, np.full(n_rows, 1 / n_rows), size=n).astype(np.float64)


def classification_resamples(codes: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per-resample accuracy, balanced accuracy, macro precision/recall/F1, log loss, Brier and ROC-AUC."""
    n, k = proba.shape
    pred = proba.argmax(1)
    rows = len(codes)
    onehot = np.eye(k)[codes]
    per_row = {
        "accuracy": (pred == codes).astype(float),
        "log_loss": -np.log(np.clip(proba[np.arange(n), codes], 1e-15, 1)),
        # scikit-learn's Brier score: the positive class's for two classes, the sum over classes otherwise
        "brier": (proba[:, 1] - codes) ** 2 if k == 2 else ((proba - onehot) ** 2).sum(1),
    }
    out = {name: weights @ values / rows for name, values in per_row.items()}
    out.update(_from_confusions(codes, pred, k, weights))
    if k == 2:
        out["roc_auc"] = _weighted_auc(codes == 1, proba[:, 1], weights)
    else:
        with warnings.catch_warnings():  # a resample without some class: NaN for it, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            out["roc_auc"] = np.nanmean([_weighted_auc(codes == c, proba[:, c], weights) for c in range(k)], axis=0)
    return out


def _from_confusions(codes: np.ndarray, pred: np.ndarray, k: int, weights: np.ndarray) -> dict[str, np.ndarray]:
    pairs = codes * k + pred
    confusion = np.stack([np.bincount(pairs, weights=w, minlength=k * k).reshape(k, k) for w in weights])
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    support, predicted = confusion.sum(2), confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    present = (support + predicted) > 0  # as scikit-learn's macro average: classes in labels or predictions
    labelled = support > 0
    return {
        "precision": (precision * present).sum(1) / present.sum(1),
        "recall": (recall * present).sum(1) / present.sum(1),
        "f1": (f1 * present).sum(1) / present.sum(1),
        "balanced_accuracy": (recall * labelled).sum(1) / labelled.sum(1),
    }


def _weighted_auc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of every resample: the weighted chance that a positive outscores a negative (ties half).

    Rows are grouped by tied score; a sparse (rows x groups) indicator turns the weights into each
    group's positive and negative weight for all resamples in one product, without copying them."""
    from scipy import sparse

    levels, group = np.unique(score, return_inverse=True)
    rows = np.arange(len(score))

    def per_group(mask: np.ndarray) -> np.ndarray:
        indicator = sparse.csc_matrix((np.ones(mask.sum()), (rows[mask], group[mask])), shape=(len(score), len(levels)))
        return np.asarray((indicator.T @ weights.T).T)

    pos, neg = per_group(positive), per_group(~positive)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(1) / (pos.sum(1) * neg.sum(1))  # NaN without both classes


def regression_resamples(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per-resample MAE, RMSE, R² and MAPE (over non-zero targets), in the target's units."""
    rows = len(y)
    err = pred - y
    mean = weights @ y / rows
    total = weights @ (y**2) - rows * mean**2
    nonzero = nonzero_targets(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "mae": weights @ np.abs(err) / rows,
            "rmse": np.sqrt(weights @ err**2 / rows),
            "r2": 1 - (weights @ err**2) / total,
        }
        if nonzero.any():
            out["mape"] = weights[:, nonzero] @ np.abs(err[nonzero] / y[nonzero]) / weights[:, nonzero].sum(1)
    return out


def intervals(
    task: str, y: np.ndarray, predictions: np.ndarray, n: int = 1000, seed: int = 0, confidence: float = 0.95
) -> dict[str, list[float]]:
    """{metric: [low, high]}: percentile bootstrap intervals. `predictions` are probabilities for
    classification (y: class codes) and values in the target's units for one regression target."""
    if len(y) < 2 or n < 1:
        return {}
    values: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, CHUNK):
        weights = resample_weights(len(y), min(CHUNK, n - start), [seed, start])
        block = (
            classification_resamples(y, predictions, weights) if task != "regression"
            else regression_resamples(y, predictions, weights)
        )  # fmt: skip
        for name, v in block.items():
            values.setdefault(name, []).append(v)
    tail = (1 - confidence) / 2 * 100
    out: dict[str, Any] = {}
    for name, chunks in values.items():
        v = np.concatenate(chunks)
        if np.isfinite(v).sum() >= 2:
            low, high = np.nanpercentile(v, [tail, 100 - tail])
            out[name] = [float(low), float(high)]
    return out


def attach(
    metrics: dict[str, Any], target_state: dict[str, Any], y: np.ndarray, predictions: np.ndarray,
    n: int, seed: int, confidence: float,
) -> None:  # fmt: skip
    """Put intervals into a metrics dict made by `metrics.score`, in place: `ci` {metric: [low, high]},
    `ci_level` and `bootstrap` (the number of resamples); for several regression targets, into each
    target's entry of `per_target`. `y` is the encoded target, `predictions` the model's (scaled)."""
    from strata.features import target

    if not n or "error" in metrics or len(y) < 2:
        return
    if target_state["task"] != "regression":
        found = {"": intervals(target_state["task"], y, predictions, n, seed, confidence)}
        homes = {"": metrics}
    else:
        y, predictions = target.decode(y, target_state), target.decode(predictions, target_state)
        names = target_state["columns"]
        found = {name: intervals("regression", y[:, i], predictions[:, i], n, seed, confidence)
                 for i, name in enumerate(names)}  # fmt: skip
        homes = {name: metrics["per_target"][name] for name in names} if len(names) > 1 else {names[0]: metrics}
    for key, home in homes.items():
        kept = {name: interval for name, interval in found[key].items() if home.get(name) is not None}
        if kept:  # an interval only beside a value (no ROC-AUC when a class has no rows, say)
            home.update(ci=kept, ci_level=confidence, bootstrap=n)
