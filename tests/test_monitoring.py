"""Drift monitoring: a reference from training rows, drift of new rows against it, a server window, a plot."""

from __future__ import annotations

import doctest
import json
import math
import threading

import numpy as np
import pandas as pd
import pytest

from strata import monitoring
from strata.monitoring import Monitor, drift, drift_plot, psi, reference

COLUMNS = [
    {"name": "age", "kind": "numeric", "state": {}},
    {"name": "city", "kind": "categorical", "state": {}},
    {"name": "member", "kind": "binary", "state": {}},
    {"name": "note", "kind": "text", "state": {}},
    {"name": "photo", "kind": "image", "state": {}},
]
CLASSES = ["no", "yes"]


def make_frame(n: int, seed: int = 0, shift: float = 0.0, cities=("paris", "rome", "oslo"), p=(0.5, 0.3, 0.2)):
    rng = np.random.default_rng(seed)
    age = rng.normal(40 + shift, 10, n)
    age[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "age": age,
            "city": rng.choice(list(cities), n, p=list(p)),
            "member": rng.choice([True, False], n),
            "note": ["x" * int(k) for k in rng.integers(5, 50, n)],
            "photo": [None] * n,
        }
    )


def scores(n: int, seed: int = 0, p_yes: float = 0.3) -> np.ndarray:
    """(N, 2) class scores whose argmax is 'yes' for about p_yes of the rows."""
    yes = np.random.default_rng(seed + 100).random(n) < p_yes
    return np.column_stack([~yes, yes]).astype(float) * 0.8 + 0.1


@pytest.fixture(scope="module")
def train():
    return make_frame(3000)


@pytest.fixture(scope="module")
def ref(train):
    return reference(train, COLUMNS, scores(len(train)), "binary", CLASSES)


def test_reference_is_plain_json_and_skips_images(ref):
    again = json.loads(json.dumps(ref, allow_nan=False))
    assert again == ref
    assert set(ref) == {"format", "rows", "task", "features", "predictions", "notes"}
    assert list(ref["features"]) == ["age", "city", "member", "note"]
    assert any("photo" in n and "not monitored" in n for n in ref["notes"])
    age = ref["features"]["age"]
    assert (
        len(age["edges"]) == 12 and len(age["shares"]) == 13
    )  # deciles, the max, the tails and len(age["sample"]) == 500
    assert math.isclose(sum(age["shares"]) + age["missing"], 1.0)
    assert ref["features"]["note"]["measure"] == "length"
    assert ref["predictions"]["levels"] == CLASSES


def test_resample_of_training_rows_is_stable(train, ref):
    sample = train.sample(1000, replace=True, random_state=1)
    report = drift(ref, sample, scores(3000)[sample.index])
    assert report["verdict"] == "stable" and report["drifted"] == []
    assert all(r["psi"] < 0.1 for r in report["features"].values())
    assert report["predictions"]["psi"] < 0.1
    assert report["thresholds"]["psi_moderate"] == 0.1 and report["thresholds"]["psi_major"] == 0.25
    json.dumps(report, allow_nan=False)


def test_shifted_numeric_column_is_major_drift(ref):
    report = drift(ref, make_frame(1000, seed=2, shift=20.0), None)
    age = report["features"]["age"]
    assert age["verdict"] == "major drift" and age["ks_p_value"] < 0.01
    assert report["verdict"] == "major drift" and "age" in report["drifted"]
    assert report["features"]["city"]["verdict"] == "stable"


def test_changed_category_mix_is_detected(ref):
    report = drift(ref, make_frame(1000, seed=3, p=(0.1, 0.3, 0.6)), None)
    city = report["features"]["city"]
    assert city["chi2_p_value"] < 0.01 and city["verdict"] != "stable"
    assert "city" in report["drifted"]


def test_prediction_shift_is_detected(train, ref):
    report = drift(ref, make_frame(1000, seed=4), scores(1000, seed=4, p_yes=0.8))
    assert report["predictions"]["verdict"] == "major drift"
    assert report["verdict"] == "major drift" and report["drifted"] == []  # the features did not move


def test_regression_predictions_use_value_bins():
    frame = make_frame(500)
    values = np.random.default_rng(0).normal(size=(500, 2))
    ref = reference(frame, COLUMNS[:1], values, "regression", None)
    assert len(ref["predictions"]["shares"]) == 13
    report = drift(ref, frame, values[:, 0] + 3)
    assert report["predictions"]["verdict"] == "major drift" and report["predictions"]["ks_p_value"] < 0.01


def test_psi_matches_a_hand_computed_value():
    expected, actual = np.array([0.2, 0.3, 0.5]), np.array([0.3, 0.3, 0.4])
    hand = (0.3 - 0.2) * math.log(0.3 / 0.2) + 0 + (0.4 - 0.5) * math.log(0.4 / 0.5)
    assert math.isclose(psi(expected, actual), hand)
    # an empty bin counts as epsilon, so the index stays finite
    assert math.isclose(
        psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]), (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    )


def test_psi_through_drift_on_a_tiny_example():
    ref = reference(pd.DataFrame({"c": ["a"] * 5 + ["b"] * 5}), [{"name": "c", "kind": "categorical"}], None, "x", None)
    report = drift(ref, pd.DataFrame({"c": ["a"] * 3 + ["b"] * 7}), None)
    assert math.isclose(
        report["features"]["c"]["psi"], (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    )
    assert any("little power" in n for n in report["notes"])


def test_unseen_categories_and_missing_columns_are_reported(ref):
    frame = make_frame(200, seed=5, cities=("paris", "tokyo", "lima"), p=(0.4, 0.4, 0.2)).drop(columns=["note"])
    report = drift(ref, frame, None)
    city = report["features"]["city"]
    assert set(city["unseen"]) == {"tokyo", "lima"} and city["verdict"] == "major drift"
    assert city["current"][city["buckets"].index("<other>")] > 0.5
    assert report["missing_columns"] == ["note"] and "note" not in report["features"]
    assert any("note" in n for n in report["notes"])


def test_missing_values_change_is_reported(ref):
    frame = make_frame(500, seed=6)
    frame.loc[:249, "age"] = np.nan
    age = drift(ref, frame, None)["features"]["age"]
    assert age["missing_current"] > 0.5 and age["missing_change"] > 0.4 and age["verdict"] == "major drift"


def test_monitor_window_is_bounded(ref):
    monitor = Monitor(ref, window=100)
    assert monitor.report()["verdict"] == "no data"
    for seed in range(5):
        monitor.update(make_frame(70, seed=seed), scores(70, seed=seed))
    report = monitor.report()
    assert report["rows_seen"] == 350 and report["rows"] == 100
    assert all(len(v) == 100 for v in monitor._values.values()) and len(monitor._predictions) == 100
    monitor.update(make_frame(100, seed=9, shift=20.0))  # the window now holds only shifted rows
    assert monitor.report()["features"]["age"]["verdict"] == "major drift"


def test_monitor_is_thread_safe(ref):
    monitor = Monitor(ref, window=5000)
    errors = []

    def work(seed):
        try:
            for i in range(10):
                monitor.update(make_frame(20, seed=seed * 100 + i), scores(20, seed=i))
                monitor.report()
        except Exception as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = monitor.report()
    assert report["rows_seen"] == 1600 and report["rows"] == 1600 and report["predictions"]["rows"] == 1600


def test_drift_plot_is_png(ref):
    frame = make_frame(300, seed=7, shift=15.0)
    report = drift(ref, frame, scores(300, seed=7))
    png = drift_plot(ref, frame, report)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert drift_plot(ref, frame).startswith(b"\x89PNG")


def test_docstring_examples_run():
    result = doctest.testmod(monitoring, optionflags=doctest.ELLIPSIS, report=True, verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_constant_and_discrete_columns_that_move_are_drift():
    train = pd.DataFrame({"const": [1.0] * 200, "count": [0] * 120 + [1] * 50 + [2] * 30})
    cols = [{"name": "const", "kind": "numeric"}, {"name": "count", "kind": "numeric"}]
    ref = reference(train, cols, None, "regression", None)
    report = drift(ref, pd.DataFrame({"const": [2.0] * 100, "count": [0] * 20 + [1] * 30 + [2] * 50}), None)
    assert report["features"]["const"]["verdict"] == "major drift"
    assert report["features"]["count"]["verdict"] == "major drift"
    assert drift(ref, train, None)["verdict"] == "stable"


def test_reference_of_row_positions_equals_that_of_the_copied_rows(train):
    """Training summarises its rows by position (no copy of the table), in two steps: the features
    before training, the predictions after; the result is the one-step reference of the copied rows."""
    rows = np.arange(0, len(train), 3)
    predicted = scores(len(rows))
    copied = reference(train.iloc[rows], COLUMNS, predicted, "binary", CLASSES)
    by_position = reference(train, COLUMNS, predicted, "binary", CLASSES, rows)
    in_two = monitoring.with_predictions(
        monitoring.feature_reference(train, COLUMNS, "binary", rows), predicted, CLASSES
    )
    assert json.dumps(copied) == json.dumps(by_position) == json.dumps(in_two)
    assert copied["rows"] == len(rows) and copied["predictions"] is not None
    with pytest.raises(Exception, match=r"reference: 5 predictions for 1000 rows"):
        monitoring.with_predictions(
            monitoring.feature_reference(train, COLUMNS, "binary", rows), predicted[:5], CLASSES
        )
