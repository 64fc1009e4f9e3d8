"""The `augment:` list of a recipe: one validated, immutable model per step, and which data each step fits.

Kept free of torch so the recipe can be checked before anything heavy is imported; the tensors are
transformed by `strata.data.augment.Augmenter`.

>>> [s.name for s in parse_steps(["flip", {"name": "noise", "std": 0.1}])]
['flip', 'noise']
>>> applies_to(parse_steps(["rotate"])[0], "signal")
False
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

DataKind = Literal["image", "signal", "table"]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Step(BaseModel):
    """Immutable, and an unknown key is an error (a typo must not silently keep the default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Flip(_Step):
    """Mirror left-right (`horizontal`; reverses time for signals) and/or top-bottom, each with probability p."""

    name: Literal["flip"] = "flip"
    horizontal: bool = True
    vertical: bool = False
    p: Probability = 0.5

    @model_validator(mode="after")
    def _some_axis(self) -> Flip:
        if not (self.horizontal or self.vertical):
            raise ValueError("flip: horizontal and vertical are both false, so it would do nothing; enable one")
        return self


class Translate(_Step):
    """Shift by a whole number of pixels (samples), up to `fraction` of each side; the edge is filled with 0."""

    name: Literal["translate"] = "translate"
    fraction: float = Field(0.1, gt=0.0, le=0.5)
    p: Probability = 1.0


class Rotate(_Step):
    """Rotate by an angle drawn uniformly from `degrees`: a number d means (-d, d), a pair is (low, high)."""

    name: Literal["rotate"] = "rotate"
    degrees: tuple[float, float] = (-15.0, 15.0)
    p: Probability = 1.0

    @field_validator("degrees", mode="before")
    @classmethod
    def _symmetric(cls, value: Any) -> Any:
        return (-abs(value), abs(value)) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("degrees")
    @classmethod
    def _in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not -180 <= low <= high <= 180:
            raise ValueError(f"degrees must satisfy -180 <= low <= high <= 180, got ({low}, {high})")
        return value


class ResizedCrop(_Step):
    """Crop a random box (area fraction from `scale`, width/height from `ratio`) and stretch it to the full size."""

    name: Literal["resized_crop"] = "resized_crop"
    scale: tuple[float, float] = (0.8, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    p: Probability = 1.0

    @field_validator("scale")
    @classmethod
    def _area(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1 (fractions of the area), got {value}")
        return value

    @field_validator("ratio")
    @classmethod
    def _aspect(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] or not math.isfinite(value[1]):
            raise ValueError(f"ratio must satisfy 0 < low <= high (width / height), got {value}")
        return value


class Jitter(_Step):
    """Add a brightness offset in (-brightness, brightness) and scale contrast around each sample's mean
    by a factor in (1 - contrast, 1 + contrast)."""

    name: Literal["jitter"] = "jitter"
    brightness: float = Field(0.2, ge=0.0)
    contrast: float = Field(0.2, ge=0.0, lt=1.0)
    p: Probability = 1.0

    @model_validator(mode="after")
    def _some_change(self) -> Jitter:
        if self.brightness == 0 and self.contrast == 0:
            raise ValueError("jitter: brightness and contrast are both 0, so it would do nothing; set one above 0")
        return self


class Noise(_Step):
    """Add Gaussian noise with standard deviation `std` (in the units of the normalised inputs)."""

    name: Literal["noise"] = "noise"
    std: float = Field(0.05, gt=0.0)
    p: Probability = 1.0


class Cutout(_Step):
    """Zero a square (a span for signals) whose side is `size` of the image side, placed inside the image."""

    name: Literal["cutout"] = "cutout"
    size: float = Field(0.25, gt=0.0, le=1.0)
    p: Probability = 0.5


class Mixup(_Step):
    """Blend each sample with another of the batch, and their targets, with weight lambda ~ Beta(alpha, alpha)."""

    name: Literal["mixup"] = "mixup"
    alpha: float = Field(0.2, gt=0.0)
    p: Probability = 1.0


AugmentStep = Annotated[
    Flip | Translate | Rotate | ResizedCrop | Jitter | Noise | Cutout | Mixup, Field(discriminator="name")
]
STEP_NAMES: tuple[str, ...] = ("flip", "translate", "rotate", "resized_crop", "jitter", "noise", "cutout", "mixup")

# Rotation and crops need two spatial axes; a table has none, so only value-level steps fit it.
_KINDS: dict[str, tuple[DataKind, ...]] = {
    "flip": ("image", "signal"),
    "translate": ("image", "signal"),
    "rotate": ("image",),
    "resized_crop": ("image",),
    "jitter": ("image", "signal"),
    "noise": ("image", "signal", "table"),
    "cutout": ("image", "signal"),
    "mixup": ("image", "signal", "table"),
}
_STEPS = TypeAdapter(list[AugmentStep])


def parse_steps(raw: list[Any]) -> list[AugmentStep]:
    """Validate an `augment:` list; a bare name (`- flip`) stands for that step with its defaults.

    Raises pydantic's ValidationError, whose locations (`0.noise.std`) the recipe turns into key paths.
    """
    return _STEPS.validate_python([{"name": item} if isinstance(item, str) else item for item in raw])


def applies_to(step: AugmentStep, kind: DataKind) -> bool:
    """Whether `step` means something for images (N, C, H, W), signals (N, C, L) or tables (N, F).

    A signal has one axis, so a vertical flip has no meaning there.
    """
    if kind == "signal" and isinstance(step, Flip) and step.vertical:
        return False
    return kind in _KINDS[step.name]


def kinds_for(step: AugmentStep) -> tuple[DataKind, ...]:
    """The data kinds `step` applies to, for error messages that say where it would fit."""
    return tuple(k for k in _KINDS[step.name] if applies_to(step, k))
