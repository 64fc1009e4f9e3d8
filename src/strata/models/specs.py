"""Recipe sections for the image and signal networks: `cnn`, `resnet` and `cnn1d`.

Plain pydantic models without torch, so the recipe can import them cheaply; the networks they
describe live in `strata.models.conv`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The same choices as strata.recipe.Activation, repeated here so this module imports nothing of strata.
Activation = Literal["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"]
Init = Literal["auto", "kaiming", "xavier", "default"]


class _Spec(BaseModel):
    """Immutable, and an unknown key is an error (never silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _positive_sizes(sizes: list[int], what: str, allow_empty: bool = False) -> list[int]:
    if not sizes and not allow_empty:
        raise ValueError(f"give at least one {what}")
    if any(s < 1 for s in sizes):
        raise ValueError(f"{what}s must be positive integers, got {sizes}")
    return sizes


class _ConvStackConfig(_Spec):
    """What `cnn` and `cnn1d` share: stages of conv -> norm -> activation, each followed by pooling by 2."""

    channels: list[int] = Field(default_factory=lambda: [32, 64])  # one stage per entry
    kernel: int = Field(3, ge=1)
    stride: int = Field(1, ge=1)
    padding: Literal["same", "valid"] | Annotated[int, Field(ge=0)] = "same"
    norm: Literal["none", "batch"] = "batch"
    activation: Activation = "relu"
    pool: Literal["max", "avg", "none"] = "max"  # window 2, stride 2, after each stage
    blocks_per_stage: int = Field(1, ge=1)  # convs per stage; only the first one strides
    global_pool: Literal["avg", "flatten"] = "avg"
    hidden: list[int] = Field(default_factory=list)  # dense layers between the conv stack and the output
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # before the dense head, and after each hidden layer
    init: Init = "auto"

    @field_validator("channels")
    @classmethod
    def _channels(cls, channels: list[int]) -> list[int]:
        return _positive_sizes(channels, "channel count")

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, hidden: list[int]) -> list[int]:
        return _positive_sizes(hidden, "layer size", allow_empty=True)

    @model_validator(mode="after")
    def _same_needs_stride_one(self) -> _ConvStackConfig:
        if self.padding == "same" and self.stride > 1:
            raise ValueError(
                f"padding 'same' needs stride 1, got stride {self.stride}; "
                f"use padding 'valid' or a number (e.g. {self.kernel // 2})"
            )
        return self


class ConvConfig(_ConvStackConfig):
    """`cnn`: a stack of 2-D conv stages for images, then global pooling (or flatten) and a dense head."""

    type: Literal["cnn"] = "cnn"


class Conv1dConfig(_ConvStackConfig):
    """`cnn1d`: the same stack with 1-D convolutions, for signals and fixed-length sequences."""

    type: Literal["cnn1d"] = "cnn1d"
    kernel: int = Field(5, ge=1)


class ResNetConfig(_Spec):
    """`resnet`: a small ResNet of basic blocks for 28-64 px images."""

    type: Literal["resnet"] = "resnet"
    widths: list[int] = Field(default_factory=lambda: [16, 32, 64])  # one stage per width, stride 2 between stages
    blocks: int = Field(2, ge=1)  # basic blocks per stage
    stem: Literal["small", "large"] = "small"  # small: 3x3 conv; large: 7x7 stride 2 conv and a 3x3 max pool
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # before the output layer
    init: Init = "auto"

    @field_validator("widths")
    @classmethod
    def _widths(cls, widths: list[int]) -> list[int]:
        return _positive_sizes(widths, "width")


ConvModelConfig = ConvConfig | ResNetConfig | Conv1dConfig
"""Any of the three; in a recipe, `Annotated[ConvModelConfig, Field(discriminator="type")]` picks by `type`."""
