"""The fitted feature pipeline: which columns go in, how each is encoded, and the target.

`fit_pipeline` decides the column types (inferring those the recipe leaves out, and saying how),
fits every column on the training rows only, and returns a `Pipeline` whose whole state is JSON.
`Pipeline.transform` turns any table with the same columns into named model inputs, each present
only when some column feeds it:

    numeric      float32 (N, D): scaled numbers, binary flags, one-hot blocks
    categorical  int64 (N, K): one embedding index per embedded categorical column
    image        float32 (N, C, H, W): the picture of the (one) image column, normalised per channel
    text         int64 (N, L): token ids of the (one) text column, 0 = padding, 1 = unknown
    sequence     float32 (N, L, F): the steps of the (one) sequence column, scaled, zero-padded
    lengths      int64 (N,): the real steps of each sequence

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
from strata.features import binary, categorical, image, numeric, sequence, target, text
from strata.features._columns import take
from strata.recipe import (
    CATEGORICAL_OPTIONS,
    NUMERIC_OPTIONS,
    OPTION_OWNERS,
    SEQUENCE_OPTIONS,
    TEXT_OPTIONS,
    ColumnSpec,
    FeaturesConfig,
)

KINDS = {
    "numeric": numeric,
    "categorical": categorical,
    "binary": binary,
    "image": image,
    "text": text,
    "sequence": sequence,
}
# model inputs, in this order
SLOTS = {
    "numeric": np.float32,
    "categorical": np.int64,
    "image": np.float32,
    "text": np.int64,
    "sequence": np.float32,
    "lengths": np.int64,
}
ONE_PER_MODEL = ("image", "text", "sequence")  # slots that only one column can feed


def kind_of(kind: str, state_or_options: dict[str, Any]) -> Any:
    """The module that fits and transforms a column: a text column with `pretrained` is read by
    the sentence-embedding model, not a tokenizer."""
    if kind == "text" and state_or_options.get("pretrained"):
        from strata.features import sentence

        return sentence
    return KINDS[kind]


FORMAT = 1

Inputs = dict[str, np.ndarray]


def as_tensors(inputs: Inputs) -> dict[str, Any]:
    import torch

    return {name: torch.from_numpy(values) for name, values in inputs.items()}


class Columns:
    """A few rows as named columns without a DataFrame: what the server builds per request, where a
    DataFrame's construction and column lookups cost more than the network. It has the part of a
    DataFrame's interface that `transform`, the models' `read` and the drift monitor use:
    `table[name]` (a Series), `columns`, `index`, `attrs` and `len` (rows)."""

    def __init__(self, values: dict[str, Any], rows: int):
        self.values, self.rows = values, rows
        self.columns, self.index = list(values), pd.RangeIndex(rows)
        self.attrs: dict[str, Any] = {}

    def __getitem__(self, name: str) -> pd.Series:
        return pd.Series(self.values[name], name=name, index=self.index)

    def __len__(self) -> int:
        return self.rows


@dataclass
class Pipeline:
    columns: list[dict[str, Any]]  # [{"name", "kind", "state"}] in input order
    target: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # how each column was read, for the user

    # ---- shape of the model inputs
    @property
    def numeric_width(self) -> int:
        return sum(kind_of(c["kind"], c["state"]).width(c["state"]) for c in self.columns)

    @property
    def embeddings(self) -> list[tuple[int, int]]:
        """(vocabulary size, dimension) of each embedded categorical column, in `categorical` order."""
        return [
            (len(c["state"]["vocab"]), c["state"]["embedding_dim"])
            for c in self.columns
            if kind_of(c["kind"], c["state"]).slot(c["state"]) == "categorical"
        ]

    def column_for(self, slot: str) -> dict[str, Any] | None:
        """The column that feeds a one-per-model input (`image`, `text`, `sequence`), if any."""
        return next((c for c in self.columns if kind_of(c["kind"], c["state"]).slot(c["state"]) == slot), None)

    @property
    def input_names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def task(self) -> str:
        return self.target["task"]

    # ---- transform
    def check_columns(self, frame: pd.DataFrame) -> None:
        present = set(frame.columns)  # a set: pandas' string index is slow to search one name at a time
        missing = [n for n in self.input_names if n not in present]
        if missing:
            hint = did_you_mean(missing[0], [c for c in frame.columns if c not in self.input_names])
            more = f" and {len(missing) - 1} more ({', '.join(missing[1:4])})" if len(missing) > 1 else ""
            raise DataError(
                f"data is missing column '{missing[0]}'{hint}{more}; the model needs: {', '.join(self.input_names)}"
            )

    def transform(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> Inputs:
        """Model inputs by name; raises DataError naming a missing or malformed column. `rows` (row
        positions) transforms those rows only, one column at a time: no copy of the table is made.

        The `numeric` and `categorical` blocks are allocated once and filled column by column
        (joining per-column pieces at the end held the block twice: bench/scaling.py)."""
        self.check_columns(frame)
        n = len(frame) if rows is None else len(rows)
        blocks = {"numeric": np.empty((n, self.numeric_width), np.float32),
                  "categorical": np.empty((n, len(self.embeddings)), np.int64)}  # fmt: skip
        filled = dict.fromkeys(blocks, 0)
        fed: set[str] = set()  # blocks some column feeds, even with no width (all its levels rare)
        single: dict[str, np.ndarray] = {}
        for col in self.columns:
            kind = kind_of(col["kind"], col["state"])
            values = kind.transform(take(frame, col["name"], rows), col["state"])
            for slot, array in values.items() if isinstance(values, dict) else [(kind.slot(col["state"]), values)]:
                if slot in blocks:
                    fed.add(slot)
                    array = array if array.ndim > 1 else array[:, None]
                    start = filled[slot]
                    blocks[slot][:, start : start + array.shape[1]] = array
                    filled[slot] += array.shape[1]
                else:
                    single[slot] = np.ascontiguousarray(array, dtype=SLOTS[slot])
        for slot, width in filled.items():
            if width != blocks[slot].shape[1]:  # a kind's width() and its transform disagree: a bug, not bad data
                raise RuntimeError(f"pipeline: the {slot} input has {width} columns, expected {blocks[slot].shape[1]}")
        inputs = {**{slot: block for slot, block in blocks.items() if slot in fed}, **single}
        return {slot: inputs[slot] for slot in SLOTS if slot in inputs}

    def encode_target(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        target.check_present(frame, self.target["columns"])
        return target.encode(frame, self.target, rows)

    # ---- JSON
    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "columns": self.columns, "target": self.target}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> Pipeline:
        if state.get("kind") == "forecast":  # a forecast's windowing plan, with the same interface
            from strata.forecasting import ForecastPipeline

            return ForecastPipeline.from_json(state)  # type: ignore[return-value]
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
        return _array_kind(column.iloc[0])
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
        words = values.astype(str).str.split().str.len().mean()
        if words >= 3:
            return "text", f"free text, {words:.0f} words per row on average"
        return None, f"{levels} distinct values in {len(values)} rows: looks like an identifier"
    return "categorical", f"{levels} distinct values"


def _array_kind(first: np.ndarray) -> tuple[str, str]:
    if first.ndim == 1:
        return "sequence", "arrays of numbers, one sequence per row"
    return "image", f"pictures of {'x'.join(map(str, first.shape))} pixels"


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
    wrong = [o for o, owners in OPTION_OWNERS.items() if getattr(spec, o) is not None and kind not in owners]
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
        grouped = frame.attrs.get("sequences", {})
        if grouped.get("column") == spec.name:
            kind, reason = "sequence", f"steps of {', '.join(grouped['features'])} (data.sequences)"
        else:
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
    if spec.type in ("text", "sequence"):  # only what the recipe sets: the kind knows its defaults
        names = TEXT_OPTIONS if spec.type == "text" else SEQUENCE_OPTIONS
        return {k: getattr(spec, k) for k in names if getattr(spec, k) is not None}
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
    for kind in ONE_PER_MODEL:
        same = [s.name for s in specs if s.type == kind and not (kind == "text" and s.pretrained)]
        if len(same) > 1:
            raise DataError(f"columns {same[0]!r} and {same[1]!r} are both {kind}; a model takes one {kind} input "
                            f"(drop one, or join them into one column)")  # fmt: skip
    columns = []
    for spec in specs:  # one column of the training rows at a time: no copy of the table
        options = _options(spec, cfg)
        if frame.attrs.get("sequences", {}).get("column") == spec.name:
            options["names"] = frame.attrs["sequences"]["features"]
        state = kind_of(spec.type, options).fit(take(frame, spec.name, train_rows), options)
        columns.append({"name": spec.name, "kind": spec.type, "state": state})
    target_state = target.fit(frame, targets, task, cfg.target_scale, train_rows)
    return Pipeline(columns=columns, target=target_state, notes=notes)


def transform_quietly(pipeline: Pipeline, frame: pd.DataFrame, rows: np.ndarray | None = None) -> Inputs:
    """Transform training rows without warnings about levels dropped by min_frequency."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline.transform(frame, rows)
