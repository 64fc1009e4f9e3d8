"""The target: the task it implies, class labels or regression scaling, fitted on training rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strata.errors import DataError, RecipeError
from strata.features._columns import as_numbers, level_key

MAX_CLASSES_INFERRED = 20


def check_present(frame: pd.DataFrame, targets: list[str]) -> None:
    for name in targets:
        if name not in frame.columns:
            from strata.errors import did_you_mean

            raise DataError(
                f"data.target: column '{name}' is not in the data{did_you_mean(name, frame.columns)} "
                f"(columns: {', '.join(map(str, frame.columns[:12]))})"
            )
        missing = frame[name].isna().to_numpy()
        if missing.any():
            rows = ", ".join(str(r) for r in frame.index[missing][:5])
            raise DataError(
                f"target '{name}' has {int(missing.sum())} missing values (rows {rows}); "
                f"drop or fill those rows before training"
            )


def infer_task(frame: pd.DataFrame, targets: list[str], declared: str) -> tuple[str, str]:
    """(task, why) — `why` is printed so the user sees how the target was read."""
    column = frame[targets[0]]
    if len(targets) > 1:
        if declared not in ("auto", "regression"):
            raise RecipeError(f"data.task: {declared!r} needs one target column; several targets mean regression")
        return "regression", f"{len(targets)} target columns: multi-target regression"
    n_levels = column.nunique()
    if declared != "auto":
        task = declared
        if task == "binary" and n_levels != 2:
            raise DataError(f"data.task is binary but target '{column.name}' has {n_levels} classes")
        return task, "set in the recipe"
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric:
        values = column.to_numpy(dtype="float64")
        integral = bool(np.all(np.mod(values, 1) == 0))
        if not (integral and n_levels <= MAX_CLASSES_INFERRED):
            return "regression", "numeric target"
        why = f"whole numbers with {n_levels} distinct values (set data.task: regression if they are amounts)"
    else:
        why = f"{n_levels} distinct labels"
    if n_levels < 2:
        raise DataError(f"target '{column.name}' has a single value; nothing to learn")
    return ("binary" if n_levels == 2 else "multiclass"), why


def fit(frame: pd.DataFrame, targets: list[str], task: str, scale: str) -> dict[str, Any]:
    if task == "regression":
        values = np.stack([as_numbers(frame[t]) for t in targets], axis=1)
        mean = values.mean(0) if scale == "zscore" else np.zeros(len(targets))
        std = values.std(0) if scale == "zscore" else np.ones(len(targets))
        return {
            "task": task,
            "columns": targets,
            "mean": mean.tolist(),
            "std": np.where(std > 1e-12, std, 1.0).tolist(),
        }
    classes = np.unique(frame[targets[0]].to_numpy()).tolist()
    return {"task": task, "columns": targets, "classes": classes}


def encode(frame: pd.DataFrame, state: dict[str, Any]) -> np.ndarray:
    """Class codes (int64, N) or scaled values (float32, N x targets)."""
    if state["task"] == "regression":
        values = np.stack([as_numbers(frame[t]) for t in state["columns"]], axis=1)
        return ((values - state["mean"]) / state["std"]).astype(np.float32)
    column = frame[state["columns"][0]]
    index = {level_key(c): i for i, c in enumerate(state["classes"])}
    keys = [level_key(v) for v in column.to_numpy(dtype=object)]
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
