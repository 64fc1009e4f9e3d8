"""Two-level columns (yes/no, male/female, 0/1) as one 0/1 input; missing takes the training mode."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from strata.errors import DataError, StrataWarning, rows_have
from strata.features._columns import as_levels


def fit(column: pd.Series, options: dict[str, Any]) -> dict[str, Any]:
    keys, missing = as_levels(column)
    levels, counts = np.unique(keys[~missing], return_counts=True)
    if len(levels) > 2:
        raise DataError(
            f"column '{column.name}' is declared binary but has {len(levels)} levels "
            f"({', '.join(map(str, levels[:5]))}...); declare it categorical"
        )
    mode = str(levels[np.argmax(counts)]) if len(levels) else ""
    return {"levels": [str(v) for v in levels], "mode": mode}


def slot(state: dict[str, Any]) -> str:
    return "numeric"


def width(state: dict[str, Any]) -> int:
    return 1


def transform(column: pd.Series, state: dict[str, Any]) -> np.ndarray:
    keys, missing = as_levels(column)
    levels = state["levels"]
    unseen = ~missing & ~np.isin(keys, levels)
    if unseen.any():
        examples = ", ".join(repr(v) for v in dict.fromkeys(keys[unseen][:3]))
        warnings.warn(
            f"column '{column.name}': {rows_have(int(unseen.sum()))} values not seen in training "
            f"({examples}); treated as missing",
            StrataWarning,
            stacklevel=2,
        )
    keys = np.where(missing | unseen, state["mode"], keys)
    return (keys == (levels[-1] if len(levels) == 2 else None)).astype(np.float32)[:, None]
