"""Numeric columns: impute (mean, median or a constant), optionally flag missing, then scale."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strata.features._columns import as_numbers


def fit(column: pd.Series, options: dict[str, Any]) -> dict[str, Any]:
    x = as_numbers(column)
    seen = x[~np.isnan(x)]
    if options["impute"] == "constant" or len(seen) == 0:
        fill = float(options["fill_value"])
    else:
        fill = float(np.mean(seen) if options["impute"] == "mean" else np.median(seen))
    filled = np.where(np.isnan(x), fill, x)
    center, scale = _scaling(filled, options["scale"])
    return {
        "fill": fill,
        "center": center,
        "scale": scale,
        "missing_indicator": bool(options["missing_indicator"]),
        "range": [float(seen.min()), float(seen.max())] if len(seen) else None,
    }


def _scaling(x: np.ndarray, how: str) -> tuple[float, float]:
    if how == "zscore":
        center, scale = float(x.mean()), float(x.std())
    elif how == "minmax":
        center, scale = float(x.min()), float(x.max() - x.min())
    elif how == "robust":
        q1, median, q3 = np.percentile(x, [25, 50, 75])
        center, scale = float(median), float(q3 - q1)
    else:
        center, scale = 0.0, 1.0
    return center, scale if scale > 1e-12 else 1.0  # a constant column stays finite


def slot(state: dict[str, Any]) -> str:
    """The model input this column feeds: every numeric column joins the `numeric` block."""
    return "numeric"


def width(state: dict[str, Any]) -> int:
    return 2 if state["missing_indicator"] else 1


def transform(column: pd.Series, state: dict[str, Any]) -> np.ndarray:
    x = as_numbers(column)
    missing = np.isnan(x)
    scaled = np.where(missing, state["fill"], x)
    scaled -= state["center"]  # in place: the same float64 arithmetic without two more temporaries
    scaled /= state["scale"]
    if not state["missing_indicator"]:
        return scaled.astype(np.float32)[:, None]
    return np.stack([scaled, missing.astype("float64")], axis=1).astype(np.float32)
