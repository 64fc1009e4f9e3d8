"""Final metrics agree with scikit-learn; per-epoch scores are in the target's units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from strata.evaluation.metrics import classification, epoch_score, regression, score


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
