"""Held-out quality floors on the bundled datasets, with fixed seeds.

Each floor is checked on the mean over master seeds 0, 1 and 2, which draw three different test
splits, and every single seed must come within 0.05 of it. One split of 30-90 rows is too noisy to
judge a model by alone: on diabetes, ridge regression scores R² 0.33 on seed 0's split and 0.53 on
seed 1's; on iris, logistic regression misses 1 of 30 on seed 1's split where these MLPs miss 2-3.
A linear model fitted on the same splits is the yardstick that shows the floor is not met by luck.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score

import strata
from strata.data.datasets import load_dataset
from strata.workflow import prepare

SEEDS = (0, 1, 2)
CLASSIFY = {
    "epochs": 300,
    "batch_size": 16,
    "optimizer": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.05},
    "early_stopping": {"patience": 40},
}
CASES = {
    # dataset: (target, metric, floor, model, train)
    "iris": (
        "species",
        "accuracy",
        0.93,
        {"hidden": [32], "activation": "tanh"},
        {"epochs": 300, "batch_size": 8, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
    ),
    "wine": ("cultivar", "accuracy", 0.95, {"hidden": [64, 32], "dropout": 0.3, "norm": "batch"}, CLASSIFY),
    "breast_cancer": ("diagnosis", "accuracy", 0.95, {"hidden": [64, 32], "dropout": 0.2}, CLASSIFY),
    "penguins": ("species", "accuracy", 0.97, {"hidden": [64, 32], "dropout": 0.1}, CLASSIFY),
    "diabetes": (
        "progression",
        "r2",
        0.35,
        {"hidden": [64], "dropout": 0.3, "activation": "elu"},
        {"epochs": 100, "batch_size": 32, "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.3}},
    ),
}


def recipe(name: str, seed: int) -> dict:
    target, _, _, model, train = CASES[name]
    return {"seed": seed, "data": {"dataset": name, "target": target}, "model": model, "train": train, "track": False}


def linear_baseline(name: str, seed: int) -> float:
    """A linear model on exactly the same split and features."""
    prep = prepare(strata.Recipe.from_dict(recipe(name, seed)), load_dataset(name))
    train, test = prep.sets["train"], prep.sets["test"]
    x_train, x_test = train.inputs["numeric"].numpy(), test.inputs["numeric"].numpy()
    if prep.task == "regression":
        fitted = Ridge().fit(x_train, train.target.numpy())
        return r2_score(test.target.numpy(), fitted.predict(x_test))
    return LogisticRegression(max_iter=5000).fit(x_train, train.target.numpy()).score(x_test, test.target.numpy())


@pytest.mark.parametrize("name", list(CASES))
def test_held_out_floor(name):
    _, metric, floor, _, _ = CASES[name]
    scores = [strata.train(recipe(name, seed), quiet=True).metrics["test"][metric] for seed in SEEDS]
    baseline = np.mean([linear_baseline(name, seed) for seed in SEEDS])
    assert np.mean(scores) >= floor, f"{name}: {metric} {scores} (linear baseline {baseline:.3f})"
    assert min(scores) >= floor - 0.05, f"{name}: one seed far below the floor: {scores}"
    assert np.mean(scores) >= baseline - 0.03, f"{name}: {scores} well below the linear baseline {baseline:.3f}"
