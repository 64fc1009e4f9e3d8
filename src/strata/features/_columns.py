"""Shared helpers for reading one column the same way at fit and at transform time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from strata._labels import level_key
from strata.errors import DataError, rows_text


def as_numbers(column: pd.Series) -> np.ndarray:
    """float64 values with NaN for missing. Text that is not a number, infinities and dates are
    DataErrors naming the column and the rows (counted from 0, as pandas counts them)."""
    if column.dtype == np.float64:  # the common case first: a served record, a numeric file column
        values = column.to_numpy()
    elif pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        raise DataError(
            f"column '{column.name}' holds dates or durations ({column.dtype}), which Strata does not "
            f"encode yet; derive numbers from it (e.g. day of week, days since) or drop it"
        )
    elif pd.api.types.is_bool_dtype(column):
        values = column.astype("float64").to_numpy()
    elif pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
    else:
        numbers = pd.to_numeric(column, errors="coerce")
        bad = (numbers.isna() & column.notna()).to_numpy()
        if bad.any():
            first = column.iloc[int(np.argmax(bad))]
            raise DataError(
                f"column '{column.name}' should be numeric but {_where(column, bad)} "
                f"{'has' if bad.sum() == 1 else 'have text such as'} {first!r}"
            )
        values = numbers.to_numpy(dtype="float64", na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        raise DataError(
            f"column '{column.name}' has infinite values in {_where(column, infinite)}; "
            f"replace them with numbers or leave them empty (missing)"
        )
    return values


def _where(column: pd.Series, mask: np.ndarray) -> str:
    return rows_text(column.index[mask], int(mask.sum()))


def as_levels(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(string keys as an object array, missing mask)."""
    missing = column.isna().to_numpy()
    return row_keys(column), missing


def row_keys(column: pd.Series) -> np.ndarray:
    """Each row's level key (`level_key`), as an object array. A column of numbers or booleans is keyed
    by its distinct values (spelled once each, rows pointing at them): spelling every row made a
    Python object per row, ~90 MB for a million labels."""
    values = column.to_numpy()
    if values.dtype.kind in "iub" or (values.dtype.kind == "f" and not np.isnan(values).any()):
        codes, uniques = pd.factorize(values)
        spelled = np.array([level_key(v) for v in uniques.tolist()] or [""], dtype=object)
        return spelled[codes]
    return np.array([level_key(v) for v in column.to_numpy(dtype=object)], dtype=object)


def take(frame: pd.DataFrame, name: str, rows: np.ndarray | None) -> pd.Series:
    """One column, at row positions `rows` when given (its index labels kept, so errors name the rows):
    training reads its parts this way, a column at a time, instead of copying the table's rows."""
    column = frame[name]
    return column if rows is None else column.iloc[rows]
