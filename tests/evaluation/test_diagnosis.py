"""The learning-curve diagnosis on made-up histories, one per verdict, and the constant predictor's loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from strata.evaluation.diagnosis import Diagnosis, baseline_loss, diagnose


def run(train: list[float], val: list[float] | None = None) -> list[dict[str, float]]:
    """A history as the trainer records it: one dict per epoch, 1-based."""
    rows = []
    for i, loss in enumerate(train):
        row = {"epoch": i + 1, "train_loss": loss, "lr": 1e-3}
        if val is not None:
            row["val_loss"] = val[i]
        rows.append(row)
    return rows


def settled(epochs: int = 30, floor: float = 0.2) -> list[float]:
    """A loss that falls quickly and then flattens (well under 1% per epoch at the end)."""
    return [floor + 0.8 * math.exp(-e / 3) for e in range(epochs)]


# ------------------------------------------------------------------------------------ verdicts
def test_well_fit():
    train = settled()
    found = diagnose(run(train, [t + 0.05 for t in train]), baseline=0.69)
    assert found.verdict == "well fit"
    assert found.suggestions == [] and found.from_epoch is None


def test_well_fit_without_validation_or_baseline():
    assert diagnose(run(settled())).verdict == "well fit"


@pytest.mark.parametrize("where", ["train", "val"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_unstable_when_a_loss_is_not_finite(where, bad):
    train, val = settled(), [t + 0.05 for t in settled()]
    (train if where == "train" else val)[11] = bad
    found = diagnose(run(train, val), baseline=0.69)
    assert found.verdict == "unstable"
    assert "epoch 12" in found.detail
    assert any("lr" in s for s in found.suggestions)


def test_unstable_reports_the_first_epoch_that_is_not_finite():
    train = settled()
    train[20:] = [math.nan] * 10
    val = [t + 0.05 for t in settled()]
    val[15] = math.inf
    assert "epoch 16" in diagnose(run(train, val)).detail


def test_unstable_when_the_training_loss_spikes():
    train = settled()
    train[17] = 3.0 * min(train[:17])  # epoch 18: three times the best so far, undoing half the progress
    found = diagnose(run(train), baseline=0.69)
    assert found.verdict == "unstable"
    assert "spiked" in found.detail and "epoch 18" in found.detail and "more" not in found.detail


def test_several_spikes_are_counted():
    train = settled()
    for i in (10, 14, 22):
        train[i] = 3.0
    found = diagnose(run(train))
    assert found.verdict == "unstable"
    assert "epoch 11 and 2 more" in found.detail


def test_a_rise_below_the_spike_threshold_is_not_unstable():
    train = settled()
    train[17] = 1.4 * min(train[:17])
    assert diagnose(run(train)).verdict != "unstable"


def test_jitter_near_zero_loss_is_not_a_spike():
    # 1.0 -> 0.01, then 0.02: twice the best, but a hundredth of the progress undone
    train = [0.01 + 0.99 * math.exp(-e) for e in range(30)]
    train[20] = 2 * min(train[:20])
    assert diagnose(run(train)).verdict == "well fit"
    train[20] = min(train[:20]) + 0.3 * (train[0] - min(train[:20]))  # undoes 30% of the progress
    found = diagnose(run(train))
    assert found.verdict == "unstable" and "epoch 21" in found.detail


def test_the_first_two_epochs_may_jump():
    # The loss often rises in epoch 2 while a high learning rate settles: not a spike.
    train = settled()
    train[1] = 3 * train[0]
    assert diagnose(run(train)).verdict == "well fit"


def test_underfitting_when_the_training_loss_stays_near_the_constant_prediction():
    baseline = 0.69
    train = settled(floor=0.9 * baseline)
    found = diagnose(run(train, [t + 0.01 for t in train]), baseline=baseline)
    assert found.verdict == "underfitting"
    assert any("larger network" in s for s in found.suggestions)
    # the same curve is fine when a constant prediction does much worse
    assert diagnose(run(train, [t + 0.01 for t in train]), baseline=5 * baseline).verdict == "well fit"


def test_underfitting_threshold_is_eighty_percent_of_the_baseline():
    below, above = settled(floor=0.79), settled(floor=0.81)
    assert diagnose(run(below), baseline=1.0).verdict != "underfitting"
    assert diagnose(run(above), baseline=1.0).verdict == "underfitting"


@pytest.mark.parametrize("baseline", [None, 0.0])
def test_no_underfitting_verdict_without_a_usable_baseline(baseline):
    assert diagnose(run(settled(floor=5.0)), baseline=baseline).verdict != "underfitting"


def overfit_curves(best: int = 9, epochs: int = 30) -> tuple[list[float], list[float]]:
    """Training loss falling throughout; validation loss lowest at `best` (0-based), then rising."""
    train = [1.0 / (1 + e) for e in range(epochs)]
    val = [0.5 + 0.03 * abs(e - best) for e in range(epochs)]
    return train, val


@pytest.mark.parametrize("best", [4, 9, 20])
def test_overfitting_from_the_epoch_after_the_best(best):
    train, val = overfit_curves(best)
    found = diagnose(run(train, val), baseline=2.0)
    assert found.verdict == "overfitting"
    assert found.from_epoch == best + 2  # 1-based epoch after the best (1-based best + 1)
    assert f"rises from epoch {best + 2}" in found.detail
    assert any(s.startswith("stop earlier") and f"best epoch was {best + 1}" in s for s in found.suggestions)
    assert any("dropout" in s for s in found.suggestions)


def test_a_small_rise_of_the_validation_loss_is_not_overfitting():
    train, _ = overfit_curves()
    val = [0.5 + 0.001 * abs(e - 9) for e in range(30)]  # ends 4% above its best: noise
    assert diagnose(run(train, val), baseline=2.0).verdict != "overfitting"


def test_no_overfitting_when_the_training_loss_rose_too():
    # Both losses rise after epoch 10: the optimisation went wrong, the model did not memorise.
    train = [1.0 / (1 + e) if e < 10 else 0.1 + 0.005 * (e - 9) for e in range(30)]
    val = [0.5 + 0.03 * abs(e - 9) for e in range(30)]
    assert diagnose(run(train, val), baseline=2.0).verdict != "overfitting"


def test_no_overfitting_verdict_without_validation():
    train, _ = overfit_curves()
    assert diagnose(run(train), baseline=2.0).verdict != "overfitting"


def test_when_early_stopping_kept_the_best_weights_it_does_not_suggest_stopping_earlier():
    train, val = overfit_curves(best=9)
    plain = diagnose(run(train, val), baseline=2.0)
    kept = diagnose(run(train, val), baseline=2.0, kept_epoch=10)
    assert kept.verdict == "overfitting" and kept.from_epoch == plain.from_epoch == 11
    assert "early stopping kept the weights of epoch 10" in kept.detail
    assert not any(s.startswith("stop earlier") for s in kept.suggestions)
    assert kept.suggestions == [s for s in plain.suggestions if not s.startswith("stop earlier")]


@pytest.mark.parametrize("verdict", ["well fit", "unstable", "underfitting", "not converged"])
def test_kept_epoch_leaves_other_verdicts_alone(verdict):
    train = settled() if verdict != "not converged" else [1.0 - 0.02 * e for e in range(30)]
    if verdict == "unstable":
        train[20] = math.nan
    baseline = 0.22 if verdict == "underfitting" else 2.0
    history = run(train, [t + 0.05 for t in train])
    plain = diagnose(history, baseline)
    assert plain.verdict == verdict
    assert diagnose(history, baseline, kept_epoch=25) == plain


def test_not_converged_when_the_loss_still_falls():
    train = [1.0 - 0.02 * e for e in range(30)]  # about 3% of the loss per epoch at the end
    val = [t + 0.1 for t in train]
    found = diagnose(run(train, val), baseline=2.0)
    assert found.verdict == "not converged"
    assert "last 6 epochs" in found.detail  # a fifth of 30
    assert any("more epochs" in s for s in found.suggestions)


def test_converged_when_the_validation_loss_stopped_falling():
    # The training loss still falls but the validation loss is flat: more epochs would not help.
    train = [1.0 - 0.02 * e for e in range(30)]
    val = [0.7] * 30
    assert diagnose(run(train, val), baseline=2.0).verdict == "well fit"


def test_a_slow_fall_is_converged():
    train = [1.0 - 0.002 * e for e in range(30)]  # 0.2% per epoch
    assert diagnose(run(train), baseline=2.0).verdict == "well fit"


def test_very_short_runs_are_not_called_not_converged():
    assert diagnose(run([1.0, 0.5, 0.25]), baseline=2.0).verdict == "well fit"
    assert diagnose(run([1.0, 0.5, 0.25, 0.12]), baseline=2.0).verdict == "not converged"


def test_rules_are_checked_in_order():
    # A NaN in an underfit, overfit run: unstable first; underfitting before overfitting.
    train, val = overfit_curves()
    nan_train = [*train[:-1], math.nan]
    assert diagnose(run(nan_train, val), baseline=0.1).verdict == "unstable"
    slow = [0.1 * (1 - 0.002 * e) for e in range(len(train))]  # 0.1 -> 0.094: hardly learning, still falling
    assert diagnose(run(slow, val), baseline=0.1).verdict == "underfitting"
    assert diagnose(run(train, val), baseline=2.0).verdict == "overfitting"


def test_diagnosis_as_text_and_dict():
    train, val = overfit_curves()
    found = diagnose(run(train, val), baseline=2.0)
    assert isinstance(found, Diagnosis)
    assert found.text().startswith(f"overfitting: {found.detail}. Try: ")
    assert all(s in found.text() for s in found.suggestions)
    assert found.to_dict() == {
        "verdict": "overfitting",
        "detail": found.detail,
        "suggestions": found.suggestions,
        "from_epoch": found.from_epoch,
    }
    assert Diagnosis("well fit", "fine").text() == "well fit: fine"


# ---------------------------------------------------------------------------- baseline loss
@pytest.mark.parametrize(("k", "absent"), [(2, None), (4, None), (5, 3)])
def test_classification_baseline_is_the_cross_entropy_of_predicting_the_class_shares(k, absent):
    rng = np.random.default_rng(k)
    y = rng.choice(k, size=500, p=rng.dirichlet(np.ones(k)))
    if absent is not None:
        y[y == absent] = 0
    shares = np.bincount(y, minlength=k) / len(y)
    got = baseline_loss("multiclass" if k > 2 else "binary", "cross_entropy", y)
    assert got == pytest.approx(log_loss(y, np.tile(shares, (len(y), 1)), labels=list(range(k))))
    # as the network's own loss would measure it, with logits log(shares)
    logits = torch.log(torch.tensor(np.tile(shares, (len(y), 1))).clamp_min(1e-30))
    assert got == pytest.approx(float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))), rel=1e-6)
    # and no other constant prediction does better
    other = 0.7 * shares + 0.3 / k
    assert got < log_loss(y, np.tile(other, (len(y), 1)), labels=list(range(k)))


def test_classification_baseline_is_left_out_with_label_smoothing():
    assert baseline_loss("binary", "cross_entropy", np.array([0, 1, 1]), label_smoothing=0.1) is None


@pytest.mark.parametrize("shape", [(300,), (300, 1), (300, 3)])
def test_mse_baseline_is_the_variance(shape):
    y = np.random.default_rng(1).normal(5, 2, shape)
    got = baseline_loss("regression", "mse", y)
    column = y.reshape(len(y), -1)
    assert got == pytest.approx(np.var(column, axis=0).mean())
    prediction = torch.tensor(np.broadcast_to(column.mean(0), column.shape).copy())
    assert got == pytest.approx(float(torch.nn.functional.mse_loss(prediction, torch.tensor(column))))
    assert got < float(((column - column.mean(0) - 0.1) ** 2).mean())  # the mean is the best constant


@pytest.mark.parametrize("shape", [(301,), (300, 2)])
def test_mae_baseline_is_the_mean_absolute_deviation_from_the_median(shape):
    y = np.random.default_rng(2).exponential(3, shape)  # skewed: the median is not the mean
    got = baseline_loss("regression", "mae", y)
    column = y.reshape(len(y), -1)
    assert got == pytest.approx(np.mean([np.mean(np.abs(c - np.median(c))) for c in column.T]))
    for shift in (-0.2, 0.2):  # the median is the best constant for the absolute error
        assert got < np.abs(column - np.median(column, 0) - shift).mean()
    assert got < np.abs(column - column.mean(0)).mean()


def test_huber_has_no_baseline():
    assert baseline_loss("regression", "huber", np.arange(10.0)) is None
