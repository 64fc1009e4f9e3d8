"""Gradient accumulation, and the GPU options with their CPU fallbacks (train.device, precision,
compile): each option does what it says, or says in one line why it cannot here."""

from __future__ import annotations

import warnings

import pytest
import torch

import strata
from strata.data.batches import TensorSet
from strata.recipe import Recipe, TrainConfig
from strata.training.trainer import Trainer

SEEDS = Recipe.from_dict({"data": {"target": "y"}}).seeds
CUDA = torch.cuda.is_available()


def data(n: int) -> TensorSet:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=g)
    return TensorSet({"x": x}, (x[:, :1] * 2 - x[:, 1:2] + 0.1 * torch.randn(n, 1, generator=g)))


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        self.seen: torch.dtype | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        self.seen = out.dtype  # what autocast made of the layer
        return out


def fit(n: int = 230, **train: object) -> tuple[dict[str, torch.Tensor], Trainer]:
    cfg = TrainConfig(epochs=3, optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9}, schedule="cosine", **train)
    trainer = Trainer(MLP(), torch.nn.MSELoss(), cfg, SEEDS)
    trainer.fit(data(n))
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}, trainer


# ---------------------------------------------------------------------------- accumulation
def test_accumulating_two_batches_of_32_is_one_batch_of_64():
    """230 rows: steps of 64, 64, 64 and an uneven 38 (micro-batches 32+32 ... 32+6); the cosine
    schedule must step once per optimizer step for the rates to agree."""
    big, _ = fit(batch_size=64)
    accumulated, trainer = fit(batch_size=32, accumulate=2)
    assert all(torch.allclose(big[k], accumulated[k], atol=1e-6, rtol=0) for k in big)
    assert trainer.scheduler.last_epoch == 3 * 4  # optimizer steps, not micro-batches
    small, _ = fit(batch_size=32)
    assert not all(torch.allclose(big[k], small[k], atol=1e-4) for k in big)  # the test can tell them apart


def test_accumulate_is_a_recipe_key_and_trains(mixed_frame):
    from tests.conftest import tiny_recipe

    result = strata.train(tiny_recipe(train={"epochs": 4, "batch_size": 16, "accumulate": 3}), data=mixed_frame,
                          quiet=True)  # fmt: skip
    assert len(result.history) == 4
    with pytest.raises(strata.RecipeError, match=r"train\.accumulate: input should be greater than or equal to 1"):
        Recipe.from_dict(tiny_recipe(train={"accumulate": 0}))


def test_new_keys_unset_leave_recipe_hashes_alone():
    base = Recipe.from_dict({"data": {"target": "y"}})
    # the hash of this recipe before train.accumulate/device/precision/compile/checkpoint existed
    assert base.hash() == "4f87787fd585dcaf"
    assert base.override({"train.checkpoint": {"every": 5}}).hash() == base.hash()
    assert base.override({"train.accumulate": 2}).hash() != base.hash()


# ------------------------------------------------------------------------- CPU fallbacks
@pytest.mark.skipif(CUDA, reason="tests the fallback where there is no CUDA")
def test_device_cuda_without_cuda_warns_and_trains_on_the_cpu():
    with pytest.warns(strata.StrataWarning, match=r"^train\.device: cuda was asked for .* training on the CPU$"):
        weights, trainer = fit(device="cuda")
    assert trainer.placement.device.type == "cpu"
    assert all(torch.equal(weights[k], fit()[0][k]) for k in weights)  # exactly the default run


def test_device_auto_without_cuda_is_the_cpu_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, trainer = fit(device="auto")
    assert trainer.placement.device.type == ("cuda" if CUDA else "cpu")


def test_fp16_on_the_cpu_warns_and_trains_in_fp32():
    with pytest.warns(strata.StrataWarning, match=r"^train\.precision: fp16 needs a CUDA GPU; training in fp32"):
        weights, trainer = fit(precision="fp16")
    assert trainer.model.seen == torch.float32 and trainer.scaler is None
    assert all(torch.equal(weights[k], fit()[0][k]) for k in weights)


def test_bf16_runs_on_the_cpu_under_autocast():
    _, trainer = fit(precision="bf16")
    assert trainer.model.seen == torch.bfloat16  # the layers ran in bf16
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # the weights stay fp32


def test_compile_on_the_cpu_warns_and_trains_without_it():
    with pytest.warns(strata.StrataWarning, match=r"^train\.compile: torch\.compile is used on CUDA only"):
        weights, trainer = fit(compile=True)
    assert trainer._net is trainer.model
    assert all(torch.equal(weights[k], fit()[0][k]) for k in weights)


def test_the_default_path_is_untouched():
    _, trainer = fit()
    place = trainer.placement
    assert (place.device.type, place.autocast, place.scale, place.compile) == ("cpu", None, False, False)
    assert trainer.model.seen == torch.float32 and trainer.scaler is None and trainer._net is trainer.model


# ---------------------------------------------------------------------------------- on a GPU
@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_with_each_precision_ends_on_the_cpu(precision):
    weights, trainer = fit(device="cuda", precision=precision, accumulate=2, batch_size=32)
    assert all(v.device.type == "cpu" for v in weights.values())
    assert trainer.placement.device.type == "cuda"
    assert (trainer.scaler is not None) == (precision == "fp16")
    assert all(torch.isfinite(v).all() for v in weights.values())
    cpu, _ = fit(accumulate=2, batch_size=32)
    tolerance = 1e-4 if precision == "fp32" else 5e-2
    assert all(torch.allclose(weights[k], cpu[k], atol=tolerance) for k in cpu)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_conv_network_trains_channels_last():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    images = TensorSet({"input": torch.randn(64, 3, 8, 8)}, torch.randint(0, 2, (64,)))
    net(images.inputs["input"][:2])  # materialise the lazy layer
    trainer = Trainer(net, torch.nn.CrossEntropyLoss(), TrainConfig(epochs=2, batch_size=16, device="cuda"), SEEDS)
    trainer.fit(images)
    assert trainer._channels_last and next(net.parameters()).device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_compiled_run_gives_a_bundle_on_the_cpu(mixed_frame, tmp_path):
    from tests.conftest import tiny_recipe

    recipe = tiny_recipe(train={"epochs": 2, "batch_size": 16, "device": "cuda", "compile": True})
    result = strata.train(recipe, data=mixed_frame, quiet=True, out=tmp_path / "m")
    assert next(result.model.network.parameters()).device.type == "cpu"
    assert strata.load(tmp_path / "m").predict(mixed_frame.head(3)).shape == (3,)
