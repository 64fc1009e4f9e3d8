"""The fitted feature pipeline: which columns go in, how each is encoded, and the target.

`fit_pipeline` decides the column types (inferring those the recipe leaves out, and saying how),
fits every column on the training rows only, and returns a `Pipeline` whose whole state is JSON.
`Pipeline.transform` turns any table with the same columns into model inputs:
`x_num` (float32, N x D: scaled numbers, binary flags, one-hot blocks) and
`x_cat` (int64, N x K: one embedding index per embedded categorical column).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from strata.errors import DataError, did_you_mean
from strata.features import binary, categorical, numeric, target
from strata.recipe import CATEGORICAL_OPTIONS, NUMERIC_OPTIONS, ColumnSpec, FeaturesConfig

KINDS = {"numeric": numeric, "categorical": categorical, "binary": binary}
FORMAT = 1


@dataclass
class Inputs:
    x_num: np.ndarray  # float32 (N, D)
    x_cat: np.ndarray  # int64 (N, K)

    def tensors(self) -> tuple[Any, ...]:
        import torch

        return torch.from_numpy(self.x_num), torch.from_numpy(self.x_cat)


@dataclass
class Pipeline:
    columns: list[dict[str, Any]]  # [{"name", "kind", "state", "dtype"}] in input order
    target: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # how types were inferred, for the user

    # ---- shape of the model inputs
    @property
    def numeric_width(self) -> int:
        return sum(KINDS[c["kind"]].width(c["state"]) for c in self.columns)

    @property
    def embeddings(self) -> list[tuple[int, int]]:
        """(cardinality, dimension) of each embedded categorical column, in x_cat order."""
        return [
            (len(c["state"]["vocab"]), c["state"]["embedding_dim"])
            for c in self.columns
            if c["kind"] == "categorical" and c["state"]["encoding"] == "embedding"
        ]

    @property
    def input_names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def task(self) -> str:
        return self.target["task"]

    # ---- transform
    def check_columns(self, frame: pd.DataFrame) -> None:
        missing = [n for n in self.input_names if n not in frame.columns]
        if missing:
            hint = did_you_mean(missing[0], [c for c in frame.columns if c not in self.input_names])
            raise DataError(
                f"data is missing column '{missing[0]}'{hint}"
                + (f" and {len(missing) - 1} more ({', '.join(missing[1:4])})" if len(missing) > 1 else "")
                + f"; the model needs: {', '.join(self.input_names)}"
            )

    def transform(self, frame: pd.DataFrame) -> Inputs:
        self.check_columns(frame)
        dense, index = [], []
        for col in self.columns:
            out = KINDS[col["kind"]].transform(frame[col["name"]], col["state"])
            (index if out.dtype == np.int64 else dense).append(out)
        n = len(frame)
        x_num = np.concatenate(dense, axis=1) if dense else np.zeros((n, 0), np.float32)
        x_cat = np.concatenate(index, axis=1) if index else np.zeros((n, 0), np.int64)
        return Inputs(np.ascontiguousarray(x_num, dtype=np.float32), np.ascontiguousarray(x_cat))

    def encode_target(self, frame: pd.DataFrame) -> np.ndarray:
        target.check_present(frame, self.target["columns"])
        return target.encode(frame, self.target)

    # ---- JSON
    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "columns": self.columns, "target": self.target}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> Pipeline:
        if state.get("format") != FORMAT:
            raise DataError(f"pipeline.json has format {state.get('format')!r}; this Strata reads format {FORMAT}")
        return cls(columns=state["columns"], target=state["target"])


# ------------------------------------------------------------------------------------ inference
def infer_kind(column: pd.Series) -> tuple[str | None, str]:
    """(kind, reason); kind None means the column is skipped (reason says why)."""
    levels = column.nunique(dropna=True)
    if pd.api.types.is_bool_dtype(column) or levels == 2:
        return "binary", "two distinct values"
    if pd.api.types.is_numeric_dtype(column):
        values = column.dropna().to_numpy(dtype="float64")
        if pd.api.types.is_integer_dtype(column) and 2 < levels <= 10 and np.all(values >= 0):
            return "categorical", f"whole numbers with {levels} distinct values"
        return "numeric", str(column.dtype)
    if levels <= 1:
        return None, "a single value"
    n = column.notna().sum()
    if levels > 50 and levels > 0.5 * n:
        return None, f"{levels} distinct values in {n} rows: looks like an identifier or free text"
    return "categorical", f"{levels} distinct values"


def _resolve_columns(
    frame: pd.DataFrame, cfg: FeaturesConfig, targets: list[str], drop: list[str]
) -> tuple[list[ColumnSpec], list[str]]:
    """The input columns with their kinds, and notes on what was inferred or skipped."""
    for name in [*drop, *(c.name for c in cfg.columns or [])]:
        if name not in frame.columns:
            where = "data.drop" if name in drop else "features.columns"
            raise DataError(f"{where}: column '{name}' is not in the data{did_you_mean(name, frame.columns)}")
    listed = cfg.columns or [ColumnSpec(name=str(c)) for c in frame.columns if c not in targets and c not in drop]
    specs, notes = [], []
    for spec in listed:
        if spec.name in targets:
            raise DataError(f"features.columns: '{spec.name}' is the target; it cannot also be an input")
        if spec.type != "auto":
            specs.append(spec)
            continue
        kind, reason = infer_kind(frame[spec.name])
        if kind is None:
            if cfg.columns:
                raise DataError(
                    f"features.columns: cannot use column '{spec.name}' ({reason}); remove it or set its type"
                )
            notes.append(f"{spec.name}: skipped ({reason}; list it in features.columns with a type to use it)")
            continue
        notes.append(f"{spec.name}: {kind} ({reason})")
        specs.append(spec.model_copy(update={"type": kind}))
    if not specs:
        raise DataError("no input columns left to train on (after data.drop and skipped columns)")
    return specs, notes


def _options(spec: ColumnSpec, cfg: FeaturesConfig) -> dict[str, Any]:
    defaults = cfg.numeric if spec.type == "numeric" else cfg.categorical
    names = NUMERIC_OPTIONS if spec.type == "numeric" else (*CATEGORICAL_OPTIONS, "max_onehot")
    merged = defaults.model_dump()
    merged.update({k: getattr(spec, k) for k in names if getattr(spec, k, None) is not None})
    return merged


def fit_pipeline(
    frame: pd.DataFrame, train_rows: np.ndarray, cfg: FeaturesConfig, targets: list[str], task: str, drop: list[str]
) -> Pipeline:
    """Decide the input columns from the whole table, fit their encodings on `train_rows` only."""
    specs, notes = _resolve_columns(frame, cfg, targets, drop)
    train = frame.iloc[train_rows]
    columns = []
    for spec in specs:
        state = KINDS[spec.type].fit(train[spec.name], _options(spec, cfg))
        columns.append({"name": spec.name, "kind": spec.type, "state": state})
    target_state = target.fit(train, targets, task, cfg.target_scale)
    return Pipeline(columns=columns, target=target_state, notes=notes)


def transform_quietly(pipeline: Pipeline, frame: pd.DataFrame) -> Inputs:
    """Transform training rows without warnings about levels dropped by min_frequency."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline.transform(frame)
