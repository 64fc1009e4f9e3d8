from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest

from strata.data.datasets import load_dataset
from strata.data.forecast_spec import ForecastConfig
from strata.data.timeseries import fit_plan, unscale, windows
from strata.errors import DataError
from strata.evaluation import forecast
from strata.evaluation.forecast import (
    baselines,
    compare,
    coverage,
    forecast_metrics,
    forecast_plot,
    intervals,
    scales,
)


def numbered(values, test: float = 0.25, **cfg) -> tuple[pd.DataFrame, dict]:
    """A single series on numeric time 0, 1, 2, ... and its plan (no validation period)."""
    frame = pd.DataFrame({"t": np.arange(len(values)), "y": np.asarray(values, dtype=float)})
    spec = {"lookback": 4, "horizon": 2, **cfg}
    return frame, fit_plan(frame, ForecastConfig(time="t", **spec), "y", test=test, val=0.0)


# ------------------------------------------------------------------------------------- metrics
def test_metrics_on_a_hand_computed_example():
    truth = np.array([[1.0, 2.0], [3.0, 4.0]])
    pred = np.array([[2.0, 2.0], [3.0, 6.0]])  # errors 1, 0 / 0, 2
    m = forecast_metrics(truth, pred, scale_naive=0.5, scale_seasonal=0.25)
    assert m["mae"] == pytest.approx(0.75)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 4))
    assert m["mape"] == pytest.approx((1 / 1 + 2 / 4) / 4)  # fractions, as regression's MAPE
    assert m["smape"] == pytest.approx((2 / 3 + 4 / 10) / 4)
    assert (m["mase_naive"], m["mase_seasonal"]) == (pytest.approx(1.5), pytest.approx(3.0))
    assert m["mae_by_step"] == [0.5, 1.0]
    assert (m["windows"], m["horizon"], m["notes"]) == (2, 2, {})


def test_mape_is_none_with_a_reason_when_the_truth_has_zeros():
    m = forecast_metrics(np.array([[0.0, 2.0]]), np.array([[1.0, 2.0]]), 1.0, 1.0)
    assert m["mape"] is None
    assert m["notes"]["mape"] == "the truth is zero at 1 of 2 steps, where a percentage error is undefined"
    assert all(v is None or math.isfinite(v) for k, v in m.items() if k not in ("mae_by_step", "notes"))


def test_smape_is_bounded_and_exact_at_double_zero():
    assert forecast_metrics(np.array([[1.0, 0.0]]), np.array([[-1.0, 0.0]]), 1, 1)["smape"] == pytest.approx(1)
    assert forecast_metrics(np.array([[5.0]]), np.array([[-5.0]]), 1, 1)["smape"] == pytest.approx(2)


def test_undefined_mase_and_diverged_forecasts_are_said():
    m = forecast_metrics(np.ones((2, 1)), np.zeros((2, 1)), scale_naive=0.0, scale_seasonal=None)
    assert m["mase_naive"] is None and "in-sample error is 0" in m["notes"]["mase_naive"]
    assert m["mase_seasonal"] is None and "no seasonal in-sample error" in m["notes"]["mase_seasonal"]
    bad = forecast_metrics(np.ones((3, 2)), np.array([[1, np.nan], [1, 1], [np.inf, 1]]), 1, 1)
    assert bad == {"error": "the forecast has NaN or infinity in 2 of 3 windows"}
    with pytest.raises(ValueError, match=r"share a non-empty \(N, horizon\) shape"):
        forecast_metrics(np.ones((3, 2)), np.ones((3, 1)), 1, 1)


# ------------------------------------------------------------------------------------- scales
def test_scales_are_the_in_sample_one_step_errors_of_the_training_period():
    values = [1, 3, 2, 5, 4, 8, 6, 9] + [100] * 4  # training: the first 8 (test 1/3 of 12)
    frame, plan = numbered(values, test=1 / 3, season=2)
    s = scales(frame, plan)
    assert s["naive"] == pytest.approx(np.mean(np.abs(np.diff(values[:8]))))  # 2, 1, 3, 1, 4, 2, 3
    assert s["seasonal"] == pytest.approx(np.mean([1, 2, 2, 3, 2, 1]))  # y[t] - y[t-2]
    assert s["season"] == 2


def test_scales_pool_every_series_and_skip_ones_shorter_than_a_season():
    days = pd.date_range("2021-01-04", periods=30, freq="D")
    long = pd.DataFrame({"d": days, "s": "long", "y": np.arange(30.0) * 2})
    short = pd.DataFrame({"d": days[:7], "s": "short", "y": np.arange(7.0) * 4})
    frame = pd.concat([long, short])
    plan = fit_plan(frame, ForecastConfig(time="d", series="s", lookback=3, horizon=1), "y", test=0.2, val=0.0)
    s = scales(frame, plan)  # training: the first 24 days; season 7 (daily)
    assert s["naive"] == pytest.approx((23 * 2 + 6 * 4) / 29)
    assert s["seasonal"] == pytest.approx(14.0)  # the 17 differences of 'long'; 'short' is one season long


# ------------------------------------------------------------------------------------- baselines
def test_seasonal_naive_is_exact_on_a_periodic_series_and_naive_repeats_the_origin():
    pattern = [1.0, 5.0, 2.0, 8.0]
    frame, plan = numbered(pattern * 10, lookback=3, horizon=6, season=4)
    test = windows(frame, plan, "test")
    truth = unscale(test.y, test.series, plan)
    pred = baselines(frame, plan, test)
    assert forecast_metrics(truth, pred["seasonal_naive"], 1, 1)["mae"] == pytest.approx(0, abs=1e-4)
    origin_values = frame.set_index("t").y[test.origin].to_numpy()
    assert np.array_equal(pred["naive"], np.repeat(origin_values[:, None], 6, axis=1))
    assert forecast_metrics(truth, pred["naive"], 1, 1)["mae"] > 1


def test_seasonal_naive_uses_the_latest_value_of_the_same_phase():
    frame, plan = numbered(np.arange(40.0) ** 2, lookback=2, horizon=5, season=3)
    test = windows(frame, plan, "test")
    o = int(test.origin[0])
    got = baselines(frame, plan, test)["seasonal_naive"][0]
    want = [(o + k - 3 * math.ceil(k / 3)) ** 2 for k in range(1, 6)]  # o-2, o-1, o, o-2, o-1
    assert got.tolist() == want


def test_seasonal_naive_falls_back_to_naive_without_a_season_of_history():
    frame, plan = numbered(np.arange(40.0), lookback=2, horizon=1, season=12)
    train = windows(frame, plan, "train")  # the first origins have fewer than 12 steps behind them
    pred = baselines(frame, plan, train)
    assert pred["seasonal_naive"][0, 0] == pred["naive"][0, 0] == 1.0
    assert pred["seasonal_naive"][-1, 0] == float(train.origin[-1]) - 11


def test_compare_reports_the_model_beside_both_baselines():
    frame = load_dataset("seasonal")
    cfg = ForecastConfig(time="date", series="store", covariates=["promo"], lookback=14, horizon=7)
    plan = fit_plan(frame, cfg, "sales", test=0.2, val=0.1)
    test = windows(frame, plan, "test")
    truth = unscale(test.y, test.series, plan)
    base = baselines(frame, plan, test)
    report = compare(truth, base["seasonal_naive"], base, scales(frame, plan))
    assert list(report) == ["model", "naive", "seasonal_naive"]
    assert report["model"] == report["seasonal_naive"]
    assert report["seasonal_naive"]["mae"] < report["naive"]["mae"]  # a weekly cycle: last week beats yesterday


# ------------------------------------------------------------------------------------- intervals
def test_conformal_intervals_cover_about_the_confidence():
    rng = np.random.default_rng(0)
    val_truth, test_truth = rng.normal(0, 1, (2000, 3)), rng.normal(0, 1, (5000, 3))
    val_truth[:, 2] *= 3  # a later step is less certain
    test_truth[:, 2] *= 3
    lower, upper = intervals(val_truth, np.zeros_like(val_truth), 0.9)
    assert lower.shape == upper.shape == (3,)
    assert upper[:2] == pytest.approx([1.645, 1.645], abs=0.12) and upper[2] == pytest.approx(3 * 1.645, abs=0.3)
    assert lower == pytest.approx(-upper, abs=0.3)
    assert coverage(test_truth, lower, upper) == pytest.approx(0.9, abs=0.015)


def test_intervals_follow_biased_residuals_and_check_the_confidence():
    truth = np.arange(1.0, 101.0)[:, None]
    lower, upper = intervals(truth, np.zeros_like(truth), 0.5)  # residuals 1..100: all positive
    assert lower[0] > 0 and upper[0] > lower[0]
    assert coverage(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0]), np.array([2.0])) == 0.5
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        intervals(truth, truth, 1.0)


# ------------------------------------------------------------------------------------- plot
@pytest.mark.parametrize("dates", [True, False], ids=["dates", "numbers"])
def test_forecast_plot_is_png(dates):
    t = pd.date_range("2020-01-01", periods=40, freq="D").to_numpy() if dates else np.arange(40)
    y = np.sin(np.arange(40) / 3)
    png = forecast_plot(t[:30], y[:30], t[30:], y[30:], y[30:] + 0.1, y[30:] - 0.5, y[30:] + 0.5, "store a", 0.9)
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    future = forecast_plot(t[:30], y[:30], t[30:], None, y[30:])
    assert future.startswith(b"\x89PNG")


def test_docstring_examples_run():
    result = doctest.testmod(forecast, optionflags=doctest.ELLIPSIS, report=True, verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_baselines_refuse_windows_from_another_table():
    frame, plan = numbered(np.arange(40.0), lookback=3, horizon=2)
    test = windows(frame, plan, "test")
    with pytest.raises(DataError, match=r"^the windows do not come from this table"):
        baselines(frame.iloc[:20], plan, test)
