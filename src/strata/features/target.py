"""The target: the task it implies, class labels or regression scaling, fitted on training rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strata.errors import DataError, RecipeError, did_you_mean, plural, rows_text
from strata.features._columns import as_numbers, level_key, row_keys, take

MAX_CLASSES_INFERRED = 20


def check_present(frame: pd.DataFrame, targets: list[str]) -> None:
    """Every target column exists and has no missing values."""
    for name in targets:
        if name not in frame.columns:
            raise DataError(
                f"data.target: column '{name}' is not in the data{did_you_mean(name, frame.columns)} "
                f"(columns: {', '.join(map(str, frame.columns[:12]))}{', ...' if len(frame.columns) > 12 else ''})"
            )
        missing = frame[name].isna().to_numpy()
        if missing.any():
            count = int(missing.sum())
            raise DataError(
                f"target '{name}' has {plural(count, 'missing value')} ({rows_text(frame.index[missing], count)}); "
                f"drop or fill {'that row' if count == 1 else 'those rows'}"
            )


def infer_task(frame: pd.DataFrame, targets: list[str], declared: str) -> tuple[str, str]:
    """(task, why) — `why` is printed so the user sees how the target was read."""
    column = frame[targets[0]]
    if len(targets) > 1:
        if declared not in ("auto", "regression"):
            raise RecipeError(f"data.task: {declared!r} needs one target column; several targets mean regression")
        return "regression", f"{len(targets)} target columns: multi-target regression"
    if declared == "regression":
        return "regression", "set in the recipe"
    n_levels = column.nunique()
    if declared == "auto" and _numeric(column):
        values = as_numbers(column)  # raises on infinite values, naming the rows
        if not (np.all(np.mod(values, 1) == 0) and n_levels <= MAX_CLASSES_INFERRED):
            return "regression", "numeric target"
    if n_levels < 2:
        raise DataError(f"target '{column.name}' has a single value ({column.iloc[0]!r}); there is nothing to learn")
    task = declared if declared != "auto" else "binary" if n_levels == 2 else "multiclass"
    if task == "binary" and n_levels != 2:
        raise DataError(f"data.task is binary but target '{column.name}' has {n_levels} classes")
    if declared != "auto":
        return task, "set in the recipe"
    if _numeric(column) and n_levels > 2:
        return task, f"{n_levels} distinct whole numbers; set data.task: regression if they are amounts"
    return task, f"{n_levels} distinct {'values' if _numeric(column) else 'labels'}"


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def classes_of(column: pd.Series) -> list:
    """The distinct labels in a stable order: sorted, or by their text when types are mixed."""
    try:
        return np.unique(column.to_numpy()).tolist()
    except TypeError:  # e.g. 1, "a" and 2.5 in one object column
        values = column.to_numpy(dtype=object)
        first = {level_key(v): v for v in values[::-1]}
        return [_plain(first[k]) for k in sorted(first)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def fit(
    frame: pd.DataFrame, targets: list[str], task: str, scale: str, rows: np.ndarray | None = None
) -> dict[str, Any]:
    """The target's classes or scaling, from the rows at positions `rows` (all rows when None)."""
    if task == "regression":
        values = np.stack([as_numbers(take(frame, t, rows)) for t in targets], axis=1)
        mean = values.mean(0) if scale == "zscore" else np.zeros(len(targets))
        std = values.std(0) if scale == "zscore" else np.ones(len(targets))
        return {
            "task": task,
            "columns": targets,
            "mean": mean.tolist(),
            "std": np.where(std > 1e-12, std, 1.0).tolist(),
        }
    classes = classes_of(take(frame, targets[0], rows))
    return {"task": task, "columns": targets, "classes": classes}


def encode(frame: pd.DataFrame, state: dict[str, Any], rows: np.ndarray | None = None) -> np.ndarray:
    """Class codes (int64, N) or scaled values (float32, N x targets), of the rows at positions `rows`
    (all rows when None)."""
    if state["task"] == "regression":
        values = np.stack([as_numbers(take(frame, t, rows)) for t in state["columns"]], axis=1)
        return ((values - state["mean"]) / state["std"]).astype(np.float32)
    column = take(frame, state["columns"][0], rows)
    index = {level_key(c): i for i, c in enumerate(state["classes"])}
    keys = row_keys(column)
    codes = np.fromiter((index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
    if (codes < 0).any():
        bad = keys[int(np.argmax(codes < 0))]
        raise DataError(
            f"target '{column.name}' has label {bad!r}, which the model was not trained on "
            f"(classes: {', '.join(map(str, state['classes']))})"
        )
    return codes


def decode(values: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """Regression outputs back in the target's units."""
    return values * np.asarray(state["std"]) + np.asarray(state["mean"])
