"""Sequence columns: each value is one example's steps, an array of (T,) numbers or (T, F) features.

Sensor recordings, a patient's visits, a user's sessions: examples whose length varies. Fitting
records the number of features, the length kept (`max_length`, else the longest training sequence)
and each feature's mean and standard deviation over every step of the training rows. Transforming
gives two model inputs: `sequence`, float32 (N, L, F), scaled and padded with zeros on the right,
and `lengths`, int64 (N,), the real steps of each row, so recurrent networks pack the padding away
and attention masks it. Longer sequences keep their first `max_length` steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strata.errors import DataError


def _steps(column: pd.Series, features: int | None = None) -> list[np.ndarray]:
    """Each row as a float64 (T, F) array; DataError naming the row for anything else."""
    out = []
    for i, value in enumerate(column.tolist()):
        array = np.asarray(value, dtype=np.float64) if isinstance(value, np.ndarray | list | tuple) else None
        if array is None or array.ndim not in (1, 2) or len(array) == 0:
            got = f"{type(value).__name__}" if array is None else f"an array of shape {array.shape}"
            raise DataError(f"column '{column.name}' row {i}: expected a sequence of at least one step "
                            f"((T,) numbers or (T, features)), got {got}")  # fmt: skip
        array = array[:, None] if array.ndim == 1 else array
        if features is not None and array.shape[1] != features:
            raise DataError(f"column '{column.name}' row {i}: {array.shape[1]} features per step, expected {features}")
        if not np.isfinite(array).all():
            raise DataError(f"column '{column.name}' row {i}: missing or infinite values in the steps; "
                            "fill them before training (e.g. interpolate)")  # fmt: skip
        out.append(array)
    return out


def fit(column: pd.Series, options: dict[str, Any]) -> dict[str, Any]:
    rows = _steps(column)
    widths = sorted({r.shape[1] for r in rows})
    if len(widths) > 1:
        raise DataError(f"column '{column.name}': sequences have {widths[0]} and {widths[1]} features per step; "
                        "give every step the same features")  # fmt: skip
    steps = np.concatenate(rows)
    std = steps.std(0)
    return {
        "names": options.get("names"),  # the long table's columns that made the steps (data.sequences)
        "features": widths[0],
        "max_length": int(options.get("max_length") or max(len(r) for r in rows)),
        "mean": steps.mean(0).tolist(),
        "std": np.where(std > 0, std, 1.0).tolist(),
    }


def slot(state: dict[str, Any]) -> str:
    return "sequence"


def width(state: dict[str, Any]) -> int:
    return 0


def transform(column: pd.Series, state: dict[str, Any]) -> dict[str, np.ndarray]:
    """{"sequence": (N, L, F) float32, "lengths": (N,) int64}."""
    rows = _steps(column, state["features"])
    length = state["max_length"]
    out = np.zeros((len(rows), length, state["features"]), dtype=np.float32)
    lengths = np.zeros(len(rows), dtype=np.int64)
    mean, std = np.asarray(state["mean"]), np.asarray(state["std"])
    for i, row in enumerate(rows):
        kept = row[:length]
        out[i, : len(kept)] = (kept - mean) / std
        lengths[i] = len(kept)
    return {"sequence": out, "lengths": lengths}


def describe(state: dict[str, Any]) -> str:
    return f"sequence of up to {state['max_length']} steps x {state['features']} features"


def group(
    frame: pd.DataFrame,
    id_column: str,
    order: str | None,
    targets: list[str],
    drop: list[str],
    features: list[str] | None = None,
) -> pd.DataFrame:
    """A long table (one row per step) as one row per `id_column` value: a `sequence` column of
    (T, F) arrays from the other numeric columns (or `features`, as in training), in `order`, and
    the targets (those present), constant per id. The ids become the index."""
    from strata.errors import did_you_mean

    for name in (id_column, order):
        if name is not None and name not in frame.columns:
            raise DataError(f"data.sequences: column '{name}' is not in the data{did_you_mean(name, frame.columns)}")
    missing = [name for name in features or [] if name not in frame.columns]
    if missing:
        raise DataError(f"data is missing column '{missing[0]}'{did_you_mean(missing[0], frame.columns)}; each step "
                        f"needs {', '.join(features)}")  # fmt: skip
    targets = [t for t in targets if t in frame.columns]
    used = {id_column, order, *targets, *drop}
    features = features or [c for c in frame.columns if c not in used]
    odd = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    if odd:
        raise DataError(f"data.sequences: column '{odd[0]}' is not numeric; a step's features must be numbers "
                        "(drop it with data.drop)")  # fmt: skip
    if not features:
        raise DataError("data.sequences: no numeric columns left to form the steps")
    table = frame.sort_values([id_column, order], kind="stable") if order else frame
    groups = table.groupby(id_column, sort=False)
    varying = [t for t in targets if (groups[t].nunique(dropna=False) > 1).any()]
    if varying:
        first = (groups[varying[0]].nunique(dropna=False) > 1).idxmax()
        raise DataError(f"data.sequences: target '{varying[0]}' changes within {id_column} {first!r}; "
                        "a sequence has one label")  # fmt: skip
    values = table[features].to_numpy(dtype=np.float64)
    positions = groups.indices
    keys = list(positions)
    index = pd.Index(keys, name=id_column)
    out = pd.DataFrame({"sequence": [values[positions[k]] for k in keys]}, index=index)
    for t in targets:
        out[t] = groups[t].first().loc[keys].to_numpy()
    out.attrs["sequences"] = {"column": "sequence", "features": features}
    return out
