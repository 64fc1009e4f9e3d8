"""Bootstrap intervals: every resample's value is scikit-learn's metric on that resample written out
as explicit repeated rows, and the intervals behave as intervals should (contain the estimate, shrink
with more rows and a lower confidence, follow the seed)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from strata.evaluation import bootstrap
from strata.evaluation.bootstrap import (
    classification_resamples,
    intervals,
    regression_resamples,
    resample_weights,
)

CLASSIFICATION = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "log_loss", "brier", "roc_auc")
REGRESSION = ("mae", "rmse", "r2", "mape")


def classification_case(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes and probabilities better than chance; half the rows take their probabilities from a
    palette of five vectors, so every column of scores has many ties."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), codes] += rng.uniform(0, 1.0, n)
    proba /= proba.sum(1, keepdims=True)
    palette = rng.dirichlet(np.ones(k), 5)
    tied = rng.random(n) < 0.5
    proba[tied] = palette[rng.integers(0, 5, tied.sum())]
    return codes, proba


def regression_case(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A target with some exact zeros (left out of MAPE), the others away from 0, predictions near it."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(1, 9, n)
    y[rng.random(n) < 0.1] = 0.0
    return y, y + rng.normal(0, 1, n)


def expanded(weights: np.ndarray) -> list[np.ndarray]:
    """Each resample as the row indices it draws, a row repeated as often as it is drawn."""
    rows = np.arange(weights.shape[1])
    return [np.repeat(rows, w.astype(int)) for w in weights]


def sklearn_classification(codes: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    k = proba.shape[1]
    pred = proba.argmax(1)
    labels = list(range(k))
    return {
        "accuracy": skm.accuracy_score(codes, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(codes, pred),
        "precision": skm.precision_score(codes, pred, average="macro", zero_division=0),
        "recall": skm.recall_score(codes, pred, average="macro", zero_division=0),
        "f1": skm.f1_score(codes, pred, average="macro", zero_division=0),
        "log_loss": skm.log_loss(codes, proba, labels=labels),
        "brier": skm.brier_score_loss(codes, proba[:, 1] if k == 2 else proba, labels=labels),
        "roc_auc": skm.roc_auc_score(codes, proba[:, 1])
        if k == 2
        else skm.roc_auc_score(codes, proba, multi_class="ovr", average="macro", labels=labels),
    }


def sklearn_regression(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    nonzero = y != 0
    return {
        "mae": skm.mean_absolute_error(y, pred),
        "rmse": np.sqrt(skm.mean_squared_error(y, pred)),
        "r2": skm.r2_score(y, pred),
        "mape": skm.mean_absolute_percentage_error(y[nonzero], pred[nonzero]),
    }


# ---------------------------------------------------------------------------------- resamples
def test_resample_weights_are_draws_of_every_row_count():
    w = resample_weights(50, 30, seed=3)
    assert w.shape == (30, 50)
    assert np.array_equal(w, np.round(w)) and (w >= 0).all()
    assert (w.sum(1) == 50).all()  # each resample draws as many rows as there are
    assert len({tuple(r) for r in w}) == 30  # resamples differ from each other
    assert w.mean() == pytest.approx(1.0)
    assert np.array_equal(w, resample_weights(50, 30, seed=3))
    assert not np.array_equal(w, resample_weights(50, 30, seed=4))


@pytest.mark.parametrize("k", [2, 4])
def test_classification_resamples_equal_scikit_learn_on_the_repeated_rows(k):
    codes, proba = classification_case(120, k, seed=k)
    assert len(np.unique(proba[:, 1])) < 90  # the scores do tie
    weights = resample_weights(len(codes), 25, seed=11)
    got = classification_resamples(codes, proba, weights)
    assert set(got) == set(CLASSIFICATION)
    for i, rows in enumerate(expanded(weights)):
        expected = sklearn_classification(codes[rows], proba[rows])
        for name in CLASSIFICATION:
            assert got[name][i] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), (name, i)


def test_macro_averages_follow_scikit_learn_when_a_resample_misses_a_class():
    # A rare class that many resamples leave out of the labels, while it may still be predicted.
    rng = np.random.default_rng(5)
    codes = np.r_[rng.integers(0, 2, 40), [2]]
    proba = rng.dirichlet(np.ones(3), 41)
    weights = resample_weights(41, 40, seed=2)
    missing = weights[:, -1] == 0
    assert missing.any() and (~missing).any()
    assert (proba.argmax(1) == 2).sum() > 1  # predicted on rows that are not of class 2
    got = classification_resamples(codes, proba, weights)
    for i, rows in enumerate(expanded(weights)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
            expected = sklearn_classification(codes[rows], proba[rows]) if not missing[i] else None
            pred = proba[rows].argmax(1)
            balanced = skm.balanced_accuracy_score(codes[rows], pred)
        assert got["precision"][i] == pytest.approx(
            skm.precision_score(codes[rows], pred, average="macro", zero_division=0)
        )
        assert got["recall"][i] == pytest.approx(skm.recall_score(codes[rows], pred, average="macro", zero_division=0))
        assert got["f1"][i] == pytest.approx(skm.f1_score(codes[rows], pred, average="macro", zero_division=0))
        assert got["balanced_accuracy"][i] == pytest.approx(balanced)
        if expected is not None:
            assert got["roc_auc"][i] == pytest.approx(expected["roc_auc"])
        else:  # macro one-vs-rest AUC over the classes the resample holds
            present = np.unique(codes[rows])
            aucs = [skm.roc_auc_score(codes[rows] == c, proba[rows, c]) for c in present]
            assert got["roc_auc"][i] == pytest.approx(np.mean(aucs))


def test_regression_resamples_equal_scikit_learn_on_the_repeated_rows():
    y, pred = regression_case(150, seed=1)
    assert (y == 0).any()
    weights = resample_weights(len(y), 25, seed=12)
    got = regression_resamples(y, pred, weights)
    assert set(got) == set(REGRESSION)
    for i, rows in enumerate(expanded(weights)):
        expected = sklearn_regression(y[rows], pred[rows])
        for name in REGRESSION:
            assert got[name][i] == pytest.approx(expected[name], rel=1e-9), (name, i)


def test_regression_resamples_leave_out_mape_when_every_target_is_zero():
    y = np.zeros(20)
    got = regression_resamples(y, np.linspace(-1, 1, 20), resample_weights(20, 5, seed=0))
    assert "mape" not in got
    assert intervals("regression", y, np.linspace(-1, 1, 20), n=50).get("mape") is None


# ---------------------------------------------------------------------------------- intervals
@pytest.mark.parametrize("k", [2, 4])
def test_classification_intervals_contain_the_estimate_on_the_whole_data(k):
    codes, proba = classification_case(400, k, seed=20 + k)
    found = intervals("multiclass" if k > 2 else "binary", codes, proba, n=500, seed=0)
    assert set(found) == set(CLASSIFICATION)
    point = sklearn_classification(codes, proba)
    for name, (low, high) in found.items():
        assert low < point[name] < high, name


def test_regression_intervals_contain_the_estimate_on_the_whole_data():
    y, pred = regression_case(400, seed=2)
    found = intervals("regression", y, pred, n=500, seed=0)
    assert set(found) == set(REGRESSION)
    point = sklearn_regression(y, pred)
    for name, (low, high) in found.items():
        assert low < point[name] < high, name


def widths(found: dict[str, list[float]]) -> dict[str, float]:
    return {name: high - low for name, (low, high) in found.items()}


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_intervals_narrow_with_ten_times_the_rows(task):
    if task == "regression":
        y, pred = regression_case(2000, seed=8)
    else:
        k = 2 if task == "binary" else 4
        y, pred = classification_case(2000, k, seed=8)
        pred = 0.8 * pred + 0.2 / k  # no probability near 0: the log loss has no heavy tail
    small, large = widths(intervals(task, y[:200], pred[:200], n=400)), widths(intervals(task, y, pred, n=400))
    assert small.keys() == large.keys() and small
    for name in small:  # about sqrt(10) narrower; at least half as wide
        assert large[name] < small[name] / 2, name


def test_a_lower_confidence_gives_a_narrower_interval_inside_the_wider_one():
    codes, proba = classification_case(300, 3, seed=9)
    wide = intervals("multiclass", codes, proba, n=500, seed=1, confidence=0.95)
    narrow = intervals("multiclass", codes, proba, n=500, seed=1, confidence=0.8)
    assert wide.keys() == narrow.keys()
    for name in wide:
        assert wide[name][0] < narrow[name][0] < narrow[name][1] < wide[name][1], name


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_the_seed_fixes_the_intervals(task):
    y, pred = regression_case(150, seed=4) if task == "regression" else classification_case(150, 2, seed=4)
    # 450 resamples: more than one block of resamples
    first, again = intervals(task, y, pred, n=450, seed=7), intervals(task, y, pred, n=450, seed=7)
    other = intervals(task, y, pred, n=450, seed=8)
    assert first == again
    assert first.keys() == other.keys()
    continuous = ("log_loss", "brier") if task == "binary" else ("mae", "rmse")  # counts can tie by chance
    assert all(first[name] != other[name] for name in continuous)


def test_intervals_are_the_percentiles_of_distinct_resamples_in_every_block(monkeypatch):
    codes, proba = classification_case(100, 2, seed=6)
    drawn = []

    def recorded(n_rows: int, n: int, seed: list[int]) -> np.ndarray:
        drawn.append(resample_weights(n_rows, n, seed))
        return drawn[-1]

    monkeypatch.setattr(bootstrap, "resample_weights", recorded)
    found = intervals("binary", codes, proba, n=2 * bootstrap.CHUNK + 50, seed=3, confidence=0.9)
    weights = np.concatenate(drawn)
    assert len(drawn) == 3 and len(weights) == 2 * bootstrap.CHUNK + 50
    assert len({w.tobytes() for w in weights}) == len(weights)  # no block repeats another
    values = classification_resamples(codes, proba, weights)
    for name, interval in found.items():
        assert interval == pytest.approx(list(np.nanpercentile(values[name], [5, 95]))), name


@pytest.mark.parametrize("rows", [0, 1])
def test_too_few_rows_give_no_intervals(rows):
    codes, proba = classification_case(5, 2, seed=0)
    assert intervals("binary", codes[:rows], proba[:rows], n=100) == {}
    assert intervals("regression", np.arange(rows, dtype=float), np.arange(rows, dtype=float), n=100) == {}


def test_no_resamples_give_no_intervals():
    codes, proba = classification_case(50, 2, seed=0)
    assert intervals("binary", codes, proba, n=0) == {}


def test_metrics_undefined_on_most_resamples_are_left_out():
    # Two rows of different classes: a resample holds both classes only half the time, so the
    # ROC-AUC is often undefined (NaN) and must not turn the interval into NaN.
    codes = np.array([0, 1])
    proba = np.array([[0.7, 0.3], [0.4, 0.6]])
    found = intervals("binary", codes, proba, n=200)
    assert all(np.isfinite(v).all() for v in found.values())
    assert found["roc_auc"] == [1.0, 1.0]


def test_a_metric_undefined_on_every_resample_is_left_out():
    codes = np.ones(30, dtype=np.int64)  # one class only: no ROC-AUC on any resample
    proba = np.random.default_rng(0).dirichlet(np.ones(2), 30)
    found = intervals("binary", codes, proba, n=100)
    assert "roc_auc" not in found
    assert {"accuracy", "log_loss", "brier"} <= found.keys()
    assert all(np.isfinite(v).all() for v in found.values())


def test_macro_averages_skip_a_class_neither_labelled_nor_predicted_in_a_resample():
    # Class 2 is the label of one row and never predicted: resamples without that row lack it.
    rng = np.random.default_rng(3)
    codes = np.r_[rng.integers(0, 2, 30), [2]]
    proba = np.c_[rng.dirichlet(np.ones(2), 31) * 0.9, np.full(31, 0.1)]
    weights = resample_weights(31, 40, seed=1)
    assert (weights[:, -1] == 0).any() and (proba.argmax(1) != 2).all()
    got = classification_resamples(codes, proba, weights)
    for i, rows in enumerate(expanded(weights)):
        expected = sklearn_classification(codes[rows], proba[rows]) if weights[i, -1] else None
        pred = proba[rows].argmax(1)
        for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
            assert got[name][i] == pytest.approx(fn(codes[rows], pred, average="macro", zero_division=0)), name
        assert got["balanced_accuracy"][i] == pytest.approx(skm.balanced_accuracy_score(codes[rows], pred))
        if expected is not None:
            assert got["log_loss"][i] == pytest.approx(expected["log_loss"])


def test_confident_mistakes_cost_what_they_cost_in_scikit_learn():
    # Probabilities of 1e-9 for the true class: a loose clip of the log loss would hide them.
    codes = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    proba = np.where(np.arange(8)[:, None] % 3 == 0, [[1e-9, 1 - 1e-9]], [[0.6, 0.4]])
    proba[codes == 1] = proba[codes == 1][:, ::-1]
    weights = resample_weights(8, 30, seed=0)
    got = classification_resamples(codes, proba, weights)
    for i, rows in enumerate(expanded(weights)):
        assert got["log_loss"][i] == pytest.approx(skm.log_loss(codes[rows], proba[rows], labels=[0, 1]), rel=1e-9)
    assert got["log_loss"].max() > 5  # the confident mistakes are in there


def test_runs_with_seeds_a_block_apart_share_no_resamples(monkeypatch):
    codes, proba = classification_case(60, 2, seed=1)
    drawn: dict[int, list[bytes]] = {}

    for seed in (0, bootstrap.CHUNK):

        def recorded(n_rows: int, n: int, entropy: list[int], seed: int = seed) -> np.ndarray:
            weights = resample_weights(n_rows, n, entropy)
            drawn.setdefault(seed, []).extend(w.tobytes() for w in weights)
            return weights

        monkeypatch.setattr(bootstrap, "resample_weights", recorded)
        intervals("binary", codes, proba, n=3 * bootstrap.CHUNK, seed=seed)
    assert not set(drawn[0]) & set(drawn[bootstrap.CHUNK])
