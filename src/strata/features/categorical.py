"""Categorical columns: a vocabulary fitted on training data, encoded one-hot or as an embedding index.

Index 0 is reserved for levels never seen in training (and levels rarer than `min_frequency`);
it one-hot encodes to all zeros and embeds to a fixed zero vector. Missing values are their own
level, `<missing>`, which the model learns like any other.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from strata.errors import StrataWarning, rows_have
from strata.features._columns import as_levels

UNSEEN, MISSING = "<unseen>", "<missing>"


def embedding_dim(cardinality: int) -> int:
    """fastai's rule of thumb for n levels, capped at 50: min(50, round(1.6 * n ** 0.56))."""
    return int(min(50, round(1.6 * cardinality**0.56)))


def fit(column: pd.Series, options: dict[str, Any]) -> dict[str, Any]:
    keys, missing = as_levels(column)
    keys = np.where(missing, MISSING, keys)
    levels, counts = np.unique(keys, return_counts=True)
    kept = sorted(str(v) for v, c in zip(levels, counts, strict=True) if c >= options["min_frequency"])
    vocab = [UNSEEN, *kept]
    encoding = options["encoding"]
    if encoding == "auto":
        encoding = "onehot" if len(kept) <= options["max_onehot"] else "embedding"
    state: dict[str, Any] = {"vocab": vocab, "encoding": encoding}
    if encoding == "embedding":
        state["embedding_dim"] = int(options["embedding_dim"] or embedding_dim(len(kept)))
    return state


def slot(state: dict[str, Any]) -> str:
    """One-hot blocks join the `numeric` input; embedded columns feed `categorical` (indices)."""
    return "numeric" if state["encoding"] == "onehot" else "categorical"


def width(state: dict[str, Any]) -> int:
    """Dense width: one column per level (minus the reserved one) for one-hot, 0 for embeddings."""
    return len(state["vocab"]) - 1 if state["encoding"] == "onehot" else 0


def codes(column: pd.Series, state: dict[str, Any]) -> np.ndarray:
    keys, missing = as_levels(column)
    keys = np.where(missing, MISSING, keys)
    index = {level: i for i, level in enumerate(state["vocab"])}
    out = np.fromiter((index.get(k, 0) for k in keys), dtype=np.int64, count=len(keys))
    unseen = out == 0
    if unseen.any():
        examples = ", ".join(repr(v) for v in dict.fromkeys(keys[unseen][:3]))
        warnings.warn(
            f"column '{column.name}': {rows_have(int(unseen.sum()))} categories not in the "
            f"training vocabulary ({examples}); encoded as unknown",
            StrataWarning,
            stacklevel=2,
        )
    return out


def transform(column: pd.Series, state: dict[str, Any]) -> np.ndarray:
    """One-hot floats (N, levels) or embedding indices (N, 1)."""
    index = codes(column, state)
    if state["encoding"] == "embedding":
        return index[:, None]
    onehot = np.zeros((len(index), len(state["vocab"])), dtype=np.float32)
    onehot[np.arange(len(index)), index] = 1.0
    return onehot[:, 1:]  # the reserved column is all zeros
