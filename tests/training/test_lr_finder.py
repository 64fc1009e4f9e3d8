"""The learning-rate range test on a small generated problem: its suggestion is close to the best of a
sweep of fixed learning rates, it stops when the loss diverges, and it is reproducible.

`range_test` trains the model it is given in place: pass a fresh one (each test here does)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from strata.data.batches import TensorSet
from strata.models.mlp import TabularMLP
from strata.recipe import MLPConfig, Seeds, TrainConfig
from strata.training.lr_finder import RangeTest, range_test, suggest
from strata.training.optim import make_optimizer

SWEEP = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0]


def problem(seed: int = 0, n: int = 512) -> TensorSet:
    """Two classes split by a line, with some label noise near it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = ((x[:, 0] + 0.5 * x[:, 1] + 0.3 * torch.randn(n, generator=g)) > 0).long()
    return TensorSet({"numeric": x}, y)


def network(seed: int = 0) -> TabularMLP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TabularMLP(2, [], 2, MLPConfig(hidden=[16]))


def config(optimizer: str = "adam", lr: float = 1e-3) -> TrainConfig:
    return TrainConfig(batch_size=32, optimizer={"name": optimizer, "lr": lr})


def run_range_test(model: torch.nn.Module, data: TensorSet, cfg: TrainConfig, seeds: Seeds, **kw: float) -> RangeTest:
    return range_test(model, torch.nn.CrossEntropyLoss(), data, cfg, seeds, **kw)


def loss_after_training(model: torch.nn.Module, data: TensorSet, cfg: TrainConfig, seed: int, lr: float) -> float:
    """Training loss on all rows after 5 epochs at a fixed learning rate, from a copy of `model`."""
    model = copy.deepcopy(model)
    optimizer = make_optimizer(model, cfg.optimizer)
    for group in optimizer.param_groups:
        group["lr"] = lr
    order, loss = torch.Generator().manual_seed(seed), torch.nn.CrossEntropyLoss()
    for _ in range(5):
        for inputs, target in data.batches(cfg.batch_size, order):
            optimizer.zero_grad()
            loss(model(**inputs), target).backward()
            optimizer.step()
    with torch.no_grad():
        value = float(loss(model(**data.inputs), data.target))
    return value if math.isfinite(value) else math.inf


# ---------------------------------------------------------------------------------- suggestion
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("seed", [0, 5, 10, 12])
def test_suggestion_is_within_ten_times_the_best_fixed_learning_rate(optimizer, seed):
    data, model, cfg, seeds = problem(seed), network(seed), config(optimizer), Seeds(seed, seed + 1, seed + 2)
    found = run_range_test(copy.deepcopy(model), data, cfg, seeds)  # the defaults: 1e-7 to 10 in 100 steps
    final = [loss_after_training(model, data, cfg, seed, lr) for lr in SWEEP]
    best = SWEEP[int(np.argmin(final))]
    assert min(final) < 0.8 * final[0]  # the sweep does find rates that learn
    assert found.suggestion is not None
    assert best / 10 <= found.suggestion <= best * 10, (found.suggestion, best, final)


def test_the_suggestion_is_where_the_loss_falls_fastest():
    lrs = list(np.geomspace(1e-7, 10, 100))
    x = np.log10(lrs)
    curve = 1 - 0.4 * np.tanh(1.5 * (x + 3)) + 0.3 * np.maximum(x + 1, 0) ** 2  # steepest at 1e-3, lowest near 0.1
    found = suggest(lrs, list(curve))
    assert found is not None and 1e-3 / 1.5 < found < 1e-3 * 1.5


@pytest.mark.parametrize("seed", range(8))
def test_the_suggestion_is_not_thrown_by_noise(seed):
    # A gentle fall (0.1 per decade at its steepest, at 1e-3) with batch noise left after smoothing:
    # one step's slope of the noise alone can be as steep as the fall.
    lrs = list(np.geomspace(1e-7, 10, 100))
    x = np.log10(lrs)
    curve = 1 - 0.1 * np.tanh(x + 3) + 0.05 * np.maximum(x + 1, 0) ** 2
    noisy = curve + np.random.default_rng(seed).normal(0, 0.01, len(lrs))
    found = suggest(lrs, list(noisy))
    assert found is not None and 1e-4 < found < 1e-2, found


def test_no_suggestion_from_too_few_points_or_a_loss_that_never_falls():
    lrs = list(np.geomspace(1e-5, 1, 9))
    assert suggest(lrs, [1.0 - 0.1 * i for i in range(9)]) is None  # fewer than 10 points
    assert suggest([], []) is None
    rising = list(np.geomspace(1e-5, 1, 50))
    assert suggest(rising, [1.0 + 0.01 * i for i in range(50)]) is None  # lowest at the start


def test_the_range_tests_suggestion_is_that_of_its_curve():
    found = run_range_test(network(), problem(), config(), Seeds(0, 1, 2))
    assert found.suggestion == suggest(found.lrs, found.losses)


# ---------------------------------------------------------------------------------- the sweep
def test_learning_rates_grow_geometrically_from_start_to_end():
    # 50 steps of 16 batches an epoch: the test runs on into further epochs
    found = run_range_test(network(), problem(), config(), Seeds(0, 1, 2), start=1e-6, end=1e-2, steps=50)
    assert len(found.lrs) == len(found.losses) == 50
    assert found.lrs[0] == pytest.approx(1e-6)
    assert found.lrs[-1] == pytest.approx(1e-2)
    ratios = np.array(found.lrs[1:]) / np.array(found.lrs[:-1])
    assert ratios == pytest.approx(np.full(49, (1e-2 / 1e-6) ** (1 / 49)))
    assert all(math.isfinite(v) for v in found.losses)


def test_the_range_test_stops_once_the_loss_diverges():
    found = run_range_test(network(), problem(), config("sgd"), Seeds(0, 1, 2), start=1e-4, end=1e8, steps=200)
    assert 10 < len(found.losses) < 200
    assert len(found.lrs) == len(found.losses)
    assert all(math.isfinite(v) for v in found.losses)
    assert max(found.losses) <= 4 * min(found.losses)  # the step that broke the rule is not recorded
    assert found.suggestion is None or found.suggestion < found.lrs[-1]


def test_the_range_test_is_reproducible():
    data, cfg = problem(), config()
    first = run_range_test(network(), data, cfg, Seeds(0, 1, 2))
    again = run_range_test(network(), data, cfg, Seeds(0, 1, 2))
    assert first == again
    other_order = run_range_test(network(), data, cfg, Seeds(7, 1, 2))  # another batch order
    assert other_order.losses != first.losses


def test_the_range_test_ignores_the_configured_learning_rate():
    data, seeds = problem(), Seeds(0, 1, 2)
    assert run_range_test(network(), data, config(lr=1e-3), seeds) == run_range_test(
        network(), data, config(lr=0.5), seeds
    )


def test_the_model_is_trained_in_place():
    data, cfg, seeds = problem(), config(), Seeds(0, 1, 2)
    model, untouched = network(), network()
    first = run_range_test(model, data, cfg, seeds, end=1e-1)
    changed = [not torch.equal(a, b) for a, b in zip(model.parameters(), untouched.parameters(), strict=True)]
    assert all(changed)
    # so a second test on the same model starts elsewhere: pass a fresh model each time
    assert run_range_test(model, data, cfg, seeds, end=1e-1).losses[0] < first.losses[0]
    assert run_range_test(untouched, data, cfg, seeds, end=1e-1) == first


def test_the_range_test_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    model = network()
    model.body.append(torch.nn.Dropout(0.5))  # draws random numbers while training
    run_range_test(model, problem(), config(), Seeds(0, 1, 2), steps=20)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize(("start", "end"), [(1e-2, 1e-3), (1e-3, 1e-3), (0.0, 1.0), (-1.0, 1.0)])
def test_a_range_that_does_not_grow_is_refused(start, end):
    with pytest.raises(ValueError, match="0 < start < end"):
        run_range_test(network(), problem(), config(), Seeds(0, 1, 2), start=start, end=end)
