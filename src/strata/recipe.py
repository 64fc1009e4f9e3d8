"""The recipe: one validated, immutable description of a training run.

A recipe is checked completely before any data is read. Every error names the dotted key path
(`train.optimizer.name`), the bad value, the valid choices and the closest one:

>>> Recipe.from_dict({"data": {"dataset": "iris", "target": "species"},
...                   "train": {"optimizer": {"name": "adamm"}}})
Traceback (most recent call last):
...
strata.errors.RecipeError: train.optimizer.name: 'adamm' is not one of sgd, adam, adamw, rmsprop (did you mean 'adam'?)

The same dotted paths address keys in YAML, in `--set key=value` overrides and in Python.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from strata._labels import level_key as _class_key
from strata.data.augment_spec import AugmentStep
from strata.data.datasets import DATASETS
from strata.data.forecast_spec import ForecastConfig
from strata.errors import RecipeError, did_you_mean, one_of
from strata.models.specs import (
    BagConfig,
    Conv1dConfig,
    ConvConfig,
    GRUConfig,
    LSTMConfig,
    MiniLMConfig,
    ResNetConfig,
    RNNConfig,
    TransformerConfig,
)
from strata.tuning.space import TuneConfig

Activation = Literal["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"]
Task = Literal["auto", "binary", "multiclass", "regression"]


class _Section(BaseModel):
    """Immutable, and an unknown key is an error (never silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _shorthand(value: Any, key: str = "name") -> Any:
    """Let `optimizer: adam` stand for `optimizer: {name: adam}`."""
    return {key: value} if isinstance(value, str) else value


def _only_for(section: BaseModel, owner: str, allowed: dict[str, tuple[str, ...]]) -> None:
    """Reject an option that the chosen `owner` value would silently ignore."""
    chosen = getattr(section, owner)
    for option, owners in allowed.items():
        if getattr(section, option) is not None and chosen not in owners:
            raise ValueError(f"option '{option}' applies to {owner} {', '.join(owners)}, not '{chosen}'; remove it")


# ----------------------------------------------------------------------------------------- data
class SequencesConfig(_Section):
    """Rows of a long table that share an `id` form one sequence (one example), in `order`; the
    other numeric columns are its features at each step, and the target must be constant per id."""

    id: str
    order: str | None = None  # default: the rows' order in the file
    max_length: int | None = Field(None, ge=1)  # steps kept (the first ones); default: the longest


class DataConfig(_Section):
    dataset: str | None = None
    path: str | None = None
    images: str | None = None  # a folder of class sub-folders, a CSV of path,label, or a .npy/.npz file
    format: Literal["auto", "csv", "parquet"] = "auto"
    target: str | list[str]
    task: Task = "auto"
    drop: list[str] = Field(default_factory=list)
    image_size: tuple[int, int] | None = None  # (height, width): resize to cover it, crop the centre
    color: Literal["auto", "rgb", "grayscale"] = "auto"
    on_error: Literal["error", "skip"] = "error"  # an unreadable image file
    sequences: SequencesConfig | None = None  # a long table of steps: one sequence per id

    @model_validator(mode="before")
    @classmethod
    def _images_are_labelled(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("images") and "target" not in raw:
            return {**raw, "target": "label"}  # an image source's labels are its column 'label'
        return raw

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
        if size is not None and min(size) < 1:
            raise ValueError(f"expected [height, width] in pixels, both at least 1, got {list(size)}")
        return size

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str | None) -> str | None:
        if name is not None and name not in DATASETS:
            raise ValueError(one_of(name, DATASETS))
        return name

    @field_validator("target")
    @classmethod
    def _some_target(cls, target: str | list[str]) -> str | list[str]:
        if isinstance(target, list) and not target:
            raise ValueError("give at least one target column")
        return target

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        given = [k for k in ("dataset", "path", "images") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give one data source, not both '{given[0]}' and '{given[1]}'")
        return self

    @property
    def targets(self) -> list[str]:
        return [self.target] if isinstance(self.target, str) else list(self.target)


# ------------------------------------------------------------------------------------- features
Impute = Literal["mean", "median", "constant"]
Scale = Literal["zscore", "minmax", "robust", "none"]
Encoding = Literal["auto", "onehot", "embedding"]


class NumericDefaults(_Section):
    impute: Impute = "mean"
    fill_value: float = 0.0
    scale: Scale = "zscore"
    missing_indicator: bool = False


class CategoricalDefaults(_Section):
    encoding: Encoding = "auto"
    max_onehot: int = Field(10, ge=2)
    embedding_dim: int | None = Field(None, ge=1)
    min_frequency: int = Field(1, ge=1)


NUMERIC_OPTIONS = ("impute", "fill_value", "scale", "missing_indicator")
CATEGORICAL_OPTIONS = ("encoding", "embedding_dim", "min_frequency")
TEXT_OPTIONS = ("tokenizer", "vocab_size", "max_length", "lowercase", "pretrained", "min_frequency")
SEQUENCE_OPTIONS = ("max_length",)
OPTION_OWNERS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(NUMERIC_OPTIONS, ("numeric",)),
    **dict.fromkeys(("encoding", "embedding_dim"), ("categorical",)),
    "min_frequency": ("categorical", "text"),
    **dict.fromkeys(("tokenizer", "vocab_size", "lowercase", "pretrained"), ("text",)),
    "max_length": ("text", "sequence"),
}


class ColumnSpec(_Section):
    """One input column; options left out come from `features.numeric` / `features.categorical`."""

    name: str
    type: Literal["auto", "numeric", "categorical", "binary", "image", "text", "sequence"] = "auto"
    impute: Impute | None = None
    fill_value: float | None = None
    scale: Scale | None = None
    missing_indicator: bool | None = None
    encoding: Encoding | None = None
    embedding_dim: int | None = Field(None, ge=1)
    min_frequency: int | None = Field(None, ge=1)  # categorical levels; text tokens
    tokenizer: Literal["word", "char", "bpe", "minilm"] | None = None  # text: default word
    vocab_size: int | None = Field(None, ge=3)  # text: ids kept, the padding and unknown ids included
    max_length: int | None = Field(None, ge=1)  # text: tokens kept; sequence: steps kept (the first ones)
    lowercase: bool | None = None  # text: default true
    pretrained: Literal["minilm"] | None = None  # text: frozen all-MiniLM-L6-v2 sentence embeddings (384 numbers)

    @model_validator(mode="after")
    def _options_match_type(self) -> ColumnSpec:
        if self.type != "auto":
            _only_for(self, "type", OPTION_OWNERS)
        if self.pretrained and (self.tokenizer or self.vocab_size or self.max_length or self.min_frequency):
            raise ValueError("pretrained: minilm brings its own tokenizer; remove tokenizer, vocab_size, "
                             "max_length and min_frequency")  # fmt: skip
        return self


class FeaturesConfig(_Section):
    columns: list[ColumnSpec] | None = None
    numeric: NumericDefaults = NumericDefaults()
    categorical: CategoricalDefaults = CategoricalDefaults()
    target_scale: Literal["zscore", "none"] = "zscore"

    @field_validator("columns", mode="before")
    @classmethod
    def _names_as_specs(cls, columns: Any) -> Any:
        if isinstance(columns, list):
            return [{"name": c} if isinstance(c, str) else c for c in columns]
        return columns

    @field_validator("columns")
    @classmethod
    def _unique(cls, columns: list[ColumnSpec] | None) -> list[ColumnSpec] | None:
        names = [c.name for c in columns or []]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"column {repeated[0]!r} is listed more than once")
        return columns


# ---------------------------------------------------------------------------------------- split
class SplitConfig(_Section):
    test: float = Field(0.2, ge=0.0, lt=1.0)
    val: float = Field(0.1, ge=0.0, lt=1.0)
    stratify: bool = True

    @model_validator(mode="after")
    def _room_to_train(self) -> SplitConfig:
        if self.test + self.val >= 0.9:
            raise ValueError(f"test + val = {self.test + self.val:g} leaves too little to train on (< 0.1)")
        return self


# ---------------------------------------------------------------------------------------- model
class MLPConfig(_Section):
    type: Literal["mlp"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [128, 64])
    activation: Activation = "relu"
    norm: Literal["none", "batch", "layer"] = "none"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    init: Literal["auto", "kaiming", "xavier", "default"] = "auto"

    @field_validator("hidden")
    @classmethod
    def _positive(cls, hidden: list[int]) -> list[int]:
        if any(h < 1 for h in hidden):
            raise ValueError(f"layer sizes must be positive integers, got {hidden}")
        return hidden


class _Transfer(_Section):
    """Start from a trained model's weights (a bundle folder, or models:/NAME@ALIAS)."""

    pretrained: str | None = None
    transfer: Literal["feature_extraction", "fine_tune"] | None = None  # default fine_tune
    backbone_lr: float | None = Field(None, gt=0.0, le=1.0)  # fine_tune: the backbone's lr factor (0.1)
    unfreeze_every: int | None = Field(None, ge=1)  # fine_tune: thaw one more stage every N epochs

    @model_validator(mode="after")
    def _needs_pretrained(self) -> _Transfer:
        options = [k for k in ("transfer", "backbone_lr", "unfreeze_every") if getattr(self, k) is not None]
        if options and not self.pretrained:
            raise ValueError(f"option '{options[0]}' needs model.pretrained (the bundle to start from)")
        if self.transfer == "feature_extraction" and (self.backbone_lr or self.unfreeze_every):
            raise ValueError("backbone_lr and unfreeze_every apply to transfer: fine_tune, not feature_extraction")
        return self


class MLPModel(_Transfer, MLPConfig):
    pass


class CNNModel(_Transfer, ConvConfig):
    pass


class ResNetModel(_Transfer, ResNetConfig):
    pass


class CNN1dModel(_Transfer, Conv1dConfig):
    pass


class RNNModel(_Transfer, RNNConfig):
    pass


class LSTMModel(_Transfer, LSTMConfig):
    pass


class GRUModel(_Transfer, GRUConfig):
    pass


class TransformerModel(_Transfer, TransformerConfig):
    pass


class BagModel(_Transfer, BagConfig):
    pass


class MiniLMModel(_Transfer, MiniLMConfig):
    pass


ModelConfig = Annotated[
    MLPModel
    | CNNModel
    | ResNetModel
    | CNN1dModel
    | RNNModel
    | LSTMModel
    | GRUModel
    | TransformerModel
    | BagModel
    | MiniLMModel,
    Field(discriminator="type"),
]
MODEL_TYPES = ("mlp", "cnn", "resnet", "cnn1d", "rnn", "lstm", "gru", "transformer", "bag", "minilm")
SEQUENCE_MODELS = ("rnn", "lstm", "gru", "transformer", "bag")  # read a text or sequence input


# ---------------------------------------------------------------------------------------- train
class OptimizerConfig(_Section):
    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float | None = Field(None, ge=0.0, lt=1.0)
    nesterov: bool | None = None
    betas: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _options_match(self) -> OptimizerConfig:
        _only_for(self, "name", {"momentum": ("sgd", "rmsprop"), "nesterov": ("sgd",), "betas": ("adam", "adamw")})
        if self.nesterov and not self.momentum:
            raise ValueError("nesterov needs momentum > 0 (set train.optimizer.momentum, e.g. 0.9)")
        return self


class ScheduleConfig(_Section):
    """LR schedule; `train.optimizer.lr` is always the peak rate. Times are in epochs."""

    name: Literal["none", "step", "exponential", "cosine", "cyclic", "onecycle"] = "none"
    warmup_epochs: float = Field(0.0, ge=0.0)
    step_size: float | None = Field(None, gt=0.0)
    gamma: float | None = Field(None, gt=0.0, le=1.0)
    min_lr: float | None = Field(None, ge=0.0)
    cycle_epochs: float | None = Field(None, gt=0.0)
    pct_start: float | None = Field(None, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _options_match(self) -> ScheduleConfig:
        _only_for(
            self,
            "name",
            {
                "step_size": ("step",),
                "gamma": ("step", "exponential"),
                "min_lr": ("cosine", "cyclic"),
                "cycle_epochs": ("cyclic",),
                "pct_start": ("onecycle",),
            },
        )
        if self.name == "onecycle" and self.warmup_epochs:
            raise ValueError("onecycle has its own warm-up (pct_start); remove warmup_epochs")
        return self


class LossConfig(_Section):
    name: Literal["auto", "cross_entropy", "bce", "mse", "mae", "huber"] = "auto"
    class_weights: Literal["balanced"] | dict[str, float] | None = None
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    huber_delta: float | None = Field(None, gt=0.0)  # 1.0 when not set

    @model_validator(mode="after")
    def _options_match(self) -> LossConfig:
        _only_for(self, "name", {"huber_delta": ("huber",)})
        return self

    @field_validator("class_weights", mode="before")
    @classmethod
    def _weights(cls, weights: Any) -> Any:
        if weights is None or weights == "balanced":
            return weights
        if isinstance(weights, dict) and all(isinstance(w, int | float) and w > 0 for w in weights.values()):
            return {_class_key(k): float(w) for k, w in weights.items()}
        raise ValueError(f"expected 'balanced' or a mapping of class to positive weight, got {weights!r}")


Monitor = Literal["val_loss", "train_loss", "val_accuracy", "val_mae", "val_rmse", "val_r2"]


class EarlyStoppingConfig(_Section):
    monitor: Monitor = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int = Field(10, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = True


class ClipConfig(_Section):
    norm: float | None = Field(None, gt=0.0)
    value: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _exactly_one(self) -> ClipConfig:
        if (self.norm is None) == (self.value is None):
            raise ValueError("give exactly one of 'norm' (clip the gradient norm) or 'value' (clip each element)")
        return self


class CheckpointConfig(_Section):
    """Training state saved every `every` epochs (and after the last), for `--resume`."""

    every: int = Field(1, ge=1)


class TrainConfig(_Section):
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    loss: LossConfig = LossConfig()
    l1: float = Field(0.0, ge=0.0)
    clip: ClipConfig | None = None
    early_stopping: EarlyStoppingConfig | None = None
    augment: list[AugmentStep] = Field(default_factory=list)  # seeded, training batches only
    # Options below are None when unset, so that recipes written before them keep their hashes.
    accumulate: int | None = Field(None, ge=1)  # micro-batches per optimizer step; 1 when not set
    checkpoint: CheckpointConfig | Literal[False] | None = None  # default every epoch where there is a folder
    device: Literal["auto", "cpu", "cuda"] | None = None  # cpu when not set; auto: cuda when there is one
    precision: Literal["fp32", "bf16", "fp16"] | None = None  # fp32 when not set
    compile: bool | None = None  # torch.compile the network (CUDA only)

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _checkpoint_switch(cls, value: Any) -> Any:
        return {} if value is True else value

    @field_validator("augment", mode="before")
    @classmethod
    def _steps_by_name(cls, value: Any) -> Any:
        return [{"name": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @field_validator("optimizer", "schedule", "loss", mode="before")
    @classmethod
    def _by_name(cls, value: Any) -> Any:
        return _shorthand(value)

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        return {} if value is True else None if value is False else value

    @model_validator(mode="after")
    def _schedule_fits(self) -> TrainConfig:
        schedule, lr = self.schedule, self.optimizer.lr
        if schedule.min_lr is not None and schedule.min_lr >= lr:
            raise ValueError(
                f"schedule.min_lr ({schedule.min_lr:g}) must be below optimizer.lr ({lr:g}), the peak rate"
            )
        return self


# ------------------------------------------------------------------------------- track and card
class TrackConfig(_Section):
    """Experiment tracking with MLflow. `track: false` turns it off."""

    enabled: bool = True
    uri: str | None = None  # default: $STRATA_TRACKING_URI, else sqlite:///strata-runs/mlflow.db
    experiment: str | None = None  # default: the recipe's name
    tags: dict[str, str] = Field(default_factory=dict)
    tensorboard: bool = False  # also write TensorBoard event files (needs the `tensorboard` extra)
    tensorboard_dir: str = "strata-runs/tensorboard"  # one sub-folder per run


class EvaluateConfig(_Section):
    """What a run measures and draws after training. `evaluate: false` turns all of it off."""

    bootstrap: int = Field(1000, ge=0)  # resamples for the test metrics' intervals; 0: none
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    plots: bool = True  # PNGs in the bundle and the tracked run
    report: bool = True  # report.html in the bundle and the tracked run


class CardConfig(_Section):
    """What the model card says beyond what Strata measures."""

    intended_use: str | None = None
    limitations: str | None = None
    owners: list[str] = Field(default_factory=list)
    slices: list[str] = Field(default_factory=list)  # columns whose levels get their own test metrics


# --------------------------------------------------------------------------------------- recipe
class Seeds(NamedTuple):
    """Independent seeds derived from the master seed, one per source of randomness."""

    data: int  # splits, batch order
    model: int  # weight initialisation
    train: int  # dropout and other training-time noise


class Recipe(_Section):
    """A whole training run. Build from YAML (`Recipe.from_yaml`), a dict, or keyword arguments."""

    name: str | None = None
    seed: int = Field(0, ge=0)
    data: DataConfig
    features: FeaturesConfig = FeaturesConfig()
    split: SplitConfig = SplitConfig()
    forecast: ForecastConfig | None = None  # forecast the target from its past (a time-series table)
    model: ModelConfig = MLPModel()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    track: TrackConfig = TrackConfig()
    card: CardConfig = CardConfig()
    tune: TuneConfig | None = None  # a hyperparameter search over this recipe (`strata tune`)

    @field_validator("track", mode="before")
    @classmethod
    def _track_switch(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value

    @field_validator("model", mode="before")
    @classmethod
    def _mlp_unless_said(cls, value: Any) -> Any:
        return {**value, "type": "mlp"} if isinstance(value, dict) and "type" not in value else value

    @field_validator("evaluate", mode="before")
    @classmethod
    def _evaluate_switch(cls, value: Any) -> Any:
        return {"bootstrap": 0, "plots": False, "report": False} if value is False else value

    def __init__(self, **sections: Any):
        # Recipe(data=..., train=...) explains its errors like from_dict. (pydantic also runs this
        # __init__ inside model_validate; _explain passes the explanation through unchanged.)
        try:
            super().__init__(**sections)
        except ValidationError as err:
            raise RecipeError(_explain(err, None)) from None

    @model_validator(mode="after")
    def _sections_agree(self) -> Recipe:
        listed = {c.name for c in self.features.columns or []}
        for name in self.data.drop:
            if name in listed:
                raise ValueError(f"column '{name}' is both in data.drop and in features.columns; keep one")
            if name in self.data.targets:
                raise ValueError(f"data.drop: '{name}' is the target")
        if getattr(self.model, "norm", None) == "batch" and self.train.batch_size < 2:
            raise ValueError("model.norm: batch norm needs train.batch_size of at least 2")
        if self.forecast is not None:
            _forecast_fits(self)
        return self

    # ---- construction
    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str | None = None) -> Recipe:
        if not isinstance(raw, dict):
            raise RecipeError(f"{source or 'recipe'}: expected a mapping of sections, got {type(raw).__name__}")
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise RecipeError(_explain(err, source)) from None

    @classmethod
    def from_saved(cls, raw: dict[str, Any], source: str) -> Recipe:
        """A recipe written into a bundle by an earlier Strata, brought up to today's schema first."""
        return cls.from_dict(_upgrade(raw), source=source)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> Recipe:
        """Read a recipe file; relative paths in it (`data.path`, `data.images`, `model.pretrained`)
        are relative to the file's folder."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise RecipeError(f"recipe file '{path}' not found") from None
        except (OSError, UnicodeDecodeError) as err:
            raise RecipeError(f"recipe file '{path}' cannot be read: {err}") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err)
            raise RecipeError(f"recipe file '{path}'{where}: not valid YAML ({problem})") from None
        if raw is None:
            raise RecipeError(f"recipe file '{path}' is empty")
        if isinstance(raw, dict):
            _paths_relative_to(raw, path.parent)
        if isinstance(raw, dict) and raw.get("name") is None:
            raw["name"] = path.stem
        recipe = cls.from_dict(raw, source=str(path))
        return recipe.override(overrides or [])

    def override(self, assignments: list[str] | dict[str, Any]) -> Recipe:
        """A new recipe with dotted keys replaced: `["train.optimizer.lr=0.003"]` or a dict.

        String values are parsed as YAML (`0.003`, `[64, 32]`, `true`); a relative `data.path`
        given here is relative to the current directory.
        """
        if not assignments:
            return self
        pairs = assignments.items() if isinstance(assignments, dict) else map(_parse_assignment, assignments)
        raw = self.to_dict()
        for key, value in pairs:
            if key == "data.path" and value is not None:
                value = str(Path(str(value)).expanduser().resolve())
            _set_path(raw, key, value)
        return Recipe.from_dict(raw, source="--set" if not isinstance(assignments, dict) else None)

    # ---- views
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def flat(self) -> dict[str, Any]:
        """Every setting under its dotted path, e.g. {'train.optimizer.lr': 0.001, ...}."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                out[prefix] = value

        walk("", self.to_dict())
        return out

    def hash(self, *, seed: bool = True) -> str:
        """Content hash of what decides the model: the normalised recipe (all defaults filled in)
        without its name, where the data comes from (the data fingerprint covers the data itself),
        evaluation, tracking and card settings; and without the seed when `seed=False`."""
        spec = self.to_dict()
        for key in ("name", "evaluate", "track", "card", "tune", *(() if seed else ("seed",))):
            spec.pop(key)
        for key in ("dataset", "path", "format"):
            spec["data"].pop(key)
        spec["train"].pop("checkpoint")  # when state is saved does not change the model
        return _digest(_set_only(spec))

    @property
    def seeds(self) -> Seeds:
        import numpy as np

        data, model, train = (int(s.generate_state(1)[0]) for s in np.random.SeedSequence(self.seed).spawn(3))
        return Seeds(data, model, train)

    @property
    def display_name(self) -> str:
        return self.name or self.data.dataset or (Path(self.data.path).stem if self.data.path else "model")


def _set_only(value: Any) -> Any:
    """`value` without the keys that are None: an option added later, unset, leaves old hashes alone."""
    if isinstance(value, dict):
        return {k: _set_only(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_set_only(v) for v in value]
    return value


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _forecast_fits(recipe: Recipe) -> None:
    """A forecast reads one numeric target's past from a table: say which settings do not apply."""
    data, cfg = recipe.data, recipe.forecast
    if len(data.targets) != 1:
        raise ValueError(f"forecast: give one target column to forecast, got {len(data.targets)}")
    if data.task not in ("auto", "regression"):
        raise ValueError(f"data.task: a forecast predicts numbers; remove task {data.task!r}")
    if data.images or data.sequences:
        extra = "images" if data.images else "sequences"
        raise ValueError(f"forecast reads a table of time steps; remove data.{extra}")
    if recipe.model.type in ("cnn", "resnet"):
        raise ValueError(f"model.type: {recipe.model.type} reads images; a forecast takes mlp, cnn1d, rnn, lstm, "
                         "gru, transformer or bag")  # fmt: skip
    if recipe.features.columns is not None:
        raise ValueError("features.columns: a forecast reads the target and forecast.covariates; remove it")
    if data.targets[0] in (cfg.time, cfg.series, *cfg.covariates):
        raise ValueError(f"forecast: the target '{data.targets[0]}' cannot also be the time, series or a covariate")


# ----------------------------------------------------------------------------------- migrations
def _paths_relative_to(raw: dict[str, Any], folder: Path) -> None:
    """Make the recipe's file paths absolute, reading relative ones from `folder` (in place)."""
    for section, key in (("data", "path"), ("data", "images"), ("model", "pretrained")):
        part = raw.get(section)
        value = part.get(key) if isinstance(part, dict) else None
        if isinstance(value, str) and value and not value.startswith("models:/"):
            given = Path(value).expanduser()
            part[key] = str(given if given.is_absolute() else (folder / given).resolve())


def _upgrade(raw: Any) -> Any:
    """Rewrite settings that older Strata versions wrote out but today's schema rejects.

    Every tightening of the schema adds a rule here, so that saved bundles keep loading
    (tests/fixtures/bundle_v1 guards it).
    """
    if not isinstance(raw, dict):
        return raw
    loss = raw.get("train", {}).get("loss")
    if isinstance(loss, dict) and loss.get("name") != "huber" and loss.get("huber_delta") == 1.0:
        loss.pop("huber_delta")  # 0.1.0 wrote the default 1.0 for every loss
    return raw


# --------------------------------------------------------------------------------------- errors
def _parse_assignment(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
        raise RecipeError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. train.optimizer.lr=0.003")
    try:
        return key, yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        return key, value


def _set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = raw
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = _shorthand(child) if isinstance(child, str) else {}
            node[part] = child
        node = child
    node[last] = value


def _members(annotation: Any) -> list[type[BaseModel]]:
    """The section models a field may hold: itself, a union's members, a list's items."""
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    candidates += [a for c in candidates for a in getattr(c, "__args__", ())]  # list[ColumnSpec], Annotated[...]
    candidates += [a for c in candidates for a in getattr(c, "__args__", ())]  # list[Annotated[A | B, ...]]
    found = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return list(dict.fromkeys(found))


def _tag(model: type[BaseModel]) -> str | None:
    """The value of a model's discriminator (`type` of a model section, `name` of an augment step)."""
    for key in ("type", "name"):
        field = model.model_fields.get(key)
        if field is not None and isinstance(field.default, str) and field.default:
            return field.default
    return None


def _walk(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[str], type[BaseModel] | None]:
    """(key path, union tags pydantic added, the section model at the end) of a pydantic location.

    pydantic puts the chosen member of a discriminated union into the location (`model.cnn.kernel`)
    and the failed members of a plain union (`data.target.list[str]`); neither is a key."""
    path: list[Any] = []
    tags: list[str] = []
    model: type[BaseModel] | None = Recipe
    choices: dict[str, type[BaseModel]] = {}
    for part in loc:
        if isinstance(part, int):
            path.append(part)
            continue
        if part in choices:  # the discriminated union's member: pick it, drop the tag
            model, choices = choices[part], {}
            continue
        if model is None or part not in model.model_fields:
            if model is None and _UNION_TAG.fullmatch(str(part)):
                tags.append(part)
            else:
                path.append(part)
                model = None
            continue
        path.append(part)
        members = _members(model.model_fields[part].annotation)
        model = members[0] if members else None
        choices = {t: m for m in members if (t := _tag(m))} if len(members) > 1 else {}
    return tuple(path), tags, model


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model at a pydantic location inside a Recipe (None past a leaf)."""
    return _walk(loc)[2]


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Names of the keys valid at `loc`."""
    model = _model_at(loc)
    return list(model.model_fields) if model else []


_UNION_TAG = re.compile(r"(str|int|float|bool|none|bytes|[a-z-]+\[.*\]|[A-Z]\w*)")


def _key_path(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[str]]:
    """Split a pydantic location into the key path and the union-member tags pydantic adds."""
    path, tags, _ = _walk(loc)
    return path, tags


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(p if isinstance(p, str) and re.fullmatch(r"[\w-]+", p) else repr(p) for p in path)


def _explain_one(error: dict[str, Any]) -> tuple[str, str]:
    """(dotted path, message) for one pydantic error."""
    loc, tags = _key_path(tuple(error["loc"]))
    path, kind, value = _dotted(loc), error["type"], error.get("input")
    if kind == "extra_forbidden":
        valid = _fields_at(tuple(error["loc"])[:-1])  # the raw location: it names a union's chosen member
        hint = did_you_mean(loc[-1], valid) or (f" (valid keys: {', '.join(valid)})" if valid else "")
        return path, f"unknown key {str(loc[-1])!r}{hint}"
    if kind == "literal_error":
        return path, one_of(value, re.findall(r"'([^']*)'", error["ctx"]["expected"]))
    if kind == "union_tag_invalid":  # model.type or augment[i].name names no member
        ctx = error["ctx"]
        key = ctx["discriminator"].strip("'")
        return _dotted((*loc, key)), one_of(ctx["tag"], re.findall(r"'([^']*)'", ctx["expected_tags"]))
    if kind == "missing" and loc and isinstance(loc[-1], int):
        return _dotted(loc[:-1]), f"too few values (item {loc[-1] + 1} is missing)"
    if kind == "missing":
        return path, "required key is missing"
    if kind == "value_error" and isinstance(error["ctx"]["error"], RecipeError):
        return "", str(error["ctx"]["error"])  # already explained by Recipe.__init__
    if kind == "value_error":
        return path, str(error["ctx"]["error"])
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return path, f"expected a mapping of keys, got {value!r}"
    if tags:
        field = (_model_at(loc[:-1]) or Recipe).model_fields.get(str(loc[-1])) if loc else None
        expected = str(field.annotation).replace("typing.", "") if field else " or ".join(tags)
        return path, f"expected {expected}, got {value!r}"
    return path, f"{error['msg'][0].lower()}{error['msg'][1:]}, got {value!r}"


def _explain(err: ValidationError, source: str | None) -> str:
    found: dict[str, list[str]] = {}
    for error in err.errors():
        path, message = _explain_one(error)
        found.setdefault(path, [])
        if message not in found[path]:
            found[path].append(message)
    # A union (e.g. a name or a list of names) fails once per member: one line per key is enough.
    lines = [f"{path}: {messages[0]}" if path else messages[0] for path, messages in found.items()]
    head = f"{source}: " if source else ""
    if len(lines) == 1:
        return head + lines[0]
    return head + f"{len(lines)} problems:\n" + "\n".join(f"  {line}" for line in lines)
