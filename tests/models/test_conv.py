"""Image and signal networks: shapes, recipe checks, residual blocks, initialisation, and that they learn."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from strata.models.blocks import count_parameters
from strata.models.conv import INPUTS, BasicBlock, ImageCNN, ResNet, SignalCNN, build_conv
from strata.models.specs import Conv1dConfig, ConvConfig, ResNetConfig


def outputs(model: nn.Module, cfg, shape: tuple[int, ...], n: int = 5) -> torch.Tensor:
    """Run `n` random rows through the network, by the input name its type takes."""
    return model(**{INPUTS[cfg.type]: torch.randn(n, *shape)})


# ------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize(
    ("cfg", "shape"),
    [
        (ConvConfig(), (1, 28, 28)),
        (ConvConfig(), (3, 32, 32)),
        (ConvConfig(channels=[8, 16], global_pool="flatten", hidden=[32], dropout=0.2), (3, 32, 32)),
        (ConvConfig(channels=[4], pool="avg", padding="valid", blocks_per_stage=2), (1, 8, 8)),
        (ConvConfig(channels=[4, 8], stride=2, padding=1, pool="none", norm="none", activation="tanh"), (3, 28, 28)),
        pytest.param(
            ConvConfig(channels=[4, 8], kernel=4, global_pool="flatten"),  # an even kernel, 'same': padded unevenly
            (1, 28, 28),
            marks=pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning"),
        ),
        (ConvConfig(channels=[4, 8, 8], pool="none", global_pool="flatten"), (1, 8, 8)),
        (ResNetConfig(), (1, 28, 28)),
        (ResNetConfig(widths=[8], blocks=1), (1, 8, 8)),
        (ResNetConfig(widths=[8, 16], blocks=1, stem="large", dropout=0.1, activation="gelu"), (3, 32, 32)),
        (ResNetConfig(widths=[4, 8, 16, 32]), (3, 8, 8)),  # padded convs never shrink below 1x1
        (Conv1dConfig(), (1, 40)),
        (Conv1dConfig(channels=[4, 8, 8], global_pool="flatten", hidden=[16], pool="avg"), (3, 40)),
        (Conv1dConfig(channels=[8], kernel=4, padding="valid", stride=2), (2, 40)),
    ],
)
@pytest.mark.parametrize("out_features", [1, 7])
def test_outputs_are_n_by_out_features(cfg, shape, out_features):
    model = build_conv(cfg, shape, out_features)
    assert outputs(model, cfg, shape).shape == (5, out_features)
    model.eval()  # and in eval mode, one row at a time (batch norm then uses its running statistics)
    assert outputs(model, cfg, shape, n=1).shape == (1, out_features)


def test_build_dispatches_on_type_and_forward_takes_the_named_input():
    kinds = {"cnn": (ConvConfig(), (1, 28, 28), ImageCNN), "resnet": (ResNetConfig(), (1, 28, 28), ResNet)}
    kinds["cnn1d"] = (Conv1dConfig(), (1, 40), SignalCNN)
    for kind, (cfg, shape, network) in kinds.items():
        model = build_conv(cfg, shape, 3)
        assert type(model) is network
        assert list(inspect.signature(model.forward).parameters) == [INPUTS[kind]]
        assert isinstance(model.head, nn.Linear) and model.head.out_features == 3


def test_build_rejects_an_input_shape_of_the_wrong_rank():
    with pytest.raises(ValueError, match=r"'cnn' takes inputs of shape \(channels, height, width\), got \(1, 40\)"):
        build_conv(ConvConfig(), (1, 40), 2)
    with pytest.raises(ValueError, match=r"'cnn1d' takes inputs of shape \(channels, length\), got \(1, 8, 8\)"):
        build_conv(Conv1dConfig(), (1, 8, 8), 2)
    with pytest.raises(ValueError, match="input sizes must be positive"):
        build_conv(ResNetConfig(), (1, 0, 8), 2)


# -------------------------------------------------------------------------------- too small inputs
def test_too_many_pooling_stages_for_the_image_is_a_clear_error():
    cfg = ConvConfig(channels=[8, 8, 8, 8])  # 8 -> 4 -> 2 -> 1 -> 0
    with pytest.raises(ValueError) as caught:
        ImageCNN(1, (8, 8), 10, cfg)
    message = str(caught.value)
    assert "image 8x8 is too small" in message
    assert "stage 4 of model.channels [8, 8, 8, 8]" in message
    assert "model.pool 'max'" in message
    ImageCNN(1, (8, 8), 10, cfg.model_copy(update={"channels": [8, 8, 8]}))  # one stage fewer fits
    ImageCNN(1, (8, 8), 10, cfg.model_copy(update={"pool": "none"}))  # and so does no pooling


def test_a_signal_shorter_than_the_valid_kernel_is_a_clear_error():
    with pytest.raises(ValueError, match=r"signal of length 4 is too small .* stage 1 of model.channels \[8\]"):
        SignalCNN(1, 4, 2, Conv1dConfig(channels=[8], padding="valid", pool="none"))


@pytest.mark.parametrize("global_pool", ["avg", "flatten"])
def test_flatten_width_matches_a_dry_run(global_pool):
    cfg = ConvConfig(channels=[4, 6], kernel=5, padding="valid", global_pool=global_pool, blocks_per_stage=2)
    model = ImageCNN(2, (40, 36), 3, cfg)  # 40x36 -> 32x28 -> 16x14 -> 8x6 -> 4x3
    with torch.no_grad():
        width = model.pool(model.body(torch.zeros(2, 2, 40, 36))).shape[1]
    assert model.head.in_features == width


# ------------------------------------------------------------------------------------------ sizes
def test_parameter_counts_grow_with_width_depth_and_flatten():
    def count(shape, cfg):
        return count_parameters(build_conv(cfg, shape, 10))

    assert count((1, 28, 28), ConvConfig(channels=[8, 16])) < count((1, 28, 28), ConvConfig())
    assert count((1, 28, 28), ConvConfig()) < count((1, 28, 28), ConvConfig(global_pool="flatten"))
    assert count((1, 40), Conv1dConfig(channels=[8])) < count((1, 40), Conv1dConfig())
    small, wide = ResNetConfig(widths=[8, 16]), ResNetConfig(widths=[16, 32])
    assert count((1, 28, 28), small) < count((1, 28, 28), wide)
    assert count((1, 28, 28), ResNetConfig(blocks=1)) < count((1, 28, 28), ResNetConfig())
    # a 3x3 conv has in * out * 9 weights: a one-stage, bias-free, batch-norm network is easy to count
    cfg = ConvConfig(channels=[4])
    assert count((3, 8, 8), cfg) == 3 * 4 * 9 + 2 * 4 + (4 * 10 + 10)


# --------------------------------------------------------------------------------------- resnet
def test_resnet_blocks_start_as_the_identity():
    model = ResNet(1, (28, 28), 10, ResNetConfig(widths=[8, 16], blocks=2))
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 4
    assert all(torch.all(b.branch[-1].weight == 0) for b in blocks)
    same_width = blocks[1]  # stride 1, 8 -> 8: the shortcut is the identity
    assert isinstance(same_width.shortcut, nn.Identity)
    x = torch.rand(4, 8, 14, 14)  # non-negative, as after the ReLU before it
    torch.testing.assert_close(same_width(x), x)
    downsample = blocks[2]  # stride 2, 8 -> 16: a 1x1 conv shortcut
    assert isinstance(downsample.shortcut, nn.Sequential)
    assert downsample(x).shape == (4, 16, 7, 7)


def test_resnet_block_adds_the_branch_to_the_input():
    block = BasicBlock(8, 8, 1, "relu")
    nn.init.normal_(block.branch[-1].weight)  # switch the branch on
    block.eval()
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(block(x), torch.relu(x + block.branch(x)))
    assert not torch.allclose(block(x), torch.relu(block.branch(x)))


# ----------------------------------------------------------------------------------- initialisation
def test_convs_start_with_kaiming_fan_out_and_batch_norms_at_one_and_zero():
    torch.manual_seed(0)
    model = ImageCNN(16, (8, 8), 2, ConvConfig(channels=[64], kernel=3))
    conv, norm = model.body[0][0], model.body[0][1]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


def test_xavier_for_tanh_and_pytorch_default_left_alone():
    torch.manual_seed(0)
    tanh = ImageCNN(16, (8, 8), 2, ConvConfig(channels=[64], activation="tanh", norm="none"))
    conv = tanh.body[0][0]
    bound = nn.init.calculate_gain("tanh") * math.sqrt(6 / (16 * 9 + 64 * 9))
    assert conv.weight.abs().max().item() <= bound and conv.weight.abs().max().item() > 0.9 * bound
    assert torch.all(conv.bias == 0)
    plain = ResNet(1, (8, 8), 2, ResNetConfig(widths=[8], init="default"))
    block = next(m for m in plain.modules() if isinstance(m, BasicBlock))
    assert torch.all(block.branch[-1].weight == 1)  # no zero-init of the residual branch either


@pytest.mark.parametrize(
    ("cfg", "shape"), [(ConvConfig(hidden=[8]), (1, 28, 28)), (ResNetConfig(), (3, 32, 32)), (Conv1dConfig(), (2, 40))]
)
def test_construction_is_deterministic_under_a_seed(cfg, shape):
    def weights(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return list(build_conv(cfg, shape, 4).state_dict().values())

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


# ------------------------------------------------------------------------------------------ recipe
@pytest.mark.parametrize(
    ("spec", "fields", "message"),
    [
        (ConvConfig, {"channels": []}, "give at least one channel count"),
        (ConvConfig, {"channels": [8, 0]}, r"channel counts must be positive integers, got \[8, 0\]"),
        (ConvConfig, {"hidden": [16, -1]}, r"layer sizes must be positive integers, got \[16, -1\]"),
        (
            ConvConfig,
            {"stride": 2},
            r"padding 'same' needs stride 1, got stride 2; use padding 'valid' or a number \(e.g. 1\)",
        ),
        (ConvConfig, {"kernel": 0}, "greater than or equal to 1"),
        (ConvConfig, {"padding": -1}, "greater than or equal to 0"),
        (ConvConfig, {"padding": "full"}, "'same' or 'valid'"),
        (ConvConfig, {"pool": "min"}, "'max', 'avg' or 'none'"),
        (ConvConfig, {"dropout": 1.0}, "less than 1"),
        (ConvConfig, {"blocks_per_stage": 0}, "greater than or equal to 1"),
        (ConvConfig, {"activation": "swish"}, "'relu', 'leaky_relu', 'elu', 'gelu', 'tanh' or 'sigmoid'"),
        (ConvConfig, {"filters": [8]}, "Extra inputs are not permitted"),
        (ConvConfig, {"type": "resnet"}, "Input should be 'cnn'"),
        (Conv1dConfig, {"channels": []}, "give at least one channel count"),
        (Conv1dConfig, {"stride": 3, "kernel": 7}, r"got stride 3; use padding 'valid' or a number \(e.g. 3\)"),
        (ResNetConfig, {"widths": []}, "give at least one width"),
        (ResNetConfig, {"widths": [16, 0]}, r"widths must be positive integers, got \[16, 0\]"),
        (ResNetConfig, {"blocks": 0}, "greater than or equal to 1"),
        (ResNetConfig, {"stem": "huge"}, "'small' or 'large'"),
        (ResNetConfig, {"channels": [8]}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors_are_clear(spec, fields, message):
    with pytest.raises(ValidationError, match=message):
        spec(**fields)


def test_config_defaults_and_immutability():
    assert ConvConfig().channels == [32, 64] and ConvConfig().kernel == 3
    assert Conv1dConfig().channels == [32, 64] and Conv1dConfig().kernel == 5
    assert ResNetConfig().widths == [16, 32, 64] and ResNetConfig().blocks == 2
    ConvConfig(stride=2, padding="valid")  # stride is fine without 'same'
    with pytest.raises(ValidationError, match="frozen"):
        ConvConfig().kernel = 5  # type: ignore[misc]


def test_specs_import_without_torch():
    code = "import sys, strata.models.specs; assert 'torch' not in sys.modules, 'torch was imported'"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---------------------------------------------------------------------------------------- learning
def fit(model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float = 3e-3) -> None:
    """Plain Adam on cross-entropy, shuffled mini-batches of 32."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(x), generator=gen).split(32):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(**{name: x[rows]}), y[rows]).backward()
            optimiser.step()


def accuracy(model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(**{name: x}).argmax(1) == y).float().mean().item()


def test_image_cnn_learns_digits():
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.tensor(digits.target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    torch.manual_seed(0)
    model = build_conv(ConvConfig(channels=[16, 32]), (1, 8, 8), 10)
    fit(model, "image", x_train, y_train, epochs=10)
    assert accuracy(model, "image", x_test, y_test) > 0.9


def waves(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sine (class 0) or square (class 1) waves of random frequency and phase, in noise of sd 0.3."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    t = np.arange(length) / length
    phase = 2 * np.pi * (rng.uniform(1, 4, (n, 1)) * t + rng.uniform(0, 1, (n, 1)))
    signal = np.where(label[:, None] == 0, np.sin(phase), np.sign(np.sin(phase)))
    signal = signal + rng.normal(0, 0.3, (n, length))
    return torch.tensor(signal, dtype=torch.float32).unsqueeze(1), torch.tensor(label)


def test_signal_cnn_learns_sine_from_square():
    x_train, y_train = waves(600, 64, seed=0)
    x_test, y_test = waves(300, 64, seed=1)
    torch.manual_seed(0)
    model = build_conv(Conv1dConfig(channels=[8, 16]), (1, 64), 2)
    fit(model, "signal", x_train, y_train, epochs=5)
    assert accuracy(model, "signal", x_test, y_test) > 0.9
