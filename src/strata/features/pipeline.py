"""The fitted feature pipeline: which columns go in, how each is encoded, and the target.

`fit_pipeline` decides the column types (inferring those the recipe leaves out, and saying how),
fits every column on the training rows only, and returns a `Pipeline` whose whole state is JSON.
`Pipeline.transform` turns any table with the same columns into named model inputs, each present
only when some column feeds it:

    numeric      float32 (N, D): scaled numbers, binary flags, one-hot blocks
    categorical  int64 (N, K): one embedding index per embedded categorical column
    image        float32 (N, C, H, W): the picture of the (one) image column, normalised per channel

Column *types* and the task are read from the whole table (they describe its structure);
every *statistic* (means, scales, vocabularies, classes, target scaling) is fitted on training rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from strata.errors import DataError, RecipeError, did_you_mean
from strata.features import binary, categorical, image, numeric, target
from strata.recipe import CATEGORICAL_OPTIONS, NUMERIC_OPTIONS, ColumnSpec, FeaturesConfig

KINDS = {"numeric": numeric, "categorical": categorical, "binary": binary, "image": image}
SLOTS = {"numeric": np.float32, "categorical": np.int64, "image": np.float32}  # model inputs, in this order
FORMAT = 1

Inputs = dict[str, np.ndarray]


def as_tensors(inputs: Inputs) -> dict[str, Any]:
    import torch

    return {name: torch.from_numpy(values) for name, values in inputs.items()}


@dataclass
class Pipeline:
    columns: list[dict[str, Any]]  # [{"name", "kind", "state"}] in input order
    target: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # how each column was read, for the user

    # ---- shape of the model inputs
    @property
    def numeric_width(self) -> int:
        return sum(KINDS[c["kind"]].width(c["state"]) for c in self.columns)

    @property
    def embeddings(self) -> list[tuple[int, int]]:
        """(vocabulary size, dimension) of each embedded categorical column, in `categorical` order."""
        return [
            (len(c["state"]["vocab"]), c["state"]["embedding_dim"])
            for c in self.columns
            if KINDS[c["kind"]].slot(c["state"]) == "categorical"
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
            more = f" and {len(missing) - 1} more ({', '.join(missing[1:4])})" if len(missing) > 1 else ""
            raise DataError(
                f"data is missing column '{missing[0]}'{hint}{more}; the model needs: {', '.join(self.input_names)}"
            )

    def transform(self, frame: pd.DataFrame) -> Inputs:
        """Model inputs by name; raises DataError naming a missing or malformed column."""
        self.check_columns(frame)
        parts: dict[str, list[np.ndarray]] = {slot: [] for slot in SLOTS}
        for col in self.columns:
            kind = KINDS[col["kind"]]
            parts[kind.slot(col["state"])].append(kind.transform(frame[col["name"]], col["state"]))
        return {
            slot: np.ascontiguousarray(np.concatenate(arrays, axis=1), dtype=SLOTS[slot])
            for slot, arrays in parts.items()
            if arrays
        }

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
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        return None, "dates or durations, which are not encoded yet"
    if column.attrs.get("streamed") and column.name == "image":
        return "image", "image files, read batch by batch"
    if len(column) and isinstance(column.iloc[0], np.ndarray):
        return "image", f"pictures of {'x'.join(map(str, column.iloc[0].shape))} pixels"
    values = column.dropna()
    levels = values.nunique()
    if levels == 0:
        return None, "every value is missing"
    if levels == 1:
        return None, f"a single value, {values.iloc[0]!r}"
    if pd.api.types.is_bool_dtype(column) or levels == 2:
        return "binary", "two distinct values"
    if pd.api.types.is_numeric_dtype(column):
        return _numeric_kind(column, values.to_numpy(dtype="float64"), levels)
    if levels > 50 and levels > 0.5 * len(values):
        return None, f"{levels} distinct values in {len(values)} rows: looks like an identifier or free text"
    return "categorical", f"{levels} distinct values"


def _numeric_kind(column: pd.Series, values: np.ndarray, levels: int) -> tuple[str, str]:
    # Few non-negative whole numbers are codes (a rating, a region number). A float column counts
    # only when it has gaps: that is how pandas reads a whole-number column with missing values.
    with np.errstate(invalid="ignore"):  # an infinite value is reported when the column is fitted
        integral = bool(np.all(values % 1 == 0))
    whole = pd.api.types.is_integer_dtype(column) or (column.isna().any() and integral)
    if whole and levels <= 10 and bool(np.all(values >= 0)):
        return "categorical", f"{levels} distinct whole numbers"
    return "numeric", "numbers"


def _check_options(spec: ColumnSpec, kind: str, reason: str) -> None:
    """Options written for another type would be ignored: say so instead."""
    allowed = {"numeric": NUMERIC_OPTIONS, "categorical": CATEGORICAL_OPTIONS}.get(kind, ())
    wrong = [o for o in (*NUMERIC_OPTIONS, *CATEGORICAL_OPTIONS) if getattr(spec, o) is not None and o not in allowed]
    if wrong:
        raise RecipeError(
            f"features.columns: column '{spec.name}' was read as {kind} ({reason}), so option '{wrong[0]}' "
            f"would be ignored; set its type or remove the option"
        )


def _resolve_columns(
    frame: pd.DataFrame, cfg: FeaturesConfig, targets: list[str], drop: list[str]
) -> tuple[list[ColumnSpec], list[str]]:
    """The input columns with their kinds, and a note per column on how it was read."""
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
            notes.append(f"{spec.name}: {spec.type} (set in the recipe)")
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
        _check_options(spec, kind, reason)
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
    pictures = [s.name for s in specs if s.type == "image"]
    if len(pictures) > 1:
        raise DataError(f"columns {pictures[0]!r} and {pictures[1]!r} both hold images; a model takes one image input")
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
