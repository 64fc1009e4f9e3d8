"""LR schedules are pure functions of the step; where torch has the same schedule, they agree."""

from __future__ import annotations

import itertools

import pytest
import torch

from strata.errors import RecipeError
from strata.recipe import OptimizerConfig, Recipe, ScheduleConfig
from strata.training.optim import lr_factor, make_optimizer

STEPS, EPOCHS, LR = 10, 20, 0.1


def factors(**cfg: object) -> list[float]:
    schedule = ScheduleConfig(**cfg)
    return [lr_factor(schedule, s, STEPS, EPOCHS, LR) for s in range(STEPS * EPOCHS)]


def torch_factors(make) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    sched = make(opt)
    out = []
    for _ in range(STEPS * EPOCHS):
        out.append(opt.param_groups[0]["lr"] / LR)
        opt.step()
        sched.step()
    return out


def test_linear_warmup_then_constant():
    f = factors(name="none", warmup_epochs=2)
    assert f[0] == pytest.approx(1 / 20) and f[19] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(f[:20]))
    assert set(f[20:]) == {1.0}


def test_step_schedule_drops_by_gamma_every_step_size_epochs():
    f = factors(name="step", step_size=5, gamma=0.5)
    assert f[0] == 1.0 and f[49] == 1.0 and f[50] == 0.5 and f[100] == 0.25


def test_exponential_decays_per_epoch():
    f = factors(name="exponential", gamma=0.9)
    assert f[30] == pytest.approx(0.9**3)


def test_cosine_matches_torch_and_reaches_min_lr():
    ours = factors(name="cosine", min_lr=0.001)
    theirs = torch_factors(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=STEPS * EPOCHS, eta_min=0.001))
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_onecycle_matches_torch():
    ours = factors(name="onecycle", pct_start=0.25)
    theirs = torch_factors(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=LR, total_steps=STEPS * EPOCHS, pct_start=0.25, cycle_momentum=False
        )
    )
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_cyclic_is_triangular_between_min_lr_and_lr():
    f = factors(name="cyclic", min_lr=0.01, cycle_epochs=4)
    assert f[0] == pytest.approx(0.1)  # starts at min_lr / lr
    assert f[20] == pytest.approx(1.0)  # peak half-way through the 4-epoch cycle
    assert f[40] == pytest.approx(0.1)
    assert max(f) == pytest.approx(1.0) and min(f) == pytest.approx(0.1)


def test_warmup_shifts_the_schedule():
    f = factors(name="cosine", warmup_epochs=2)
    assert f[19] == pytest.approx(1.0) and f[20] == pytest.approx(1.0)
    assert f[-1] < 0.01


def test_weight_decay_skips_biases():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt = make_optimizer(model, OptimizerConfig(name="adamw", weight_decay=0.1))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and [p.ndim for p in decayed["params"]] == [2]
    assert plain["weight_decay"] == 0.0 and len(plain["params"]) == 3


@pytest.mark.parametrize(
    ("cfg", "kind"),
    [
        ({"name": "sgd", "momentum": 0.9, "nesterov": True}, torch.optim.SGD),
        ({"name": "adam"}, torch.optim.Adam),
        ({"name": "adamw", "betas": (0.8, 0.9)}, torch.optim.AdamW),
        ({"name": "rmsprop", "momentum": 0.5}, torch.optim.RMSprop),
    ],
)
def test_optimizer_settings_reach_torch(cfg, kind):
    opt = make_optimizer(torch.nn.Linear(2, 2), OptimizerConfig(lr=0.05, **cfg))
    assert isinstance(opt, kind)
    group = opt.param_groups[0]
    assert group["lr"] == 0.05
    for key in ("momentum", "nesterov", "betas"):
        if key in cfg:
            assert tuple(group[key]) == tuple(cfg[key]) if key == "betas" else group[key] == cfg[key]


def test_cyclic_after_warmup_starts_at_the_peak_without_a_jump():
    f = factors(name="cyclic", min_lr=0.01, cycle_epochs=4, warmup_epochs=1)
    warmup = STEPS  # one epoch
    assert f[warmup - 1] == pytest.approx(1.0)  # the warm-up ends at the peak
    assert f[warmup] == pytest.approx(1.0)  # and the cycle goes on from there, down first
    assert f[warmup + 1] < f[warmup]
    assert f[warmup + 20] == pytest.approx(0.1)  # the floor half a cycle later
    steepest = max(abs(b - a) for a, b in itertools.pairwise(f))
    assert steepest <= 1 / STEPS + 1e-9  # no step changes the rate more than the warm-up does


@pytest.mark.parametrize("min_lr", [0.01, 0.001])
def test_schedule_floor_must_be_below_the_peak_rate(min_lr):
    raw = {
        "data": {"dataset": "iris", "target": "species"},
        "train": {"optimizer": {"lr": 0.001}, "schedule": {"name": "cosine", "min_lr": min_lr}},
    }
    with pytest.raises(
        RecipeError, match=rf"^train: schedule.min_lr \({min_lr:g}\) must be below optimizer.lr \(0.001\)"
    ):
        Recipe.from_dict(raw)
