"""The `tune:` section of a recipe: which dotted keys to search, over which values, and how.

Kept free of Optuna and torch so the recipe can be checked before anything heavy is imported;
`strata.tuning.study` runs the search.

>>> cfg = TuneConfig.from_dict({"space": {"train.optimizer.lr": {"loguniform": [1e-4, 1e-1]},
...                                      "model.hidden": [[64], [128, 64]]}})
>>> cfg.space["model.hidden"].kind, cfg.trial_count
('choice', 20)
>>> grid({"model.hidden": cfg.space["model.hidden"], "train.batch_size": Param(int=(16, 32), step=16)})
[{'model.hidden': [64], 'train.batch_size': 16}, {'model.hidden': [64], 'train.batch_size': 32}, \
{'model.hidden': [128, 64], 'train.batch_size': 16}, {'model.hidden': [128, 64], 'train.batch_size': 32}]
>>> direction("val_mae", "auto"), direction("val_accuracy", "auto")
('minimize', 'maximize')
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from strata.errors import RecipeError, did_you_mean

if TYPE_CHECKING:
    from strata.recipe import Recipe

KINDS = ("loguniform", "uniform", "int", "choice")
MAX_GRID_INTS = 100  # an int range longer than this is not a sensible grid axis
DEFAULT_TRIALS = 20
# Metric names (split on '_') that are better when lower; every other metric is maximised.
_LOWER_IS_BETTER = {"loss", "mae", "mse", "rmse", "mape", "smape", "mase", "wape", "error", "nll", "brier", "ece"}


class _Spec(BaseModel):
    """Immutable, and an unknown key is an error (a typo must not silently keep the default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Param(_Spec):
    """One searched key: exactly one of `loguniform`, `uniform`, `int` (with `log`, `step`) or `choice`.

    A bare list stands for a choice: `model.hidden: [[64], [128, 64]]`.
    """

    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    integer: tuple[int, int] | None = Field(None, alias="int")
    choice: list[Any] | None = None
    log: bool | None = None  # int ranges only: sample on a log scale
    step: int | None = Field(None, ge=1)  # int ranges only

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, raw: Any) -> Any:
        if isinstance(raw, list):
            return {"choice": raw}
        if not isinstance(raw, dict):
            raise ValueError(f"expected a mapping such as {{uniform: [0.0, 0.5]}} or a list of choices, got {raw!r}")
        raw = {k: v for k, v in raw.items() if v is not None}  # a dumped recipe writes the unset kinds as None
        allowed = (*KINDS, "integer", "log", "step")
        for key in raw:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f" (give one of {', '.join(KINDS)})"
                raise ValueError(f"unknown key {key!r}{hint}")
        kinds = [k for k in (*KINDS, "integer") if k in raw]
        if len(kinds) != 1:
            found = f"got {', '.join(kinds)}" if kinds else "got none"
            raise ValueError(f"give exactly one of {', '.join(KINDS)}; {found}")
        return raw

    @field_validator("choice")
    @classmethod
    def _some_choices(cls, values: list[Any] | None) -> list[Any] | None:
        if values is None:
            return values
        if not values:
            raise ValueError("the choice list is empty; give at least one value")
        codes = [encode(v) for v in values]
        repeated = [values[i] for i, c in enumerate(codes) if c in codes[:i]]
        if repeated:
            raise ValueError(f"choice {repeated[0]!r} is listed more than once")
        return values

    @model_validator(mode="after")
    def _bounds(self) -> Param:
        kind = self.kind
        if self.log is not None and kind != "int":
            use = "use loguniform for a float on a log scale" if kind == "uniform" else "remove it"
            raise ValueError(f"log applies to int ranges, not {kind}; {use}")
        if self.step is not None and kind != "int":
            raise ValueError(f"step applies to int ranges, not {kind}; remove it")
        if kind == "choice":
            return self
        low, high = self.bounds
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"bounds must be finite numbers, got [{low}, {high}]")
        if low >= high:
            raise ValueError(f"low {low:g} must be below high {high:g}")
        if kind == "loguniform" and low <= 0:
            raise ValueError(f"loguniform needs low > 0 (a log scale has no 0), got {low:g}; try low 1e-6")
        if kind == "int":
            self._int_range_fits(int(low), int(high))
        return self

    def _int_range_fits(self, low: int, high: int) -> None:
        step = self.step or 1
        if self.log and step != 1:
            raise ValueError("an int range takes log or step, not both")
        if self.log and low < 1:
            raise ValueError(f"log needs low >= 1, got {low}")
        if (high - low) % step:
            end = high - (high - low) % step
            raise ValueError(f"int range [{low}, {high}] with step {step} does not end on a step; "
                             f"use high {end} or {end + step}")  # fmt: skip

    @property
    def kind(self) -> Literal["loguniform", "uniform", "int", "choice"]:
        if self.loguniform is not None:
            return "loguniform"
        if self.uniform is not None:
            return "uniform"
        return "int" if self.integer is not None else "choice"

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of a range; a choice has none."""
        pair = self.loguniform or self.uniform or self.integer
        if pair is None:
            raise ValueError("a choice has no bounds")
        return pair

    def values(self) -> list[Any]:
        """Every value of a choice or an int range (in order); a float range has too many."""
        if self.choice is not None:
            return list(self.choice)
        if self.integer is not None:
            low, high = self.integer
            return list(range(low, high + 1, self.step or 1))
        raise ValueError(f"a {self.kind} range has no finite list of values")

    def extremes(self) -> list[Any]:
        """The values that decide whether the key accepts the whole space: every choice, or low and high."""
        return self.values() if self.choice is not None else list(self.bounds)

    def is_discrete(self) -> bool:
        """Whether grid search can visit it: a choice, or an int range of at most MAX_GRID_INTS values."""
        return self.choice is not None or (self.integer is not None and len(self.values()) <= MAX_GRID_INTS)


Space = dict[str, Param]


class TuneConfig(_Spec):
    """How to search: the space of dotted recipe keys, the strategy, the budget and the metric."""

    space: Space
    strategy: Literal["grid", "random", "tpe"] = "tpe"
    trials: int | None = Field(None, ge=1)  # default: every combination for grid, else 20
    timeout: float | None = Field(None, gt=0)  # seconds for the whole study
    metric: str = "val_loss"  # a per-epoch validation metric the run logs
    direction: Literal["auto", "minimize", "maximize"] = "auto"  # auto: minimize losses and errors
    pruner: Literal["none", "median", "hyperband"] = "none"
    seed: int | None = Field(None, ge=0)  # the sampler's seed; default: the recipe's seed
    cv: int | None = Field(None, ge=2)  # folds per trial; default: one train/validation split

    @field_validator("space")
    @classmethod
    def _some_keys(cls, space: Space) -> Space:
        if not space:
            raise ValueError("give at least one key to search, e.g. train.optimizer.lr: {loguniform: [1.0e-4, 0.1]}")
        bad = [k for k in space if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", k)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a dotted recipe key such as train.optimizer.lr")
        return space

    @field_validator("metric")
    @classmethod
    def _named(cls, metric: str) -> str:
        if not metric.strip():
            raise ValueError("name the metric to optimise, e.g. val_loss or val_accuracy")
        return metric

    @model_validator(mode="after")
    def _grid_fits(self) -> TuneConfig:
        if self.strategy != "grid":
            return self
        for key, param in self.space.items():
            if not param.is_discrete():
                what = param.kind if param.kind != "int" else f"an int range of {len(param.values())} values"
                raise ValueError(f"strategy: grid needs every parameter as a choice list (or an int range of at "
                                 f"most {MAX_GRID_INTS} values); {key!r} is {what}")  # fmt: skip
        size = grid_size(self.space)
        if self.trials is not None and self.trials > size:
            raise ValueError(f"trials: {self.trials} is more than the {size} grid combinations; "
                             "remove trials to run each once")  # fmt: skip
        return self

    @classmethod
    def from_dict(cls, raw: Any) -> TuneConfig:
        """Validate a `tune:` mapping; errors read `tune.space.'model.dropout': ...` like the recipe's."""
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            lines = [_explain(e) for e in err.errors()]
            text = lines[0] if len(lines) == 1 else f"{len(lines)} problems:\n" + "\n".join(f"  {x}" for x in lines)
            raise RecipeError(text) from None

    @property
    def trial_count(self) -> int:
        """Trials to finish: `trials`, else every grid combination, else 20."""
        if self.trials is not None:
            return self.trials
        return grid_size(self.space) if self.strategy == "grid" else DEFAULT_TRIALS

    @property
    def goal(self) -> Literal["minimize", "maximize"]:
        return direction(self.metric, self.direction)


def _explain(error: Any) -> str:
    loc = ["tune", *error["loc"]]
    path = ".".join(str(p) if re.fullmatch(r"\w+", str(p)) else repr(p) for p in loc)
    if error["type"] == "value_error":
        return f"{path}: {error['ctx']['error']}"
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key {loc[-1]!r}"
    return f"{path}: {error['msg'][0].lower()}{error['msg'][1:]}, got {error.get('input')!r}"


# -------------------------------------------------------------------------------- space helpers
def encode(value: Any) -> str:
    """A choice as the string Optuna stores (so lists and mappings can be choices); `decode` reverses it."""
    return json.dumps(value, sort_keys=True)


def decode(text: str) -> Any:
    return json.loads(text)


def direction(metric: str, direction: str = "auto") -> Literal["minimize", "maximize"]:
    """`minimize` for losses and errors (val_loss, val_mae, val_rmse, ...), `maximize` for the rest."""
    if direction in ("minimize", "maximize"):
        return direction  # type: ignore[return-value]
    if direction != "auto":
        raise ValueError(f"direction: {direction!r} is not one of auto, minimize, maximize")
    return "minimize" if _LOWER_IS_BETTER & set(metric.lower().split("_")) else "maximize"


def grid_size(space: Space) -> int:
    return math.prod(len(p.values()) for p in space.values())


def grid(space: Space) -> list[dict[str, Any]]:
    """Every combination of the (discrete) space, as {dotted key: value}, the last key varying fastest."""
    keys = list(space)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(space[k].values() for k in keys))]


def suggest(trial: Any, space: Space) -> dict[str, Any]:
    """Ask an Optuna trial for one value per key: {dotted key: recipe value}."""
    out: dict[str, Any] = {}
    for key, param in space.items():
        if param.kind == "choice":
            out[key] = decode(trial.suggest_categorical(key, [encode(v) for v in param.values()]))
        elif param.kind == "int":
            low, high = param.integer  # type: ignore[misc]
            out[key] = trial.suggest_int(key, low, high, step=param.step or 1, log=bool(param.log))
        else:
            low, high = param.bounds
            out[key] = trial.suggest_float(key, low, high, log=param.kind == "loguniform")
    return out


def check_space(space: Space, recipe: Recipe) -> None:
    """Raise RecipeError unless the recipe accepts every key at its extremes (each choice, low and high).

    Run it before the first trial, so a typo (`model.hiddn`) fails in a second, not after an hour.
    """
    known = list(recipe.flat())
    for key, param in space.items():
        for value in param.extremes():
            try:
                recipe.override({key: value})
            except RecipeError as err:
                if "unknown key" in str(err):
                    raise RecipeError(f"tune.space: {key!r} is not a recipe key{did_you_mean(key, known)}") from None
                raise RecipeError(f"tune.space: {key!r} cannot be {value!r}: {err}") from None
