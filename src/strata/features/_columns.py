"""Shared helpers for reading one column the same way at fit and at transform time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from strata.errors import DataError


def as_numbers(column: pd.Series) -> np.ndarray:
    """float64 values with NaN for missing; a non-numeric entry is a DataError naming the row."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype("float64").to_numpy()
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype="float64", na_value=np.nan)
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna()
    if bad.any():
        row = bad.idxmax()
        raise DataError(
            f"column '{column.name}' should be numeric but row {row} has {column[row]!r} ({int(bad.sum())} such rows)"
        )
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def level_key(value: object) -> str:
    """The string a category is stored under: 2007, 2007.0 and '2007' are one level."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def as_levels(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(string keys as an object array, missing mask)."""
    missing = column.isna().to_numpy()
    keys = np.array([level_key(v) for v in column.to_numpy(dtype=object)], dtype=object)
    return keys, missing
