"""Reading a long time table: rows sorted by series and time, every value checked, and the
spacing of its time stamps (a pandas frequency, or a numeric step) inferred and enforced.

Private to `strata.data.timeseries`, which fits plans and cuts windows from what this reads.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from strata.errors import DataError, did_you_mean, plural, rows_text

# Steps per natural cycle for a pandas frequency's base code; the multiple (2h, say) divides it.
_CYCLES: dict[str, tuple[int, str]] = {
    "h": (24, "day"), "H": (24, "day"), "D": (7, "week"), "B": (5, "week"), "W": (52, "year"),
    "MS": (12, "year"), "ME": (12, "year"), "M": (12, "year"), "BMS": (12, "year"), "BME": (12, "year"),
    "QS": (4, "year"), "QE": (4, "year"), "Q": (4, "year"), "BQS": (4, "year"), "BQE": (4, "year"),
}  # fmt: skip


@dataclass(frozen=True)
class Table:
    """The frame's rows sorted by series, then time, with the columns a plan reads."""

    times: np.ndarray  # (n,) datetime64 or numbers
    values: np.ndarray  # (n, features) float64, raw units
    codes: np.ndarray  # (n,) int64 series of each row, 0..k-1
    bounds: np.ndarray  # (k + 1,) first row of each series, then n
    ids: list[str]  # (k,) series ids as text


def infer_spacing(table: Table, time: str, time_kind: str) -> dict[str, Any]:
    """{"freq", "step"}: the pandas frequency of datetimes, or the common step of numbers. Uneven
    steps are an error rather than a note: a window over a gap would silently mix steps of
    different lengths, and future time stamps could not be named."""
    if time_kind == "number":
        step = _common_step(table)
        spacing = {"freq": None, "step": step}
    else:
        spacing = {"freq": _infer_freq(table, time), "step": None}
    check_regular(table, time, spacing, time_kind)
    return spacing


def _common_step(table: Table) -> int | float:
    diffs = np.diff(table.times)[np.diff(table.codes) == 0]
    if not len(diffs):
        raise DataError(f"every series has one time step; forecasting needs {plural(2, 'step')} or more")
    steps, counts = np.unique(diffs, return_counts=True)
    return steps[np.argmax(counts)].item()


def _infer_freq(table: Table, time: str) -> str:
    """pandas' frequency alias ('W-SAT', 'MS', 'D') from the longest series."""
    longest = int(np.argmax(np.diff(table.bounds)))
    stamps = pd.DatetimeIndex(table.times[table.bounds[longest] : table.bounds[longest + 1]])
    if len(stamps) < 3:
        raise DataError(
            f"time column '{time}': the longest series has {plural(len(stamps), 'time step')}, too few to tell "
            f"the frequency (3 or more needed)"
        )
    with warnings.catch_warnings():  # pandas 3 announces that infer_freq will return an offset
        warnings.simplefilter("ignore")
        freq = pd.infer_freq(stamps)
    if freq is None:
        guess = _freq_of_stretches(stamps)
        if guess is not None:  # name the first step off that frequency
            check_regular(table, time, {"freq": guess, "step": None}, "datetime")
        raise DataError(f"time column '{time}' is not evenly spaced: {_first_gap(stamps, table.ids[longest])}")
    return getattr(freq, "freqstr", freq)


def _freq_of_stretches(stamps: pd.DatetimeIndex, width: int = 5, tries: int = 40) -> str | None:
    """The most common frequency of short stretches of `stamps`: what a series with a gap or two
    was meant to follow (a gap makes pandas give up on the whole series)."""
    found: dict[str, int] = {}
    for start in np.unique(np.linspace(0, len(stamps) - width, tries).astype(int)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            freq = pd.infer_freq(stamps[start : start + width]) if start >= 0 else None
        if freq is not None:
            key = getattr(freq, "freqstr", freq)
            found[key] = found.get(key, 0) + 1
    return max(found, key=found.__getitem__) if found else None


def _first_gap(stamps: pd.DatetimeIndex, series: str) -> str:
    """Where the spacing first departs from its most common step, in words."""
    diffs = np.diff(stamps.to_numpy())
    steps, counts = np.unique(diffs, return_counts=True)
    usual = steps[np.argmax(counts)]
    odd = np.flatnonzero(diffs != usual)
    where = f"series '{series}' goes from {show(stamps[odd[0]])} to {show(stamps[odd[0] + 1])}, " if len(odd) else ""
    return (
        f"{where}while most steps are {pd.Timedelta(usual)} apart; forecasting needs one row per step: fill the "
        f"missing steps (e.g. resample and interpolate)"
    )


def check_regular(table: Table, time: str, spacing: dict[str, Any], time_kind: str) -> None:
    """Each series steps by exactly the plan's frequency (or numeric step) from one row to the next."""
    if len(table.times) < 2:
        return
    expected = advance(table.times[:-1], spacing, time_kind, 1)
    if time_kind == "number":
        off = ~np.isclose(expected, table.times[1:], rtol=0, atol=1e-9 * abs(spacing["step"]))
    else:
        off = expected != table.times[1:]
    off &= np.diff(table.codes) == 0
    if off.any():
        i = int(np.argmax(off))
        every = spacing["freq"] or f"{spacing['step']:g}"
        raise DataError(
            f"time column '{time}' is not evenly spaced: series '{table.ids[table.codes[i]]}' goes from "
            f"{show(table.times[i])} to {show(table.times[i + 1])}, but the steps are {every} (next would be "
            f"{show(expected[i])}); forecasting needs one row per step: fill the missing steps"
        )


def advance(times: np.ndarray, spacing: dict[str, Any], time_kind: str, steps: int) -> np.ndarray:
    """`times` moved forward by `steps` steps of the plan's frequency."""
    if time_kind == "number":
        return times + steps * spacing["step"]
    from pandas.tseries.frequencies import to_offset

    with warnings.catch_warnings():  # a few calendar offsets warn that they are not vectorised
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        return (pd.DatetimeIndex(times) + steps * to_offset(spacing["freq"])).to_numpy()


def season_of(given: int | None, freq: str | None, time_kind: str) -> tuple[int, str]:
    """The seasonal period in steps, and how it was decided (reported with the metrics)."""
    if given is not None:
        return given, "set by forecast.season"
    if time_kind == "number":
        return 1, "1 (none): numeric time has no calendar to infer a season from; set forecast.season for a cycle"
    from pandas.tseries.frequencies import to_offset

    offset = to_offset(freq)
    steps, cycle = _CYCLES.get(offset.rule_code.split("-")[0], (0, ""))
    if not steps or steps % offset.n:
        return 1, f"1 (none): frequency {freq} has no usual seasonal cycle; set forecast.season for one"
    return steps // offset.n, f"inferred from the frequency {freq}: {steps // offset.n} steps per {cycle}"


def read(frame: pd.DataFrame, spec: dict[str, Any], time_kind: str | None) -> tuple[Table, str]:
    """The table sorted by series and time, with every value checked; and the time column's kind."""
    roles = [("forecast.time", spec["time"]), ("forecast.series", spec["series"]), ("data.target", spec["target"])]
    roles += [(f"forecast.covariates[{i}]", c) for i, c in enumerate(spec["covariates"])]
    for key, name in roles:
        if name is not None and name not in frame.columns:
            raise DataError(f"{key}: column '{name}' is not in the data{did_you_mean(name, frame.columns)}")
    if frame.empty:
        raise DataError("the table has no rows")
    times, time_kind = _parse_time(frame[spec["time"]], time_kind)
    codes, ids = _series_codes(frame, spec["series"], spec["target"])
    values = np.column_stack([_numbers(frame[c]) for c in [spec["target"], *spec["covariates"]]])
    order = np.lexsort((times, codes))
    times, codes, values = times[order], codes[order], values[order]
    _no_duplicates(times, codes, ids, frame.index[order], spec)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1, [len(codes)]])
    return Table(times=times, values=values, codes=codes, bounds=bounds, ids=ids), time_kind


def _parse_time(column: pd.Series, kind: str | None) -> tuple[np.ndarray, str]:
    """Dates (datetime64, or text a date parser reads) or numbers such as a year."""
    _no_missing(column, "time column")
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    kind = kind or ("number" if numeric else "datetime")
    if kind == "number" and numeric:
        return column.to_numpy(), kind
    if kind == "datetime" and not numeric:
        parsed = column if pd.api.types.is_datetime64_any_dtype(column) else _to_datetime(column)
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_localize(None)  # wall-clock time: a daily series stays daily
        bad = parsed.isna().to_numpy()
        if not bad.any():
            return parsed.to_numpy(), kind
        first = int(np.argmax(bad))
        raise DataError(
            f"time column '{column.name}' should hold dates or numbers, but row {column.index[first]} holds "
            f"{column.iloc[first]!r}"
        )
    trained = "numbers" if kind == "number" else "dates"
    raise DataError(f"time column '{column.name}' held {trained} when the model was trained; got {column.dtype}")


def _to_datetime(column: pd.Series) -> pd.Series:
    """Text parsed as dates; what cannot be parsed becomes NaT, for the caller to name."""
    with warnings.catch_warnings():  # "could not infer format": the caller's message says more
        warnings.simplefilter("ignore", UserWarning)
        try:
            return pd.to_datetime(column, errors="coerce")
        except (ValueError, TypeError) as err:  # time zones that differ from row to row, say
            detail = str(err).splitlines()[0]
            raise DataError(f"time column '{column.name}' cannot be read as dates: {detail}") from None


def _series_codes(frame: pd.DataFrame, series: str | None, single: str) -> tuple[np.ndarray, list[str]]:
    """Each row's series (0..k-1, in sorted id order) and the ids as text; one series is named
    after the target."""
    if series is None:
        return np.zeros(len(frame), dtype=np.int64), [single]
    column = frame[series]
    _no_missing(column, "series column")
    try:
        codes, uniques = pd.factorize(column, sort=True)
    except TypeError:  # ids of mixed types (3 and 'a') cannot be sorted
        codes, uniques = pd.factorize(column.astype(str), sort=True)
    ids = [str(u) for u in uniques]
    if len(set(ids)) < len(ids):
        raise DataError(f"series column '{series}' has ids that read the same as text (such as 1 and '1')")
    return codes.astype(np.int64), ids


def _numbers(column: pd.Series) -> np.ndarray:
    """float64 values of a target or covariate column; text, gaps and infinities are errors."""
    if pd.api.types.is_numeric_dtype(column):  # bool too: a flag is 0 / 1
        values = column.to_numpy(dtype="float64", na_value=np.nan)
    else:
        numbers = pd.to_numeric(column.astype(object), errors="coerce")
        bad = (numbers.isna() & column.notna()).to_numpy()
        if bad.any():
            first = int(np.argmax(bad))
            raise DataError(
                f"column '{column.name}' should be numeric, but row {column.index[first]} holds {column.iloc[first]!r}"
            )
        values = numbers.to_numpy(dtype="float64", na_value=np.nan)
    _no_missing(column, "column", ~np.isfinite(values))
    return values


def _no_missing(column: pd.Series, what: str, missing: np.ndarray | None = None) -> None:
    """A gap in a value column can be filled; a row without a time or series cannot be placed."""
    missing = column.isna().to_numpy() if missing is None else missing
    if missing.any():
        where = rows_text(column.index[missing], int(missing.sum()))
        fix = "fill them (e.g. interpolate over time)" if what == "column" else "fill them in or drop those rows"
        raise DataError(
            f"{what} '{column.name}' has missing or infinite values ({where}); windows need every step: {fix}"
        )


def _no_duplicates(times: np.ndarray, codes: np.ndarray, ids: list[str], labels: pd.Index, spec: dict) -> None:
    same = (times[1:] == times[:-1]) & (codes[1:] == codes[:-1])
    if not same.any():
        return
    i = int(np.argmax(same))
    who = f"series '{ids[codes[i]]}'" if spec["series"] else "the table"
    hint = "" if spec["series"] else "; if it holds several series, name their id column in forecast.series"
    raise DataError(
        f"time column '{spec['time']}': {who} has two rows at {show(times[i])} (rows {labels[i]} and "
        f"{labels[i + 1]}); each series needs one row per time step{hint}"
    )


def show(value: Any) -> str:
    """A time stamp for a message: the date alone at midnight."""
    if isinstance(value, np.datetime64 | pd.Timestamp):
        stamp = pd.Timestamp(value)
        return str(stamp.date()) if stamp == stamp.normalize() else stamp.isoformat()
    return f"{value:g}" if isinstance(value, float | np.floating) else str(value)
