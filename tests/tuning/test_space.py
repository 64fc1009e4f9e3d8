"""The `tune:` section: what a space accepts, the errors it gives before any trial, and what it samples."""

from __future__ import annotations

import math
import subprocess
import sys

import optuna
import pytest

from strata.errors import RecipeError
from strata.recipe import Recipe
from strata.tuning.space import Param, TuneConfig, check_space, direction, grid, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "train.optimizer.lr": {"loguniform": [1.0e-4, 1.0e-1]},
    "model.hidden": {"choice": [[64], [128, 64], [256, 128]]},
    "model.dropout": {"uniform": [0.0, 0.5]},
    "train.batch_size": {"int": [16, 256], "log": True},
    "train.epochs": {"int": [10, 50], "step": 10},
}


def _iris() -> Recipe:
    return Recipe.from_dict({"data": {"dataset": "iris", "target": "species"}})


def test_a_full_section_parses_with_defaults():
    cfg = TuneConfig.from_dict({"space": SPACE})
    assert [p.kind for p in cfg.space.values()] == ["loguniform", "choice", "uniform", "int", "int"]
    assert (cfg.strategy, cfg.trial_count, cfg.metric, cfg.goal, cfg.pruner) == (
        "tpe",
        20,
        "val_loss",
        "minimize",
        "none",
    )


def test_a_bare_list_is_a_choice():
    assert TuneConfig.from_dict({"space": {"model.hidden": [[64], [32]]}}).space["model.hidden"].choice == [[64], [32]]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"space": {"train.optimizer.lr": {"loguniform": [0.1, 0.001]}}},
            "tune.space.'train.optimizer.lr': low 0.1 must be below high 0.001",
        ),
        (
            {"space": {"model.dropout": {"uniform": [0.5, 0.5]}}},
            "tune.space.'model.dropout': low 0.5 must be below high 0.5",
        ),
        ({"space": {"model.hidden": {"choice": []}}}, "tune.space.'model.hidden'.choice: the choice list is empty"),
        ({"space": {"model.hidden": []}}, "the choice list is empty"),
        ({"space": {"model.hidden": [[64], [64]]}}, "choice [64] is listed more than once"),
        (
            {"space": {"train.optimizer.lr": {"loguniforn": [1e-4, 0.1]}}},
            "unknown key 'loguniforn' (did you mean 'loguniform'?)",
        ),
        (
            {"space": {"model.dropout": {"uniform": [0, 0.5], "choice": [0.1]}}},
            "give exactly one of loguniform, uniform, int, choice; got uniform, choice",
        ),
        (
            {"space": {"model.dropout": {"uniform": [0, 0.5], "log": True}}},
            "log applies to int ranges, not uniform; use loguniform",
        ),
        ({"space": {"model.hidden": {"choice": [[64]], "log": False}}}, "log applies to int ranges, not choice"),
        ({"space": {"model.dropout": {"uniform": [0, 0.5], "step": 1}}}, "step applies to int ranges, not uniform"),
        ({"space": {"train.optimizer.lr": {"loguniform": [0, 0.1]}}}, "loguniform needs low > 0"),
        (
            {"space": {"train.batch_size": {"int": [16, 250], "step": 16}}},
            "does not end on a step; use high 240 or 256",
        ),
        ({"space": {"train.batch_size": {"int": [16, 256], "step": 16, "log": True}}}, "takes log or step, not both"),
        (
            {"space": {"model.dropout": 0.3}},
            "expected a mapping such as {uniform: [0.0, 0.5]} or a list of choices, got 0.3",
        ),
        ({"space": {}}, "tune.space: give at least one key to search"),
        ({"space": {"model hidden": [1]}}, "'model hidden' is not a dotted recipe key"),
        (
            {"space": {"model.hidden": [[64]]}, "strategy": "bayes"},
            "tune.strategy: input should be 'grid', 'random' or 'tpe'",
        ),
        ({"space": {"model.hidden": [[64]]}, "trials": 0}, "tune.trials: input should be greater than or equal to 1"),
        ({"space": {"model.hidden": [[64]]}, "pruning": "median"}, "tune.pruning: unknown key 'pruning'"),
        (
            {"space": {"model.hidden": [[64], [32]], "model.dropout": {"uniform": [0.0, 0.5]}}, "strategy": "grid"},
            "strategy: grid needs every parameter as a choice list (or an int range of at most 100 values); 'model.dropout' is uniform",
        ),
        (
            {"space": {"train.batch_size": {"int": [1, 1000]}}, "strategy": "grid"},
            "'train.batch_size' is an int range of 1000 values",
        ),
        (
            {"space": {"model.hidden": [[64], [32]]}, "strategy": "grid", "trials": 3},
            "trials: 3 is more than the 2 grid combinations",
        ),
    ],
)
def test_bad_sections_are_explained(raw, message):
    with pytest.raises(RecipeError) as err:
        TuneConfig.from_dict(raw)
    assert message in str(err.value)


def test_check_space_names_an_unknown_key_before_any_trial():
    cfg = TuneConfig.from_dict({"space": {"model.hiddn": [[64], [32]]}})
    with pytest.raises(
        RecipeError, match=r"tune.space: 'model.hiddn' is not a recipe key \(did you mean 'model.hidden'\?\)"
    ):
        check_space(cfg.space, _iris())


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"model.dropout": {"uniform": [0.0, 1.0]}},
            "'model.dropout' cannot be 1.0: model.dropout: input should be less than 1",
        ),
        ({"model.hidden": [[64], [0]]}, "'model.hidden' cannot be [0]: model.hidden: layer sizes must be positive"),
        ({"train.optimizer.momentum": [0.9]}, "option 'momentum' applies to name sgd, rmsprop, not 'adam'"),
    ],
)
def test_check_space_tries_every_choice_and_both_bounds(space, message):
    with pytest.raises(RecipeError) as err:
        check_space(TuneConfig.from_dict({"space": space}).space, _iris())
    assert message in str(err.value)


def test_check_space_accepts_a_settable_space():
    check_space(TuneConfig.from_dict({"space": SPACE}).space, _iris())  # no error
    recipe = _iris().override({"model.hidden": [256, 128], "train.clip.norm": 1.0})
    assert recipe.model.hidden == [256, 128]


def test_grid_lists_every_combination_once():
    space = TuneConfig.from_dict(
        {"space": {"model.hidden": [[64], {"a": 1}, "x"], "train.epochs": {"int": [10, 30], "step": 10}}}
    ).space
    combos = grid(space)
    assert len(combos) == 9
    assert {(str(c["model.hidden"]), c["train.epochs"]) for c in combos} == {
        (str(h), e) for h in ([64], {"a": 1}, "x") for e in (10, 20, 30)
    }


def test_grid_refuses_a_continuous_parameter():
    with pytest.raises(ValueError, match="uniform range has no finite list"):
        grid({"model.dropout": Param(uniform=(0.0, 0.5))})


@pytest.mark.parametrize(
    ("metric", "given", "expected"),
    [
        ("val_loss", "auto", "minimize"),
        ("val_mae", "auto", "minimize"),
        ("val_rmse", "auto", "minimize"),
        ("val_accuracy", "auto", "maximize"),
        ("val_r2", "auto", "maximize"),
        ("val_accuracy", "minimize", "minimize"),
    ],
)
def test_direction_minimises_losses_and_errors(metric, given, expected):
    assert direction(metric, given) == expected


@pytest.mark.parametrize("sampler", [optuna.samplers.RandomSampler(seed=0), optuna.samplers.TPESampler(seed=0)])
def test_suggest_honours_bounds_steps_log_scales_and_choices(sampler):
    space = TuneConfig.from_dict({"space": SPACE}).space
    study = optuna.create_study(sampler=sampler)
    seen = []

    def objective(trial):
        seen.append(suggest(trial, space))
        return seen[-1]["train.optimizer.lr"]

    study.optimize(objective, n_trials=40)
    lrs = [s["train.optimizer.lr"] for s in seen]
    assert all(1e-4 <= lr <= 0.1 for lr in lrs)
    assert len({math.floor(math.log10(lr)) for lr in lrs}) >= 3  # log scale: several decades, not all near 0.1
    assert all(16 <= s["train.batch_size"] <= 256 and isinstance(s["train.batch_size"], int) for s in seen)
    assert min(s["train.batch_size"] for s in seen) < 64  # log scale: half the draws below 64
    assert {s["train.epochs"] for s in seen} <= {10, 20, 30, 40, 50}
    assert all(0.0 <= s["model.dropout"] <= 0.5 for s in seen)
    assert {tuple(s["model.hidden"]) for s in seen} <= {(64,), (128, 64), (256, 128)}
    assert all(isinstance(s["model.hidden"], list) for s in seen)  # decoded back to the recipe's value
    _iris().override(seen[0])  # and the recipe takes them


def test_the_section_imports_no_optuna_or_torch():
    code = "import sys, strata.tuning.space; print(sorted({'optuna', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
