"""Final metrics agree with scikit-learn; per-epoch scores are in the target's units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from strata.evaluation.metrics import classification, epoch_score, expected_calibration_error, regression, score


def random_case(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), codes] += rng.uniform(0, 0.8, n)  # better than chance, not perfect
    return codes, proba / proba.sum(1, keepdims=True)


# --------------------------------------------------------------------------- classification
@pytest.mark.parametrize("k", [2, 4])
def test_classification_equals_scikit_learn(k):
    codes, proba = random_case(300, k, seed=k)
    pred = proba.argmax(1)
    got = classification(codes, proba, [f"c{i}" for i in range(k)])
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(codes, pred))
    assert got["precision"] == pytest.approx(skm.precision_score(codes, pred, average="macro"))
    assert got["recall"] == pytest.approx(skm.recall_score(codes, pred, average="macro"))
    assert got["f1"] == pytest.approx(skm.f1_score(codes, pred, average="macro"))
    auc = skm.roc_auc_score(codes, proba[:, 1]) if k == 2 else skm.roc_auc_score(codes, proba, multi_class="ovr")
    assert got["roc_auc"] == pytest.approx(auc)
    assert got["log_loss"] == pytest.approx(skm.log_loss(codes, proba))
    assert got["confusion_matrix"] == skm.confusion_matrix(codes, pred).tolist()
    assert got["per_class"]["c1"]["f1"] == pytest.approx(skm.f1_score(codes, pred, average=None)[1])


def test_macro_averages_skip_classes_absent_from_labels_and_predictions():
    # A model trained on two classes, evaluated on rows of one class only, all predicted right.
    codes = np.ones(6, dtype=np.int64)
    proba = np.tile([0.2, 0.8], (6, 1))
    got = classification(codes, proba, ["no", "yes"])
    assert (got["precision"], got["recall"], got["f1"]) == (1.0, 1.0, 1.0)
    assert got["per_class"]["no"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert got["per_class"]["yes"]["support"] == 6
    assert got["roc_auc"] is None  # undefined with one class in the labels
    assert got["confusion_matrix"] == [[0, 0], [0, 6]]


def test_macro_averages_match_scikit_learn_when_a_class_is_never_seen():
    codes, proba = random_case(200, 3, seed=7)
    codes, proba = codes[codes < 2], proba[codes < 2]
    proba[:, 2] = 0.0  # class 2: neither in the labels nor predicted
    pred = proba.argmax(1)
    got = classification(codes, proba, ["a", "b", "c"])
    assert got["f1"] == pytest.approx(skm.f1_score(codes, pred, average="macro"))
    assert got["recall"] == pytest.approx(skm.recall_score(codes, pred, average="macro"))
    assert set(got["per_class"]) == {"a", "b", "c"}


def test_per_class_keys_use_the_level_spelling():
    codes, proba = random_case(50, 2, seed=1)
    assert list(classification(codes, proba, [0.0, 1.0])["per_class"]) == ["0", "1"]
    assert list(classification(codes, proba, [False, True])["per_class"]) == ["false", "true"]


# ------------------------------------------------------------------------------- regression
def test_regression_equals_scikit_learn():
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 80)
    pred = y + rng.normal(0, 1, 80)
    got = regression(y, pred, ["price"])
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_several_targets_keep_only_the_unitless_mean_r2_at_the_top():
    rng = np.random.default_rng(4)
    y = np.stack([rng.normal(0, 1, 60), rng.normal(1000, 300, 60)], axis=1)
    pred = y + rng.normal(0, [0.5, 100], (60, 2))
    got = regression(y, pred, ["small", "large"])
    assert set(got) == {"r2", "per_target"}
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))  # uniform average of the two
    assert got["per_target"]["large"]["mae"] == pytest.approx(skm.mean_absolute_error(y[:, 1], pred[:, 1]))
    assert got["per_target"]["small"]["r2"] == pytest.approx(skm.r2_score(y[:, 0], pred[:, 0]))


@pytest.mark.parametrize(
    ("task", "state", "y"),
    [
        ("multiclass", {"classes": ["a", "b"]}, np.array([0, 1])),
        ("regression", {"columns": ["y"], "mean": [0.0], "std": [1.0]}, np.zeros((2, 1))),
    ],
)
def test_score_reports_non_finite_predictions_instead_of_failing(task, state, y):
    predictions = np.array([[0.5, 0.5], [np.nan, np.nan]]) if task != "regression" else np.array([[1.0], [np.inf]])
    assert score(task, state, y, predictions) == {"error": "the model outputs NaN or infinity for 1 of 2 rows"}


# ------------------------------------------------------------------------------ epoch score
def test_epoch_regression_scores_are_in_the_targets_units():
    rng = np.random.default_rng(5)
    state = {"task": "regression", "columns": ["price"], "mean": [200.0], "std": [50.0]}
    y_scaled = rng.normal(size=(40, 1)).astype(np.float32)
    out_scaled = (y_scaled + rng.normal(0, 0.3, (40, 1))).astype(np.float32)
    got = epoch_score("regression", state, "identity")(torch.from_numpy(out_scaled), torch.from_numpy(y_scaled))
    y, pred = y_scaled * 50 + 200, out_scaled * 50 + 200
    assert got.keys() == {"mae", "rmse", "r2"}
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-4)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), rel=1e-4)
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred), rel=1e-4)


def test_epoch_score_with_several_targets_gives_only_r2():
    rng = np.random.default_rng(6)
    state = {"task": "regression", "columns": ["a", "b"], "mean": [0.0, 5.0], "std": [1.0, 100.0]}
    y_scaled = rng.normal(size=(30, 2)).astype(np.float32)
    out_scaled = (y_scaled + rng.normal(0, 0.5, (30, 2))).astype(np.float32)
    got = epoch_score("regression", state, "identity")(torch.from_numpy(out_scaled), torch.from_numpy(y_scaled))
    assert got.keys() == {"r2"}
    assert got["r2"] == pytest.approx(skm.r2_score(y_scaled, out_scaled), rel=1e-4)


@pytest.mark.parametrize(
    ("head", "outputs"), [("sigmoid", [[2.0], [-1.0], [0.5]]), ("softmax", [[0, 1], [2, 0], [0, 3]])]
)
def test_epoch_accuracy_reads_the_head(head, outputs):
    accuracy = epoch_score("binary", {"classes": ["n", "y"]}, head)
    assert accuracy(torch.tensor(outputs, dtype=torch.float32), torch.tensor([1, 0, 0]))["accuracy"] == pytest.approx(
        2 / 3
    )


# ------------------------------------------------------------------- further headline metrics
@pytest.mark.parametrize("k", [2, 4])
def test_further_classification_metrics_equal_scikit_learn(k):
    codes, proba = random_case(300, k, seed=10 + k)
    pred = proba.argmax(1)
    labels = list(range(k))
    got = classification(codes, proba, [f"c{i}" for i in range(k)])
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(codes, pred))
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        weighted = fn(codes, pred, labels=labels, average="weighted", zero_division=0)
        assert got[f"{name}_weighted"] == pytest.approx(weighted), name
    if k == 2:
        assert got["pr_auc"] == pytest.approx(skm.average_precision_score(codes, proba[:, 1]))
        assert got["brier"] == pytest.approx(skm.brier_score_loss(codes, proba[:, 1]))
        assert got["brier"] == pytest.approx(np.mean((proba[:, 1] - codes) ** 2))
    else:
        onehot = np.eye(k)[codes]
        assert got["pr_auc"] == pytest.approx(skm.average_precision_score(onehot, proba, average="macro"))
        assert got["brier"] == pytest.approx(skm.brier_score_loss(codes, proba, labels=labels))
        assert got["brier"] == pytest.approx(np.mean(((proba - onehot) ** 2).sum(1)))


def test_pr_auc_and_balanced_accuracy_use_only_the_classes_in_the_labels():
    codes, proba = random_case(200, 3, seed=21)
    codes, proba = codes[codes < 2], proba[codes < 2]  # class 2 is never the label, sometimes predicted
    pred = proba.argmax(1)
    assert (pred == 2).any()
    got = classification(codes, proba, ["a", "b", "c"])
    aps = [skm.average_precision_score(codes == c, proba[:, c]) for c in (0, 1)]
    assert got["pr_auc"] == pytest.approx(np.mean(aps))
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        balanced = skm.balanced_accuracy_score(codes, pred)
    assert got["balanced_accuracy"] == pytest.approx(balanced)
    assert got["recall"] != pytest.approx(balanced)  # the macro recall also counts the predicted-only class
    one_class = classification(np.ones(5, dtype=np.int64), np.tile([0.3, 0.7], (5, 1)), ["n", "y"])
    assert one_class["pr_auc"] is None


def ece_by_hand(codes: np.ndarray, proba: np.ndarray, bins: int) -> float:
    """Top-label ECE written out: for each bin [b/bins, (b+1)/bins) (the last one closed), the gap
    between the number of right predictions and the summed confidence, over all rows."""
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        rows = [i for i in range(len(codes)) if low <= max(proba[i]) < high or (b == bins - 1 and max(proba[i]) == 1.0)]
        right = sum(int(np.argmax(proba[i]) == codes[i]) for i in rows)
        total += abs(right - sum(max(proba[i]) for i in rows))
    return total / len(codes)


@pytest.mark.parametrize(("k", "seed"), [(2, 0), (3, 1), (5, 2)])
def test_ece_equals_a_direct_computation(k, seed):
    codes, proba = random_case(250, k, seed=seed)
    assert expected_calibration_error(codes, proba) == pytest.approx(ece_by_hand(codes, proba, 15))
    assert expected_calibration_error(codes, proba, bins=7) == pytest.approx(ece_by_hand(codes, proba, 7))
    assert classification(codes, proba, list(range(k)))["ece"] == pytest.approx(ece_by_hand(codes, proba, 15))


def test_ece_at_its_extremes():
    codes = np.array([0, 1, 1, 0])
    right = np.eye(2)[codes]
    assert expected_calibration_error(codes, right) == 0.0  # certain and right
    assert expected_calibration_error(codes, right[:, ::-1]) == 1.0  # certain and wrong
    # 0.75 confident, right three times out of four: calibrated
    proba = np.array([[0.75, 0.25], [0.25, 0.75], [0.25, 0.75], [0.25, 0.75]])
    assert expected_calibration_error(codes, proba) == pytest.approx(0.0)
    # 0.75 confident, right half the time: off by a quarter
    assert expected_calibration_error(np.array([1, 0, 1, 1]), proba) == pytest.approx(0.25)
    # certain and wrong twice, 0.95 confident and right twice: one bin, the last, holds all four
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [0.95, 0.05], [0.05, 0.95]])
    codes = np.array([1, 0, 0, 1])
    assert expected_calibration_error(codes, proba) == pytest.approx(abs(0.5 - np.mean([1, 1, 0.95, 0.95])))
    assert expected_calibration_error(codes, proba) == pytest.approx(ece_by_hand(codes, proba, 15))


def test_mape_and_median_ae_equal_scikit_learn_leaving_out_zero_targets():
    rng = np.random.default_rng(8)
    y = rng.uniform(1, 20, 120)
    y[::7] = 0.0
    pred = y + rng.normal(0, 2, 120)
    got = regression(y, pred, ["price"])
    nonzero = y != 0
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y[nonzero], pred[nonzero]))
    assert got["median_ae"] == pytest.approx(skm.median_absolute_error(y, pred))
    assert got["median_ae"] == pytest.approx(np.median(np.abs(y - pred)))
    # scikit-learn's own MAPE divides by a tiny epsilon where the target is 0: huge, not a percentage
    assert skm.mean_absolute_percentage_error(y, pred) > 1e6 * got["mape"]


def test_mape_is_none_when_every_target_is_zero():
    got = regression(np.zeros(10), np.linspace(-1, 1, 10), ["y"])
    assert got["mape"] is None
    assert got["mae"] == pytest.approx(np.abs(np.linspace(-1, 1, 10)).mean())  # the other metrics still work


def test_several_targets_each_get_mape_and_median_ae():
    rng = np.random.default_rng(9)
    y = np.stack([rng.uniform(1, 5, 50), np.zeros(50)], axis=1)
    pred = y + rng.normal(0, 0.5, (50, 2))
    got = regression(y, pred, ["a", "b"])
    assert got["per_target"]["a"]["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y[:, 0], pred[:, 0]))
    assert got["per_target"]["b"]["mape"] is None
    assert got["per_target"]["b"]["median_ae"] == pytest.approx(skm.median_absolute_error(y[:, 1], pred[:, 1]))
