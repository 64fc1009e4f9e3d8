"""Forecasting windows and time splits over a long table: one row per (series, time step).

Everything goes through a fitted *plan*: a dict of plain JSON types, saved with the model, that
records how the table was read (columns, frequency, season), where time was cut into training,
validation and test periods, and each series' scaling. Prediction windows new data exactly as
training did, from the plan alone.

- `fit_plan(frame, cfg, target, test, val) -> plan`: validate the table and fit the plan.
- `windows(frame, plan, part, horizon=None) -> Windows`: the (input, target) windows of one period.
- `latest_windows(frame, plan) -> Windows`: the last `lookback` steps of each series and the
  `horizon` time stamps after its end: what a trained model forecasts from (`y` is None).
- `unscale(values, series, plan)` / `scale_target(...)`: scaled targets to original units and back.
- `recursive_forecast(predict_one, x, horizon)`: roll a one-step model forward on its own outputs.
- `history(frame, plan, parts)` and `lagged_targets(frame, plan, windows, lags)`: raw targets for
  baselines, MASE scales and plots.

Splits are by time only: the last `test` share of the distinct time stamps (over all series) is the
test period, the `val` share before it the validation period. A window belongs to the period that
holds all of its target steps; its inputs may reach back into earlier periods (the past is known
when forecasting) but never forward. Training windows lie wholly in the training period.

Plan keys: format, target, covariates, features ([target, *covariates], the order of `x`'s last
axis), time, series, time_kind ("datetime" or "number"), freq (pandas alias, datetimes) or step
(numbers), season, season_note, lookback, horizon (requested), train_horizon (1 when recursive),
stride, strategy, scale, split {test, val, first, last, val_start, test_start, times}, series_ids
(series with training rows; `Windows.series` indexes this list), left_out, scaling
{id: {mean, std}} (one entry per feature), windows {train, val, test} (counts) and notes.

>>> import pandas as pd
>>> from strata.data.forecast_spec import ForecastConfig
>>> frame = pd.DataFrame({"month": pd.date_range("2020-01-01", periods=48, freq="MS"), "sales": range(48)})
>>> plan = fit_plan(frame, ForecastConfig(time="month", lookback=6, horizon=3, stride=3), "sales", test=0.25, val=0.0)
>>> plan["freq"], plan["season"], plan["split"]["test_start"]
('MS', 12, '2023-01-01T00:00:00')
>>> test = windows(frame, plan, "test")
>>> test.x.shape, test.y.shape, str(test.origin[0])[:10]
((4, 6, 1), (4, 3), '2022-12-01')
>>> unscale(test.y, test.series, plan)[0].round(3).tolist()
[36.0, 37.0, 38.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from strata.data._timetable import Table, advance, check_regular, infer_spacing, read, season_of, show
from strata.errors import DataError, RecipeError, did_you_mean, plural

if TYPE_CHECKING:
    from strata.data.forecast_spec import ForecastConfig

Part = Literal["train", "val", "test"]
PARTS: tuple[Part, ...] = ("train", "val", "test")
FORMAT = 1


@dataclass(frozen=True)
class Windows:
    """Windows of one period, scaled. `series` indexes `plan["series_ids"]`; times are the time
    column's own type (datetime64 or numbers)."""

    x: np.ndarray  # (N, lookback, features) float32: the target's past, then each covariate's
    y: np.ndarray | None  # (N, h) float32 future targets; None for `latest_windows`
    series: np.ndarray  # (N,) int64
    origin: np.ndarray  # (N,) time of the last input step
    times: np.ndarray  # (N, h) time of each target step

    def __len__(self) -> int:
        return len(self.x)

    @property
    def lengths(self) -> np.ndarray:
        """(N,) int64: every window holds `lookback` steps (the sequence models take lengths)."""
        return np.full(len(self.x), self.x.shape[1], dtype=np.int64)


# ------------------------------------------------------------------------------------ fitting
def fit_plan(frame: pd.DataFrame, cfg: ForecastConfig, target: str, test: float, val: float) -> dict[str, Any]:
    """Validate `frame` and fit the plan; `test` and `val` are shares of the distinct time stamps."""
    _check_roles(cfg, target)
    spec = {"target": target, "covariates": list(cfg.covariates), "time": cfg.time, "series": cfg.series}
    table, time_kind = read(frame, spec, time_kind=None)
    spacing = infer_spacing(table, cfg.time, time_kind)
    season, season_note = season_of(cfg.season, spacing["freq"], time_kind)
    split = _cuts(table.times, test, val, time_kind)
    parts = _part_codes(table.times, split, time_kind)
    scaling, left_out = _fit_scaling(table, parts, cfg.scale)
    plan = {
        "format": FORMAT,
        **spec,
        "features": [target, *cfg.covariates],
        "time_kind": time_kind,
        **spacing,
        "season": season,
        "season_note": season_note,
        "lookback": cfg.lookback,
        "horizon": cfg.horizon,
        "train_horizon": 1 if cfg.strategy == "recursive" else cfg.horizon,
        "stride": cfg.stride,
        "strategy": cfg.strategy,
        "scale": cfg.scale,
        "split": split,
        "series_ids": [i for i in table.ids if i in scaling],
        "left_out": left_out,
        "scaling": scaling,
        "notes": [],
    }
    plan["windows"] = _count_windows(table, parts, plan)
    _check_periods(plan)
    return plan


def _check_roles(cfg: ForecastConfig, target: str) -> None:
    """The target is its own column: a model that reads it as a covariate would see the answer."""
    roles = {"forecast.time": cfg.time, "forecast.series": cfg.series}
    roles |= {f"forecast.covariates[{i}]": c for i, c in enumerate(cfg.covariates)}
    for key, column in roles.items():
        if column == target:
            raise RecipeError(f"{key}: '{target}' is the target; give the target its own column")


def _cuts(times: np.ndarray, test: float, val: float, time_kind: str) -> dict[str, Any]:
    """The first time stamp of the validation and test periods (None when a period is empty)."""
    stamps = np.unique(times)
    n = len(stamps)
    n_test = math.ceil(test * n - 1e-9)  # 0.1 * 30 is 3.0000000000000004, which must not round up
    n_val = math.ceil(val * n - 1e-9)
    n_train = n - n_test - n_val
    if n_train < 1:
        raise DataError(
            f"split: {plural(n, 'time step')} leave none to train on (test {test:g}, val {val:g}); "
            f"use more data or smaller split.test / split.val"
        )
    return {
        "test": test,
        "val": val,
        "first": _to_json(stamps[0], time_kind),
        "last": _to_json(stamps[-1], time_kind),
        "val_start": _to_json(stamps[n_train], time_kind) if n_val else None,
        "test_start": _to_json(stamps[n - n_test], time_kind) if n_test else None,
        "times": {"train": n_train, "val": n_val, "test": n_test},
    }


def _part_codes(times: np.ndarray, split: dict[str, Any], time_kind: str) -> np.ndarray:
    """(n,) int8: 0 train, 1 validation, 2 test, by each row's time."""
    codes = np.zeros(len(times), dtype=np.int8)
    for code, key in ((1, "val_start"), (2, "test_start")):
        if split[key] is not None:
            codes[times >= _from_json(split[key], time_kind)] = code
    return codes


def _fit_scaling(table: Table, parts: np.ndarray, scale: str) -> tuple[dict[str, Any], list[str]]:
    """Per series mean and std of every feature over its training rows only. A series without
    training rows is left out: scaling it would mean looking at the periods it is evaluated on."""
    train = parts == 0
    k, n_features = len(table.ids), table.values.shape[1]
    count = np.bincount(table.codes[train], minlength=k).astype(float)
    mean, std = np.zeros((k, n_features)), np.ones((k, n_features))
    if scale == "zscore":
        for f in range(n_features):
            sums = np.bincount(table.codes[train], weights=table.values[train, f], minlength=k)
            mean[:, f] = sums / np.maximum(count, 1)
            dev = (table.values[train, f] - mean[table.codes[train], f]) ** 2
            std[:, f] = np.sqrt(np.bincount(table.codes[train], weights=dev, minlength=k) / np.maximum(count, 1))
        std[std == 0] = 1.0  # a constant series: centring is enough
    scaling = {sid: {"mean": mean[i].tolist(), "std": std[i].tolist()} for i, sid in enumerate(table.ids) if count[i]}
    return scaling, [sid for i, sid in enumerate(table.ids) if not count[i]]


def _check_periods(plan: dict[str, Any]) -> None:
    """Every non-empty period holds at least one window, and the notes say which series hold none."""
    times, counts = plan["split"]["times"], plan["windows"]
    lookback, horizon = plan["lookback"], plan["horizon"]
    if not counts["train"]:
        needed = lookback + plan["train_horizon"]
        raise DataError(
            f"the training period ({_training_span(plan)}) holds no "
            f"series with forecast.lookback + horizon = {needed} steps; use more data, a shorter lookback or "
            f"horizon, or smaller split.test / split.val"
        )
    for part, name in (("val", "validation"), ("test", "test")):
        if 0 < times[part] < horizon:
            raise DataError(
                f"split.{part}: the {name} period has {plural(times[part], 'time step')}, fewer than "
                f"forecast.horizon ({horizon}); use a larger split.{part} or a shorter horizon"
            )
        if times[part] and not counts[part]:
            raise DataError(
                f"split.{part}: no series has {horizon} steps in the {name} period with forecast.lookback "
                f"({lookback}) steps before them; use a shorter lookback"
            )
    if plan["left_out"]:
        plan["notes"].append(
            f"left out {plural(len(plan['left_out']), 'series', '')} with no rows in the training period "
            f"(no scaling can be fitted without looking at later periods): {_listed(plan['left_out'])}"
        )


def _training_span(plan: dict[str, Any]) -> str:
    """'7 time steps from 2015-01-01 before 2015-08-01' (the cut is the next period's first step)."""
    split = plan["split"]
    cut = split["val_start"] if split["val_start"] is not None else split["test_start"]
    first = show(_from_json(split["first"], plan["time_kind"]))
    end = show(_from_json(split["last"] if cut is None else cut, plan["time_kind"]))
    return f"{plural(split['times']['train'], 'time step')} from {first} {'to' if cut is None else 'before'} {end}"


# ---------------------------------------------------------------------------------- windowing
def windows(frame: pd.DataFrame, plan: dict[str, Any], part: Part, horizon: int | None = None) -> Windows:
    """The windows whose target steps all lie in `part`, scaled as the plan says.

    Each holds `horizon` target steps: by default the plan's `train_horizon` for training windows
    and its requested `horizon` for validation and test (what a forecast is judged on); a recursive
    model's one-step validation loss asks for `horizon=1`. Training windows are counted back from
    the end of the training period, so the most recent history is always used; validation and
    test windows are counted forward from the start of their period, so the first one forecasts
    the first steps after the cut.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    if horizon is None:
        horizon = plan["train_horizon"] if part == "train" else plan["horizon"]
    table, parts, index = _prepared(frame, plan)
    starts = _window_starts(table, parts, index, PARTS.index(part), (plan["lookback"], horizon, plan["stride"]))
    return _gather(table, plan, index, starts, horizon)


def latest_windows(frame: pd.DataFrame, plan: dict[str, Any]) -> Windows:
    """The last `lookback` steps of each series in `frame`, and the `horizon` time stamps after
    its end. Every series must have been trained on: its scaling comes from the training period,
    and the model has never seen another series' level."""
    table, _ = read(frame, plan, plan["time_kind"])
    check_regular(table, plan["time"], plan, plan["time_kind"])
    index = _plan_index(table, plan, allow_left_out=False)
    lookback, lengths = plan["lookback"], np.diff(table.bounds)
    if (lengths < lookback).any():
        short = int(np.argmax(lengths < lookback))
        raise DataError(
            f"series '{table.ids[short]}' has {plural(int(lengths[short]), 'time step')}; the model needs the last "
            f"{lookback} (forecast.lookback) to forecast from"
        )
    ends = table.bounds[1:]
    origin = table.times[ends - 1]
    ahead = [advance(origin, plan, plan["time_kind"], k) for k in range(1, plan["horizon"] + 1)]
    x = _scaled(table, plan, index)[ends[:, None] + np.arange(-lookback, 0)]
    return Windows(x=x, y=None, series=index.astype(np.int64), origin=origin, times=np.stack(ahead, axis=1))


def _prepared(frame: pd.DataFrame, plan: dict[str, Any]) -> tuple[Table, np.ndarray, np.ndarray]:
    """The frame read as the plan reads it, each row's period, and each series' plan index."""
    table, _ = read(frame, plan, plan["time_kind"])
    check_regular(table, plan["time"], plan, plan["time_kind"])
    return table, _part_codes(table.times, plan["split"], plan["time_kind"]), _plan_index(table, plan, True)


def _plan_index(table: Table, plan: dict[str, Any], allow_left_out: bool) -> np.ndarray:
    """(k,) each table series' position in plan["series_ids"]; -1 for a series the plan left out."""
    known = {sid: i for i, sid in enumerate(plan["series_ids"])}
    skip = set(plan["left_out"]) if allow_left_out else set()
    unknown = [sid for sid in table.ids if sid not in known and sid not in skip]
    if unknown:
        raise DataError(
            f"series '{unknown[0]}' (column '{plan['series']}') was not in the training period, so its scaling "
            f"is unknown{did_you_mean(unknown[0], known)}; the model forecasts the series it was trained on: "
            f"{_listed(plan['series_ids'])}"
        )
    return np.array([known.get(sid, -1) for sid in table.ids], dtype=np.int64)


def _window_starts(table: Table, parts: np.ndarray, index: np.ndarray, part: int, shape: tuple) -> np.ndarray:
    """(N,) row of each window's first target step, series by series."""
    first, count = _first_and_count(table, parts, index, part, shape)
    stride = shape[2]
    offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    return np.repeat(first, count) + stride * offsets


def _first_and_count(table: Table, parts: np.ndarray, index: np.ndarray, part: int, shape: tuple) -> tuple:
    """Per series: the first window's first target row, and how many windows fit in `part`."""
    lookback, h, stride = shape
    k = len(table.ids)
    per_part = np.bincount(table.codes * 3 + parts, minlength=3 * k).reshape(k, 3)
    low = table.bounds[:-1] + per_part[:, :part].sum(1)  # the period's rows in each series: [low, high)
    high = low + per_part[:, part]
    earliest = np.maximum(low, table.bounds[:-1] + lookback)  # a full lookback of history before it
    latest = high - h
    if part == 0:  # anchored at the end: the last window ends where the training period ends
        count = np.where(latest >= earliest, (latest - earliest) // stride + 1, 0)
        first = latest - (count - 1) * stride
    else:  # anchored at the period's start
        first = low + -(-(earliest - low) // stride) * stride
        count = np.where(latest >= first, (latest - first) // stride + 1, 0)
    count[index < 0] = 0
    return first, count


def _count_windows(table: Table, parts: np.ndarray, plan: dict[str, Any]) -> dict[str, int]:
    """Windows per period; the notes name series too short for a training window."""
    index = np.array([0 if sid in plan["scaling"] else -1 for sid in table.ids])
    counts = {}
    for i, part in enumerate(PARTS):
        h = plan["train_horizon"] if part == "train" else plan["horizon"]
        counts[part] = _first_and_count(table, parts, index, i, (plan["lookback"], h, plan["stride"]))[1]
    short = [sid for sid, c, j in zip(table.ids, counts["train"], index, strict=True) if j >= 0 and not c]
    if short and counts["train"].any():
        plan["notes"].append(f"no training window fits in {plural(len(short), 'series', '')}: {_listed(short)}")
    return {part: int(count.sum()) for part, count in counts.items()}


def _gather(table: Table, plan: dict[str, Any], index: np.ndarray, starts: np.ndarray, h: int) -> Windows:
    scaled = _scaled(table, plan, index)
    lookback = plan["lookback"]
    future = starts[:, None] + np.arange(h)
    return Windows(
        x=scaled[starts[:, None] + np.arange(-lookback, 0)],
        y=scaled[future, 0],
        series=index[table.codes[starts]],
        origin=table.times[starts - 1],
        times=table.times[future],
    )


def _scaled(table: Table, plan: dict[str, Any], index: np.ndarray) -> np.ndarray:
    """(n, features) float32 z-scores; a left-out series' rows stay raw (no window reads them)."""
    mean, std = _scaling_arrays(plan)
    mean = np.vstack([mean, np.zeros(mean.shape[1])])[index[table.codes]]  # -1 picks the last: 0 / 1
    std = np.vstack([std, np.ones(std.shape[1])])[index[table.codes]]
    return ((table.values - mean) / std).astype(np.float32)


def _scaling_arrays(plan: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(series, features) means and standard deviations, in plan["series_ids"] order."""
    scaling = [plan["scaling"][sid] for sid in plan["series_ids"]]
    return np.array([s["mean"] for s in scaling]), np.array([s["std"] for s in scaling])


# ------------------------------------------------------------------------------- scaling, rollout
def unscale(values: np.ndarray, series: np.ndarray, plan: dict[str, Any]) -> np.ndarray:
    """Scaled targets (N, ...) back to the target's units; `series` (N,) indexes plan["series_ids"]."""
    mean, std = _target_scaling(values, series, plan)
    return np.asarray(values, dtype=np.float64) * std + mean


def scale_target(values: np.ndarray, series: np.ndarray, plan: dict[str, Any]) -> np.ndarray:
    """The inverse of `unscale`: targets in their own units (N, ...) to the model's scale."""
    mean, std = _target_scaling(values, series, plan)
    return (np.asarray(values, dtype=np.float64) - mean) / std


def _target_scaling(values: np.ndarray, series: np.ndarray, plan: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    mean, std = _scaling_arrays(plan)
    tail = (1,) * (np.ndim(values) - 1)  # broadcast over the horizon axis
    series = np.asarray(series, dtype=np.int64)
    return mean[series, 0].reshape(-1, *tail), std[series, 0].reshape(-1, *tail)


def recursive_forecast(predict_one: Callable[[np.ndarray], Any], x: np.ndarray, horizon: int) -> np.ndarray:
    """(N, horizon) forecasts from a one-step model: each prediction becomes the next input step.

    `predict_one` maps scaled inputs (N, lookback, 1) to the next scaled value, (N,) or (N, 1).

    >>> recursive_forecast(lambda w: w[:, -1, 0] * 2, np.ones((1, 3, 1), np.float32), 3).tolist()
    [[2.0, 4.0, 8.0]]
    """
    if x.ndim != 3 or x.shape[2] != 1:
        raise ValueError(f"recursive forecasting takes inputs (N, lookback, 1), got shape {x.shape}")
    window = np.array(x, dtype=np.float32)
    out = np.empty((len(x), horizon), dtype=np.float32)
    for k in range(horizon):
        step = np.asarray(predict_one(window), dtype=np.float32)
        if step.size != len(x):
            raise ValueError(f"predict_one returned shape {step.shape} for {len(x)} windows; expected (N,) or (N, 1)")
        out[:, k] = step.reshape(len(x))
        window = np.concatenate([window[:, 1:], out[:, k, None, None]], axis=1)
    return out


# ----------------------------------------------------------------------------------- raw values
def history(frame: pd.DataFrame, plan: dict[str, Any], parts: tuple[Part, ...] = PARTS) -> dict[str, tuple]:
    """{series id: (times, target values)} in original units over `parts`, in time order."""
    table, codes, index = _prepared(frame, plan)
    keep = np.isin(codes, [PARTS.index(p) for p in parts])
    out = {}
    for c, i in enumerate(index):
        if i >= 0:
            rows = np.arange(table.bounds[c], table.bounds[c + 1])
            rows = rows[keep[rows]]
            out[plan["series_ids"][i]] = (table.times[rows], table.values[rows, 0])
    return out


def lagged_targets(frame: pd.DataFrame, plan: dict[str, Any], w: Windows, lags: int) -> np.ndarray:
    """(N, lags) raw target at each window's origin (column 0) and the steps before it (column j
    is j steps back); NaN where the series has no such step."""
    table, _, index = _prepared(frame, plan)
    origin_rows = np.full(len(w), -1, dtype=np.int64)
    for c in np.flatnonzero(index >= 0):
        mine = w.series == index[c]
        begin, end = table.bounds[c], table.bounds[c + 1]
        found = begin + np.searchsorted(table.times[begin:end], w.origin[mine])
        hit = (found < end) & (table.times[np.minimum(found, end - 1)] == w.origin[mine])
        origin_rows[mine] = np.where(hit, found, -1)
    if (origin_rows < 0).any():
        raise DataError("the windows do not come from this table: a window's origin is not among its series' rows")
    rows = origin_rows[:, None] - np.arange(lags)
    inside = rows >= table.bounds[table.codes[origin_rows]][:, None]
    return np.where(inside, table.values[np.maximum(rows, 0), 0], np.nan)


# -------------------------------------------------------------------------------------- helpers
def _to_json(value: Any, time_kind: str) -> str | int | float:
    return pd.Timestamp(value).isoformat() if time_kind == "datetime" else value.item()


def _from_json(value: str | float, time_kind: str) -> Any:
    return pd.Timestamp(value).to_datetime64() if time_kind == "datetime" else value


def _listed(names: list[str], shown: int = 8) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
