from __future__ import annotations

import doctest
import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from strata.data import forecast_spec, timeseries
from strata.data.datasets import DATASETS, load_dataset
from strata.data.forecast_spec import ForecastConfig
from strata.data.timeseries import fit_plan, latest_windows, recursive_forecast, unscale, windows
from strata.errors import DataError, RecipeError


def monthly(n: int = 60, start: str = "2015-01-01") -> pd.DataFrame:
    return pd.DataFrame({"month": pd.date_range(start, periods=n, freq="MS"), "sales": np.arange(n, dtype=float)})


def stores(seed: int = 0) -> pd.DataFrame:
    """Three daily series of unequal spans, rows shuffled. `sales` encodes (store, day): 1000 * store + day."""
    rng = np.random.default_rng(seed)
    spans = {"a": ("2020-01-01", 100), "b": ("2020-01-21", 80), "c": ("2020-01-01", 90)}
    parts = []
    for code, (store, (start, n)) in enumerate(spans.items()):
        days = pd.date_range(start, periods=n, freq="D")
        day = (days - pd.Timestamp("2020-01-01")).days.to_numpy()
        parts.append(pd.DataFrame({"day": days, "store": store, "sales": 1000.0 * code + day,
                                   "temp": rng.normal(20, 5, n)}))  # fmt: skip
    return pd.concat(parts, ignore_index=True).sample(frac=1, random_state=seed).reset_index(drop=True)


STORES = ForecastConfig(time="day", series="store", covariates=["temp"], lookback=7, horizon=3)
SINGLE = ForecastConfig(time="month", lookback=12, horizon=4)


def cases():
    return [(monthly(), SINGLE, "sales"), (stores(), STORES, "sales")]


def stamp(value) -> np.datetime64:
    return pd.Timestamp(value).to_datetime64()


# ------------------------------------------------------------------------------------- leakage
@pytest.mark.parametrize(("frame", "cfg", "target"), cases(), ids=["single", "stores"])
def test_each_window_stays_in_its_period(frame, cfg, target):
    plan = fit_plan(frame, cfg, target, test=0.2, val=0.15)
    val_start, test_start = stamp(plan["split"]["val_start"]), stamp(plan["split"]["test_start"])
    train, val, test = (windows(frame, plan, p) for p in ("train", "val", "test"))
    assert len(train) and len(val) and len(test)
    assert (train.times < val_start).all()  # targets, and so inputs, wholly before validation
    assert (train.origin < val_start).all()
    assert ((val.times >= val_start) & (val.times < test_start)).all()
    assert (test.times >= test_start).all()
    for w in (train, val, test):  # inputs end just before the first target: nothing from a later period
        assert (w.origin < w.times[:, 0]).all()


def test_evaluation_windows_may_look_back_into_earlier_periods():
    plan = fit_plan(monthly(), SINGLE, "sales", test=0.2, val=0.0)
    first = windows(monthly(), plan, "test")
    assert str(first.origin[0])[:10] == "2018-12-01"  # the last training month
    assert str(first.times[0, 0])[:10] == plan["split"]["test_start"][:10]


# ------------------------------------------------------------------------------------- values
@pytest.mark.parametrize(("frame", "cfg", "target"), cases(), ids=["single", "stores"])
def test_windows_hold_the_raw_values_in_time_order(frame, cfg, target):
    plan = fit_plan(frame, cfg, target, test=0.2, val=0.1)
    lookup = {(str(s), pd.Timestamp(t)): v for s, t, v in
              zip(frame[cfg.series] if cfg.series else [target] * len(frame), frame[cfg.time], frame[target], strict=True)}  # fmt: skip
    step = pd.tseries.frequencies.to_offset(plan["freq"])
    for part in ("train", "val", "test"):
        w = windows(frame, plan, part)
        ids = [plan["series_ids"][i] for i in w.series]
        want_y = [[lookup[(s, pd.Timestamp(t))] for t in row] for s, row in zip(ids, w.times, strict=True)]
        np.testing.assert_allclose(unscale(w.y, w.series, plan), want_y, rtol=1e-5, atol=1e-3)
        past = [[lookup[(s, pd.Timestamp(o) - k * step)] for k in range(cfg.lookback - 1, -1, -1)]
                for s, o in zip(ids, w.origin, strict=True)]  # fmt: skip
        np.testing.assert_allclose(unscale(w.x[:, :, 0], w.series, plan), past, rtol=1e-5, atol=1e-3)


def test_covariates_follow_the_target_in_the_inputs():
    frame = stores()
    plan = fit_plan(frame, STORES, "sales", test=0.2, val=0.1)
    w = windows(frame, plan, "train")
    assert w.x.shape[1:] == (7, 2) and plan["features"] == ["sales", "temp"]
    scaling = plan["scaling"][plan["series_ids"][w.series[0]]]
    temp = w.x[0, -1, 1] * scaling["std"][1] + scaling["mean"][1]
    row = frame[(frame.store == plan["series_ids"][w.series[0]]) & (frame.day == w.origin[0])]
    assert temp == pytest.approx(row.temp.item(), rel=1e-5)


def test_shapes_and_dtypes():
    plan = fit_plan(monthly(), SINGLE, "sales", test=0.2, val=0.1)
    w = windows(monthly(), plan, "train")
    assert w.x.dtype == np.float32 and w.y.dtype == np.float32
    assert w.x.shape == (len(w), 12, 1) and w.y.shape == (len(w), 4) and w.times.shape == (len(w), 4)
    assert w.lengths.tolist() == [12] * len(w) and w.series.dtype == np.int64
    assert plan["windows"] == {p: len(windows(monthly(), plan, p)) for p in ("train", "val", "test")}


def test_stride_steps_window_starts_and_training_ends_at_the_cut():
    frame = monthly(60)
    plan = fit_plan(frame, SINGLE.model_copy(update={"stride": 3}), "sales", test=0.2, val=0.0)
    train, test = windows(frame, plan, "train"), windows(frame, plan, "test")
    months = lambda times: pd.DatetimeIndex(times).year * 12 + pd.DatetimeIndex(times).month  # noqa: E731
    assert set(np.diff(months(train.origin))) == {3} and set(np.diff(months(test.origin))) == {3}
    assert str(train.times[-1, -1])[:10] == "2018-12-01"  # the most recent training month is used
    assert str(test.times[0, 0])[:10] == "2019-01-01"  # the first test window starts at the cut
    every = fit_plan(frame, SINGLE, "sales", test=0.2, val=0.0)
    assert len(windows(frame, every, "train")) == 48 - 12 - 4 + 1 == 33
    assert len(train) == 11  # ceil(33 / 3)


def test_recursive_trains_one_step_and_evaluates_the_whole_horizon():
    plan = fit_plan(monthly(), SINGLE.model_copy(update={"strategy": "recursive"}), "sales", test=0.2, val=0.1)
    assert (plan["horizon"], plan["train_horizon"]) == (4, 1)
    assert windows(monthly(), plan, "train").y.shape[1] == 1
    assert windows(monthly(), plan, "val").y.shape[1] == 4 and windows(monthly(), plan, "test").y.shape[1] == 4


def test_recursive_forecast_feeds_predictions_back():
    x = np.array([[[1.0], [3.0]], [[0.0], [-1.0]]], dtype=np.float32)
    out = recursive_forecast(lambda w: w[:, -1:, 0] * 2, x, 4)  # returns (N, 1)
    assert out.tolist() == [[6, 12, 24, 48], [-2, -4, -8, -16]]
    seen = []
    recursive_forecast(lambda w: seen.append(w[0, :, 0].tolist()) or w[:, -1, 0] + 1, x[:1], 3)
    assert seen == [[1, 3], [3, 4], [4, 5]]  # the window rolls forward one step at a time


# ------------------------------------------------------------------------------------- scaling
def test_scaling_is_fitted_on_training_rows_only():
    frame = stores()
    plan = fit_plan(frame, STORES, "sales", test=0.2, val=0.1)
    later = frame.day >= stamp(plan["split"]["val_start"])
    changed = frame.assign(sales=np.where(later, frame.sales * 100, frame.sales), temp=np.where(later, 0, frame.temp))
    assert fit_plan(changed, STORES, "sales", test=0.2, val=0.1)["scaling"] == plan["scaling"]
    a = frame[(frame.store == "a") & ~later]
    assert plan["scaling"]["a"]["mean"] == pytest.approx([a.sales.mean(), a.temp.mean()])
    assert plan["scaling"]["a"]["std"] == pytest.approx([a.sales.std(ddof=0), a.temp.std(ddof=0)])


def test_constant_series_and_no_scaling():
    frame = monthly().assign(sales=5.0)
    plan = fit_plan(frame, SINGLE, "sales", test=0.2, val=0.1)
    assert plan["scaling"]["sales"] == {"mean": [5.0], "std": [1.0]}
    plain = fit_plan(monthly(), SINGLE.model_copy(update={"scale": "none"}), "sales", test=0.2, val=0.1)
    assert windows(monthly(), plain, "test").y[0].tolist() == [48.0, 49.0, 50.0, 51.0]


def test_the_plan_is_plain_json_and_windows_the_same_after_a_round_trip():
    frame = stores()
    plan = fit_plan(frame, STORES, "sales", test=0.2, val=0.1)
    again = json.loads(json.dumps(plan))
    assert again == plan
    a, b = windows(frame, plan, "test"), windows(frame, again, "test")
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.times, b.times)
    assert set(plan) >= {"target", "covariates", "time", "series", "freq", "season", "season_note", "lookback",
                         "horizon", "train_horizon", "stride", "strategy", "scale", "split", "series_ids", "scaling"}  # fmt: skip


def test_split_is_by_distinct_time_stamps():
    plan = fit_plan(monthly(100), SINGLE, "sales", test=0.2, val=0.1)
    assert plan["split"]["times"] == {"train": 70, "val": 10, "test": 20}
    assert plan["split"]["val_start"] == "2020-11-01T00:00:00"  # month 70
    odd = fit_plan(monthly(30), SINGLE.model_copy(update={"horizon": 1}), "sales", test=0.1, val=0.0)
    assert odd["split"]["times"]["test"] == 3  # 0.1 * 30 in floating point is 3.0000000000000004


def test_series_without_training_rows_is_left_out_with_a_note():
    late = pd.DataFrame({"day": pd.date_range("2020-04-01", periods=20, freq="D"), "store": "z",
                         "sales": 1.0, "temp": 0.0})  # fmt: skip
    frame = pd.concat([stores(), late], ignore_index=True)
    plan = fit_plan(frame, STORES, "sales", test=0.2, val=0.1)
    assert plan["left_out"] == ["z"] and "z" not in plan["series_ids"]
    assert "left out 1 series with no rows in the training period" in plan["notes"][0]
    assert all(plan["series_ids"][i] != "z" for i in windows(frame, plan, "test").series)


# ----------------------------------------------------------------------------- frequency, season
@pytest.mark.parametrize(
    ("freq", "expected_freq", "season"),
    [("W-SAT", "W-SAT", 52), ("MS", "MS", 12), ("ME", "ME", 12), ("D", "D", 7), ("h", "h", 24), ("2h", "2h", 12),
     ("QS", "QS-JAN", 4), ("YS", "YS-JAN", 1), ("B", "B", 5)],
)  # fmt: skip
def test_frequency_and_season_are_inferred(freq, expected_freq, season):
    frame = pd.DataFrame({"t": pd.date_range("2001-01-01", periods=80, freq=freq), "y": np.arange(80.0)})
    plan = fit_plan(frame, ForecastConfig(time="t", lookback=4, horizon=2), "y", test=0.1, val=0.1)
    assert (plan["freq"], plan["season"], plan["time_kind"]) == (expected_freq, season, "datetime")
    assert ("inferred from the frequency" if season > 1 else "no usual seasonal cycle") in plan["season_note"]


def test_numeric_time_has_a_step_and_no_season_unless_given():
    frame = pd.DataFrame({"year": np.arange(1900, 2000, 5), "y": np.arange(20.0)})
    plan = fit_plan(frame, ForecastConfig(time="year", lookback=4, horizon=2), "y", test=0.2, val=0.0)
    assert (plan["time_kind"], plan["step"], plan["freq"], plan["season"]) == ("number", 5, None, 1)
    assert plan["split"]["test_start"] == 1980
    given = fit_plan(frame, ForecastConfig(time="year", lookback=4, horizon=2, season=3), "y", test=0.2, val=0.0)
    assert (given["season"], given["season_note"]) == (3, "set by forecast.season")


def test_explicit_season_wins_over_the_frequency():
    plan = fit_plan(monthly(), SINGLE.model_copy(update={"season": 6}), "sales", test=0.2, val=0.1)
    assert plan["season"] == 6


def test_dates_as_text_are_parsed():
    frame = monthly().assign(month=lambda f: f.month.dt.strftime("%Y-%m-%d"))
    plan = fit_plan(frame, SINGLE, "sales", test=0.2, val=0.1)
    assert plan["freq"] == "MS" and windows(frame, plan, "test").times.dtype.kind == "M"


# ------------------------------------------------------------------------------------- latest
def test_latest_windows_continue_each_series():
    frame = stores()
    plan = fit_plan(frame, STORES, "sales", test=0.2, val=0.1)
    latest = latest_windows(frame, plan)
    assert [plan["series_ids"][i] for i in latest.series] == ["a", "b", "c"] and latest.y is None
    assert latest.x.shape == (3, 7, 2) and latest.times.shape == (3, 3)
    assert [str(t)[:10] for t in latest.times[0]] == ["2020-04-10", "2020-04-11", "2020-04-12"]  # a ends 04-09
    assert unscale(latest.x[:, -1, 0], latest.series, plan) == pytest.approx([99.0, 1099.0, 2089.0], rel=1e-6)


def test_latest_windows_with_numeric_time():
    frame = pd.DataFrame({"year": np.arange(1950, 2000), "y": np.arange(50.0)})
    plan = fit_plan(frame, ForecastConfig(time="year", lookback=5, horizon=3), "y", test=0.2, val=0.0)
    latest = latest_windows(frame.tail(5), plan)
    assert latest.times.tolist() == [[2000, 2001, 2002]] and latest.origin.tolist() == [1999]


def test_latest_windows_refuse_unseen_series_and_short_history():
    frame = stores()
    plan = fit_plan(frame, STORES, "sales", test=0.2, val=0.1)
    new = frame.assign(store=frame.store.replace({"c": "d"}))
    with pytest.raises(
        DataError,
        match=r"^series 'd' \(column 'store'\) was not in the training period, so its scaling is unknown; the model forecasts the series it was trained on: a, b, c$",
    ):
        latest_windows(new, plan)
    short = frame[(frame.store != "b") | (frame.day >= pd.Timestamp("2020-04-05"))]
    with pytest.raises(
        DataError,
        match=r"^series 'b' has 5 time steps; the model needs the last 7 \(forecast.lookback\) to forecast from$",
    ):
        latest_windows(short, plan)


# ------------------------------------------------------------------------------------- errors
def test_missing_column_is_named_with_a_suggestion():
    with pytest.raises(DataError, match=r"^data\.target: column 'sale' is not in the data \(did you mean 'sales'\?\)$"):
        fit_plan(monthly(), SINGLE, "sale", test=0.2, val=0.1)
    with pytest.raises(
        DataError, match=r"^forecast\.time: column 'mnth' is not in the data \(did you mean 'month'\?\)$"
    ):
        fit_plan(monthly(), SINGLE.model_copy(update={"time": "mnth"}), "sales", test=0.2, val=0.1)


def test_non_numeric_target_names_the_row():
    frame = monthly().astype({"sales": object})
    frame.loc[7, "sales"] = "n/a"
    with pytest.raises(DataError, match=r"^column 'sales' should be numeric, but row 7 holds 'n/a'$"):
        fit_plan(frame, SINGLE, "sales", test=0.2, val=0.1)


def test_missing_target_values_name_the_rows():
    frame = monthly()
    frame.loc[[3, 9], "sales"] = np.nan
    with pytest.raises(
        DataError,
        match=r"^column 'sales' has missing or infinite values \(rows 3, 9\); windows need every step: fill them",
    ):
        fit_plan(frame, SINGLE, "sales", test=0.2, val=0.1)


def test_unparseable_time_names_the_row():
    frame = monthly().astype({"month": str})
    frame.loc[4, "month"] = "soon"
    with pytest.raises(DataError, match=r"^time column 'month' should hold dates or numbers, but row 4 holds 'soon'$"):
        fit_plan(frame, SINGLE, "sales", test=0.2, val=0.1)


def test_duplicate_time_stamps_are_named():
    frame = pd.concat([monthly(), monthly().iloc[[5]]], ignore_index=True)
    with pytest.raises(
        DataError,
        match=r"^time column 'month': the table has two rows at 2015-06-01 \(rows 5 and 60\); each series needs one row per time step; if it holds several series, name their id column in forecast.series$",
    ):
        fit_plan(frame, SINGLE, "sales", test=0.2, val=0.1)
    two = pd.concat([stores(), stores().query("store == 'b'").head(1)], ignore_index=True)
    with pytest.raises(DataError, match=r"^time column 'day': series 'b' has two rows at 2020-"):
        fit_plan(two, STORES, "sales", test=0.2, val=0.1)


def test_gaps_in_time_are_named():
    frame = monthly().drop(index=[20, 21])
    with pytest.raises(
        DataError,
        match=r"^time column 'month' is not evenly spaced: series 'sales' goes from 2016-08-01 to 2016-11-01, but the steps are MS \(next would be 2016-09-01\)",
    ):
        fit_plan(frame, SINGLE, "sales", test=0.2, val=0.1)
    gap = stores().query("not (store == 'c' and day == @pd.Timestamp('2020-02-10'))")
    with pytest.raises(
        DataError,
        match=r"^time column 'day' is not evenly spaced: series 'c' goes from 2020-02-09 to 2020-02-11, but the steps are D \(next would be 2020-02-10\)",
    ):
        fit_plan(gap, STORES, "sales", test=0.2, val=0.1)


def test_too_short_series_say_what_is_needed():
    with pytest.raises(
        DataError,
        match=r"^the training period \(7 time steps from 2015-01-01 before 2015-08-01\) holds no series with forecast.lookback \+ horizon = 16 steps; use more data",
    ):
        fit_plan(monthly(12), SINGLE, "sales", test=0.34, val=0.0)
    with pytest.raises(
        DataError, match=r"^split.test: the test period has 2 time steps, fewer than forecast.horizon \(4\)"
    ):
        fit_plan(monthly(40), SINGLE, "sales", test=0.05, val=0.0)
    with pytest.raises(DataError, match=r"^split: 10 time steps leave none to train on"):
        fit_plan(monthly(10), SINGLE, "sales", test=0.5, val=0.5)


def test_recipe_section_refuses_contradictions():
    with pytest.raises(
        ValidationError,
        match="strategy: recursive feeds the model its own predictions, and future values of covariates \\(temp\\) are unknown; use strategy: direct",
    ):
        ForecastConfig(time="day", covariates=["temp"], strategy="recursive")
    with pytest.raises(ValidationError, match="column 'day' is both time and series"):
        ForecastConfig(time="day", series="day")
    with pytest.raises(ValidationError, match=r"column 'temp' is both covariates\[0\] and covariates\[1\]"):
        ForecastConfig(time="day", covariates=["temp", "temp"])
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ForecastConfig(time="day", lookbak=3)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ForecastConfig(time="day", horizon=0)
    with pytest.raises(
        RecipeError, match=r"^forecast.covariates\[0\]: 'sales' is the target; give the target its own column$"
    ):
        fit_plan(monthly(), ForecastConfig(time="month", covariates=["sales"]), "sales", test=0.2, val=0.1)


# ------------------------------------------------------------------------------------- datasets
FORECAST_SETS = [d for d in DATASETS.values() if d.task == "forecast"]


@pytest.mark.parametrize("spec", FORECAST_SETS, ids=lambda d: d.name)
def test_forecast_datasets_load_offline_and_window(spec):
    frame = load_dataset(spec.name)
    assert {spec.time, spec.target, *spec.covariates} <= set(frame.columns)
    assert not frame.isna().any().any()
    for _, part in frame.groupby(spec.series) if spec.series else [(None, frame)]:
        assert part[spec.time].is_monotonic_increasing and part[spec.time].is_unique
    cfg = ForecastConfig(time=spec.time, series=spec.series, covariates=list(spec.covariates), lookback=8, horizon=2)
    plan = fit_plan(frame, cfg, spec.target, test=0.2, val=0.1)
    assert plan["notes"] == [] and plan["windows"]["test"] > 0


def test_forecast_datasets_have_their_documented_shape():
    assert {d.name for d in FORECAST_SETS} == {"co2", "sunspots", "nile", "seasonal"}
    co2 = load_dataset("co2")
    assert list(co2.columns) == ["date", "co2"] and len(co2) == 2284
    plan = fit_plan(co2, ForecastConfig(time="date"), "co2", test=0.2, val=0.1)
    assert (plan["freq"], plan["season"]) == ("W-SAT", 52)
    assert list(load_dataset("sunspots").columns) == ["year", "sunspots"]
    assert list(load_dataset("nile").columns) == ["year", "volume"] and len(load_dataset("nile")) == 100
    seasonal = load_dataset("seasonal")
    assert sorted(seasonal.store.unique()) == ["city", "north", "south"] and set(seasonal.promo) == {0, 1}
    promo_days = seasonal.groupby("store").apply(lambda s: s.sales[s.promo == 1].mean() / s.sales[s.promo == 0].mean())
    assert (promo_days > 1.2).all()  # promotions really lift sales


def test_docstring_examples_run():
    for module in (timeseries, forecast_spec):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True, verbose=False)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_row_order_does_not_matter():
    shuffled = stores()
    ordered = shuffled.sort_values(["store", "day"]).reset_index(drop=True)
    a, b = fit_plan(shuffled, STORES, "sales", test=0.2, val=0.1), fit_plan(ordered, STORES, "sales", test=0.2, val=0.1)
    assert a == b
    assert np.array_equal(windows(shuffled, a, "val").x, windows(ordered, b, "val").x)


def test_a_series_too_short_to_train_on_is_noted():
    tiny = pd.DataFrame(
        {"day": pd.date_range("2020-01-01", periods=5, freq="D"), "store": "tiny", "sales": 1.0, "temp": 0.0}
    )
    plan = fit_plan(pd.concat([stores(), tiny]), STORES, "sales", test=0.2, val=0.1)
    assert plan["notes"] == ["no training window fits in 1 series: tiny"]
    assert "tiny" in plan["series_ids"]  # its scaling is known, so it can still be forecast from


def test_flags_are_numbers_and_misuse_is_a_value_error():
    frame = monthly().assign(promo=[True, False, False] * 20)
    plan = fit_plan(frame, SINGLE.model_copy(update={"covariates": ["promo"]}), "sales", test=0.2, val=0.1)
    assert windows(frame, plan, "train").x.shape[2] == 2
    with pytest.raises(ValueError, match="part must be one of train, val, test, got 'testing'"):
        windows(frame, plan, "testing")
    with pytest.raises(ValueError, match=r"recursive forecasting takes inputs \(N, lookback, 1\)"):
        recursive_forecast(lambda w: w[:, -1, 0], windows(frame, plan, "test").x, 2)
    numeric = pd.DataFrame({"year": np.arange(1950, 2000), "y": np.arange(50.0)})
    plan = fit_plan(numeric, ForecastConfig(time="year", lookback=5, horizon=3), "y", test=0.2, val=0.0)
    with pytest.raises(DataError, match=r"^time column 'year' held numbers when the model was trained; got"):
        latest_windows(numeric.assign(year=pd.date_range("2000-01-01", periods=50, freq="YS")), plan)


def test_a_one_step_horizon_can_be_asked_for_any_period():
    plan = fit_plan(monthly(), SINGLE.model_copy(update={"strategy": "recursive"}), "sales", test=0.2, val=0.1)
    val = windows(monthly(), plan, "val", horizon=1)
    assert val.y.shape == (6, 1)  # every validation month is a one-step target
    assert str(val.times[0, 0])[:10] == plan["split"]["val_start"][:10]
