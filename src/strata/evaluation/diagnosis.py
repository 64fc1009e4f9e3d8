"""Reading a run's learning curves: underfitting, overfitting (and from which epoch), well fit, or not
converged / unstable, with what to try next.

The rules, in the order they are checked:

    unstable       a loss is NaN or infinite; or the training loss exceeds 10x a constant predictor's
                   (the learning rate blew it up); or after the first epochs the training loss jumps above
                   1.5x its best so far, undoing more than a quarter of the progress from epoch 1 (spikes)
    underfitting   the training loss ends above 80% of a constant predictor's loss (class shares for
                   classification, the mean or median for regression): the network learned little
    overfitting    the validation loss ends more than 10% above its best, at least two epochs after it,
                   and the training loss kept falling after that best epoch; reported from the epoch
                   after the best
    not converged  the training loss still fell by more than 1% per epoch over the last fifth of the
                   epochs, and the validation loss (if any) with it: more epochs would help
    well fit       none of the above
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SPIKE, UNDONE, EXPLODED, UNDERFIT, OVERFIT_RISE, STILL_FALLING = 1.5, 0.25, 10.0, 0.8, 0.10, 0.01


@dataclass(frozen=True)
class Diagnosis:
    verdict: str  # unstable | underfitting | overfitting | not converged | well fit
    detail: str  # what in the curves says so
    suggestions: list[str] = field(default_factory=list)
    from_epoch: int | None = None  # overfitting: the first epoch past the best

    def text(self) -> str:
        tips = "; ".join(self.suggestions)
        return f"{self.verdict}: {self.detail}" + (f". Try: {tips}" if tips else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def baseline_loss(task: str, loss: str, y_train: np.ndarray, label_smoothing: float = 0.0) -> float | None:
    """The training loss of the best constant prediction (class shares; the mean or median)."""
    if task != "regression":
        share = np.bincount(y_train) / len(y_train)
        share = share[share > 0]
        entropy = float(-(share * np.log(share)).sum())  # cross-entropy of predicting the shares
        return entropy if not label_smoothing else None  # smoothing changes the floor; skip the rule
    y = y_train.reshape(len(y_train), -1)
    if loss == "mse":
        return float(((y - y.mean(0)) ** 2).mean())
    if loss == "mae":
        return float(np.abs(y - np.median(y, 0)).mean())
    return None  # huber: no closed form worth the trouble


def diagnose(
    history: list[dict[str, float]], baseline: float | None = None, kept_epoch: int | None = None
) -> Diagnosis:
    """The verdict on a run's history. `baseline` is the constant predictor's training loss;
    `kept_epoch` the epoch whose weights early stopping restored, if it did."""
    train = np.array([h["train_loss"] for h in history], dtype=float)
    val = np.array([h["val_loss"] for h in history], dtype=float) if "val_loss" in history[0] else None
    for check in (_unstable, _underfitting, _overfitting, _not_converged):
        found = check(train, val, baseline)
        if found is not None:
            if found.verdict == "overfitting" and kept_epoch:
                kept = [s for s in found.suggestions if not s.startswith("stop earlier")]
                return Diagnosis(found.verdict, f"{found.detail}; early stopping kept the weights of epoch "
                                 f"{kept_epoch}", kept, found.from_epoch)  # fmt: skip
            return found
    gap = f"; validation loss {val[-1]:.4g}" if val is not None else ""
    return Diagnosis("well fit", f"training loss settled at {train[-1]:.4g}{gap}")


def _unstable(train: np.ndarray, val: np.ndarray | None, baseline: float | None) -> Diagnosis | None:
    tips = [
        "lower train.optimizer.lr (e.g. by 3-10x)",
        "set train.clip: {norm: 1.0}",
        "add a warm-up (train.schedule.warmup_epochs)",
    ]
    curves = [train] if val is None else [train, val]
    bad = [int(np.flatnonzero(~np.isfinite(c))[0]) + 1 for c in curves if not np.isfinite(c).all()]
    if bad:
        return Diagnosis("unstable", f"the loss became NaN or infinite in epoch {min(bad)}", tips)
    if baseline and train.max() > EXPLODED * baseline:  # a rate so high that epoch 1 already blew up
        worst = int(np.argmax(train)) + 1
        return Diagnosis("unstable", f"the training loss reached {train.max():.4g} in epoch {worst}, more than "
                         f"{EXPLODED:g}x the {baseline:.4g} of a constant prediction", tips)  # fmt: skip
    best_so_far = np.minimum.accumulate(train)
    # from epoch 3 (the first epochs move a lot), a jump above SPIKE x the best so far that also undoes
    # more than a quarter of the progress made: jitter near zero loss (0.01 -> 0.02) is not a spike
    best, now = best_so_far[1:-1], train[2:]
    spikes = np.flatnonzero((now > SPIKE * best) & (now - best > UNDONE * (train[0] - best))) + 3
    if len(spikes):
        return Diagnosis("unstable", f"the training loss spiked above {SPIKE}x its best in epoch {spikes[0]}"
                         + (f" and {len(spikes) - 1} more" if len(spikes) > 1 else ""), tips)  # fmt: skip
    return None


def _underfitting(train: np.ndarray, val: np.ndarray | None, baseline: float | None) -> Diagnosis | None:
    if baseline is None or baseline <= 0 or train[-1] <= UNDERFIT * baseline:
        return None
    relation = "close to" if train[-1] <= baseline else "above"
    return Diagnosis(
        "underfitting",
        f"the training loss ends at {train[-1]:.4g}, {relation} the {baseline:.4g} of a constant prediction",
        ["a larger network (model.hidden; model.hidden_size for rnn, lstm, gru; d_model for a transformer)",
         "more epochs", "a higher learning rate", "less regularisation "
         "(dropout, weight decay, l1)", "check that the inputs carry signal (features, target)"],
    )  # fmt: skip


def _overfitting(train: np.ndarray, val: np.ndarray | None, baseline: float | None) -> Diagnosis | None:
    if val is None or len(val) < 3:
        return None
    best = int(np.argmin(val))
    rise = (val[-1] - val[best]) / max(abs(val[best]), 1e-12)
    if best >= len(val) - 2 or rise <= OVERFIT_RISE or train[-1] >= train[best]:  # 2+ epochs past the best
        return None
    epoch = best + 2  # 1-based: the first epoch after the best
    return Diagnosis(
        "overfitting",
        f"validation loss rises from epoch {epoch} ({val[best]:.4g} -> {val[-1]:.4g}) while training loss keeps "
        f"falling ({train[best]:.4g} -> {train[-1]:.4g})",
        ["add dropout (model.dropout)", "add weight decay (train.optimizer.weight_decay)",
         f"stop earlier (train.early_stopping; the best epoch was {best + 1})", "more training data"],
        from_epoch=epoch,
    )  # fmt: skip


def _not_converged(train: np.ndarray, val: np.ndarray | None, baseline: float | None) -> Diagnosis | None:
    tail = max(len(train) // 5, 2)
    if len(train) < 4:
        return None
    per_epoch = _relative_drop(train[-tail - 1 :])
    still = per_epoch > STILL_FALLING and (val is None or _relative_drop(val[-tail - 1 :]) > 0)
    if not still:
        return None
    return Diagnosis(
        "not converged",
        f"the training loss still fell {per_epoch:.1%} per epoch over the last {tail} epochs",
        ["more epochs (train.epochs)", "a higher learning rate, or a schedule that decays later"],
    )


def _relative_drop(losses: np.ndarray) -> float:
    """Mean relative fall per epoch over the window (negative when the loss rose)."""
    start, end = float(losses[0]), float(losses[-1])
    if not (math.isfinite(start) and math.isfinite(end)) or start <= 0:
        return 0.0
    return (start - end) / start / (len(losses) - 1)
