"""Networks for images and signals: a plain conv stack (`cnn`, `cnn1d`) and a small ResNet (`resnet`).

Like TabularMLP, each takes its input by name and returns raw outputs (N, out_features), so the heads,
losses and Trainer (`model(**inputs)`) serve every modality: images come as `image` (N, C, H, W) and
signals as `signal` (N, C, L), both float. Every network has the same four parts: `body` (the conv
layers), `pool` (global pooling or flatten, to N x width), `hidden` (dropout and dense layers) and
`head` (the output nn.Linear, the one layer to replace when the classes change).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from strata.models.blocks import ACTIVATIONS, dense_block, initialise
from strata.models.specs import Conv1dConfig, ConvConfig, ConvModelConfig, ResNetConfig

INPUTS: dict[str, str] = {"cnn": "image", "resnet": "image", "cnn1d": "signal"}
"""The keyword each network's forward takes, by `model.type`."""


class _Layers(NamedTuple):
    """The torch layer classes for one number of spatial dimensions."""

    conv: type[nn.Conv1d | nn.Conv2d]
    norm: type[nn.BatchNorm1d | nn.BatchNorm2d]
    pool: dict[str, type[nn.Module]]
    global_avg: type[nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d]


_LAYERS = {
    1: _Layers(nn.Conv1d, nn.BatchNorm1d, {"max": nn.MaxPool1d, "avg": nn.AvgPool1d}, nn.AdaptiveAvgPool1d),
    2: _Layers(nn.Conv2d, nn.BatchNorm2d, {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}, nn.AdaptiveAvgPool2d),
}


# --------------------------------------------------------------------------------- initialisation
def _init_conv_weight(weight: torch.Tensor, scheme: str, activation: str) -> None:
    if scheme == "kaiming":  # fan_out, as torchvision's ResNet does
        slope = 0.01 if activation == "leaky_relu" else 0.0
        nonlinearity = "leaky_relu" if slope else "relu"
        nn.init.kaiming_normal_(weight, a=slope, mode="fan_out", nonlinearity=nonlinearity)
    else:
        gain = nn.init.calculate_gain(activation) if activation in ("tanh", "sigmoid") else 1.0
        nn.init.xavier_uniform_(weight, gain=gain)


def initialise_conv(module: nn.Module, scheme: str, activation: str) -> None:
    """`initialise` extended to conv nets: convs as the linear layers (Kaiming with fan_out, or Xavier),
    batch norms at weight 1 and bias 0, and the last batch norm of each residual block at weight 0, so
    that every block starts as the identity (Goyal et al. 2017). `default` leaves PyTorch's own."""
    if scheme == "default":
        return
    if scheme == "auto":
        scheme = "xavier" if activation in ("tanh", "sigmoid") else "kaiming"
    initialise(module, scheme, activation)  # the nn.Linear layers
    for layer in module.modules():
        if isinstance(layer, nn.Conv1d | nn.Conv2d):
            _init_conv_weight(layer.weight, scheme, activation)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
    for layer in module.modules():
        if isinstance(layer, BasicBlock):
            nn.init.zeros_(layer.branch[-1].weight)


# ------------------------------------------------------------------------------------ conv stacks
def _padding(padding: str | int, kernel: int) -> str | int:
    """`valid` is none; `same` is kernel // 2 each side (torch's own, uneven `same` for an even kernel)."""
    if padding == "valid":
        return 0
    if padding == "same":
        return kernel // 2 if kernel % 2 else "same"
    return padding


def _conv_size(n: int, kernel: int, stride: int, padding: str | int) -> int:
    return n if padding == "same" else (n + 2 * padding - kernel) // stride + 1


def _describe(size: tuple[int, ...]) -> str:
    return f"image {size[0]}x{size[1]}" if len(size) == 2 else f"signal of length {size[0]}"


def _too_small(size: tuple[int, ...], stage: int, cfg: ConvConfig | Conv1dConfig) -> ValueError:
    return ValueError(
        f"input {_describe(size)} is too small for this model: it shrinks to nothing in stage {stage} of "
        f"model.channels {cfg.channels} (model.pool {cfg.pool!r}, model.kernel {cfg.kernel}, "
        f"model.stride {cfg.stride}, model.padding {cfg.padding!r}, model.blocks_per_stage {cfg.blocks_per_stage}); "
        "use fewer entries in model.channels, model.pool: none, or larger inputs"
    )


def _check_fits(size: tuple[int, ...], cfg: ConvConfig | Conv1dConfig) -> tuple[int, ...]:
    """The spatial size after the conv stages; a ValueError naming the recipe keys if it drops below 1."""
    padding = _padding(cfg.padding, cfg.kernel)
    shape = size
    for stage in range(1, len(cfg.channels) + 1):
        for block in range(cfg.blocks_per_stage):
            shape = tuple(_conv_size(n, cfg.kernel, cfg.stride if block == 0 else 1, padding) for n in shape)
            if min(shape) < 1:
                raise _too_small(size, stage, cfg)
        if cfg.pool != "none":
            shape = tuple(n // 2 for n in shape)
            if min(shape) < 1:
                raise _too_small(size, stage, cfg)
    return shape


def _conv_unit(layers: _Layers, n_in: int, n_out: int, stride: int, cfg: ConvConfig | Conv1dConfig) -> list[nn.Module]:
    """Conv -> batch norm -> activation. The conv bias is dropped when batch norm follows."""
    batch = cfg.norm == "batch"
    padding = _padding(cfg.padding, cfg.kernel)
    units: list[nn.Module] = [layers.conv(n_in, n_out, cfg.kernel, stride=stride, padding=padding, bias=not batch)]
    if batch:
        units.append(layers.norm(n_out))
    return [*units, ACTIVATIONS[cfg.activation]()]


def conv_stack(in_channels: int, cfg: ConvConfig | Conv1dConfig, dims: int) -> nn.Sequential:
    """One stage per entry of `cfg.channels`: `blocks_per_stage` conv units (only the first strides),
    then pooling by 2 unless `pool` is none."""
    layers = _LAYERS[dims]
    stages = []
    for width in cfg.channels:
        units: list[nn.Module] = []
        for block in range(cfg.blocks_per_stage):
            units += _conv_unit(layers, in_channels, width, cfg.stride if block == 0 else 1, cfg)
            in_channels = width
        if cfg.pool != "none":
            units.append(layers.pool[cfg.pool](2))
        stages.append(nn.Sequential(*units))
    return nn.Sequential(*stages)


def _dense_hidden(width: int, cfg: ConvConfig | Conv1dConfig) -> tuple[nn.Sequential, int]:
    """Dropout, then the dense blocks of `cfg.hidden`; returns them and the width they end at."""
    # Always a module at index 0 (Dropout, or Identity without dropout): the dense layers keep their
    # names whatever the dropout, so a pretrained model with another dropout still fits layer by layer.
    layers: list[nn.Module] = [nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity()]
    for size in cfg.hidden:
        layers.append(dense_block(width, size, cfg.activation, cfg.norm, cfg.dropout))
        width = size
    return nn.Sequential(*layers), width


class _ConvNet(nn.Module):
    """The conv stack for 1-D or 2-D inputs (by `len(size)`), global pooling or flatten, dense layers, output."""

    def __init__(self, in_channels: int, size: tuple[int, ...], out_features: int, cfg: ConvConfig | Conv1dConfig):
        super().__init__()
        dims = len(size)
        final = _check_fits(_positive_size(size), cfg)
        self.body = conv_stack(in_channels, cfg, dims)
        if cfg.global_pool == "avg":
            self.pool = nn.Sequential(_LAYERS[dims].global_avg(1), nn.Flatten())
            width = cfg.channels[-1]
        else:
            self.pool = nn.Sequential(nn.Flatten())
            width = cfg.channels[-1] * math.prod(final)
        self.hidden, width = _dense_hidden(width, cfg)
        self.head = nn.Linear(width, out_features)
        initialise_conv(self.body, cfg.init, cfg.activation)
        initialise_conv(self.hidden, cfg.init, cfg.activation)
        initialise(self.head, "xavier" if cfg.init != "default" else "default", "linear")

    def _outputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.pool(self.body(x))))  # (N, out_features)


class ImageCNN(_ConvNet):
    """`cnn`: input `image` (N, C, H, W) of `in_channels` x `image_size`."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], out_features: int, cfg: ConvConfig):
        super().__init__(in_channels, tuple(image_size), out_features, cfg)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self._outputs(image)


class SignalCNN(_ConvNet):
    """`cnn1d`: input `signal` (N, C, L) of `in_channels` x `length`."""

    def __init__(self, in_channels: int, length: int, out_features: int, cfg: Conv1dConfig):
        super().__init__(in_channels, (length,), out_features, cfg)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return self._outputs(signal)


# ----------------------------------------------------------------------------------------- resnet
def _conv3x3(n_in: int, n_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """`branch` (3x3 conv -> BN -> activation -> 3x3 conv -> BN) added to `shortcut`, then the activation.

    The shortcut is the identity, or a strided 1x1 conv and BN where the size or width changes (He et al. 2016).
    """

    def __init__(self, n_in: int, n_out: int, stride: int, activation: str):
        super().__init__()
        self.branch = nn.Sequential(
            _conv3x3(n_in, n_out, stride),
            nn.BatchNorm2d(n_out),
            ACTIVATIONS[activation](),
            _conv3x3(n_out, n_out),
            nn.BatchNorm2d(n_out),
        )
        same = stride == 1 and n_in == n_out
        self.shortcut = (
            nn.Identity()
            if same
            else nn.Sequential(nn.Conv2d(n_in, n_out, 1, stride=stride, bias=False), nn.BatchNorm2d(n_out))
        )
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


def _stem(in_channels: int, width: int, kind: str, activation: str) -> nn.Sequential:
    """small: a 3x3 conv at full size; large: a 7x7 stride-2 conv and a 3x3 stride-2 max pool (a quarter)."""
    if kind == "small":
        return nn.Sequential(_conv3x3(in_channels, width), nn.BatchNorm2d(width), ACTIVATIONS[activation]())
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(width),
        ACTIVATIONS[activation](),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def _stage(n_in: int, n_out: int, blocks: int, stride: int, activation: str) -> nn.Sequential:
    return nn.Sequential(
        *(BasicBlock(n_in if i == 0 else n_out, n_out, stride if i == 0 else 1, activation) for i in range(blocks))
    )


class ResNet(nn.Module):
    """`resnet`: input `image` (N, C, H, W). A stem, one stage of basic blocks per width (each stage
    after the first halves the size), global average pooling, dropout, output layer. Padded convs
    never shrink an image below 1x1, so any size works; 28-64 px is what it is made for."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], out_features: int, cfg: ResNetConfig):
        super().__init__()
        _positive_size(tuple(image_size))
        widths = cfg.widths
        stages = [
            _stage(widths[max(i - 1, 0)], width, cfg.blocks, 2 if i else 1, cfg.activation)
            for i, width in enumerate(widths)
        ]
        self.body = nn.Sequential(_stem(in_channels, widths[0], cfg.stem, cfg.activation), *stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.hidden = nn.Sequential(nn.Dropout(cfg.dropout)) if cfg.dropout else nn.Sequential()
        self.head = nn.Linear(widths[-1], out_features)
        initialise_conv(self.body, cfg.init, cfg.activation)
        initialise(self.head, "xavier" if cfg.init != "default" else "default", "linear")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.pool(self.body(image))))  # (N, out_features)


# ---------------------------------------------------------------------------------------- builder
def _positive_size(size: tuple[int, ...]) -> tuple[int, ...]:
    if not size or any(n < 1 for n in size):
        raise ValueError(f"input sizes must be positive, got {size}")
    return size


def build_conv(cfg: ConvModelConfig, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
    """The network for `cfg.type`: `input_shape` is (channels, height, width) for `cnn` and `resnet`,
    (channels, length) for `cnn1d`. Initialised from the global RNG; seed it (or fork it) first."""
    expected = 2 if cfg.type == "cnn1d" else 3
    if len(input_shape) != expected:
        layout = "(channels, length)" if expected == 2 else "(channels, height, width)"
        raise ValueError(f"model.type {cfg.type!r} takes inputs of shape {layout}, got {tuple(input_shape)}")
    channels, *size = input_shape
    if cfg.type == "cnn1d":
        return SignalCNN(channels, size[0], out_features, cfg)
    network = ImageCNN if cfg.type == "cnn" else ResNet
    return network(channels, (size[0], size[1]), out_features, cfg)


class SignalFromColumns(nn.Module):
    """A 1-D network over a table's numeric columns, read as one signal in column order:
    `numeric` (N, L) becomes `signal` (N, 1, L)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, numeric: torch.Tensor) -> torch.Tensor:
        return self.network(signal=numeric.unsqueeze(1))
