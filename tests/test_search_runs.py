"""strata tune end to end: real training trials, tracked as child runs, best recipe and bundle kept."""

from __future__ import annotations

import optuna
import pytest

import strata
from strata.errors import RecipeError
from strata.recipe import Recipe


def _recipe(tmp_path, **tune) -> dict:
    return {
        "name": "iris",
        "data": {"dataset": "iris", "target": "species"},
        "train": {"epochs": 3},
        "track": {"uri": f"sqlite:///{tmp_path / 'runs.db'}"},
        "tune": {"space": {"train.optimizer.lr": {"choice": [0.001, 0.01]}, "model.hidden": {"choice": [[8], [32]]}},
                 "strategy": "grid", **tune},
    }  # fmt: skip


def test_grid_search_trains_each_combination_once_and_keeps_the_best(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = strata.tune(_recipe(tmp_path), storage=storage, out=tmp_path / "out", quiet=True)
    study = optuna.load_study(study_name="iris", storage=storage)
    seen = sorted((t.params["train.optimizer.lr"], str(t.user_attrs["params"]["model.hidden"])) for t in study.trials)
    assert len(seen) == 4 and len(set(seen)) == 4  # every combination, once
    best = min(study.trials, key=lambda t: t.value)
    assert result.best_value == best.value and result.best_params == best.user_attrs["params"]
    saved = Recipe.from_yaml(tmp_path / "out" / "best.yaml")
    assert saved.train.optimizer.lr == result.best_params["train.optimizer.lr"] and saved.tune is None
    assert (tmp_path / "out" / "best" / "weights.safetensors").exists()
    assert "optimization_history" in (tmp_path / "out" / "best" / "report.html").read_text()
    # each trial is an MLflow child run of the study's parent run
    from strata.track.store import Store

    client = Store.open(f"sqlite:///{tmp_path / 'runs.db'}").client
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if r.data.tags.get("strata.kind") == "tune"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 4
    assert parents[0].data.tags["strata.best_trial"] == str(best.number)


def test_an_interrupted_study_resumes_without_repeating_trials(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    recipe = _recipe(tmp_path, strategy="random", trials=2)
    recipe["tune"]["space"] = {"train.optimizer.lr": {"loguniform": [1e-4, 1e-1]}}
    strata.tune(recipe, storage=storage, out=tmp_path / "out", quiet=True)
    recipe["tune"]["trials"] = 3
    strata.tune(recipe, storage=storage, out=tmp_path / "out", quiet=True)
    assert len(optuna.load_study(study_name="iris", storage=storage).trials) == 3


def test_two_workers_share_one_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = strata.tune(_recipe(tmp_path) | {"track": False}, storage=storage, jobs=2, out=tmp_path / "o", quiet=True)
    trials = optuna.load_study(study_name="iris", storage=storage).trials
    assert result.summary["complete"] == 4 and len({t.number for t in trials}) == len(trials) == 4


def test_a_bad_search_space_fails_before_any_trial(tmp_path):
    recipe = _recipe(tmp_path)
    recipe["tune"]["space"] = {"model.hiddn": {"choice": [[8]]}}
    with pytest.raises(RecipeError, match=r"model\.hiddn"):
        strata.tune(recipe, storage=f"sqlite:///{tmp_path / 'optuna.db'}", out=tmp_path / "out", quiet=True)
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "out").exists()
    with pytest.raises(RecipeError, match=r"low 0\.1 must be below high 0\.001"):
        Recipe.from_dict(_recipe(tmp_path) | {"tune": {"space": {"train.optimizer.lr": {"uniform": [0.1, 0.001]}}}})
    with pytest.raises(RecipeError, match="tune: the recipe has no tune section"):
        strata.tune({"data": {"dataset": "iris", "target": "species"}})


def test_trials_can_be_scored_by_cross_validation(tmp_path):
    recipe = _recipe(tmp_path, cv=2, metric="val_accuracy") | {"track": False}
    recipe["tune"]["space"] = {"train.optimizer.lr": {"choice": [1e-6, 3e-2]}}
    result = strata.tune(recipe, storage=f"sqlite:///{tmp_path / 'optuna.db'}", out=tmp_path / "o", quiet=True)
    assert result.summary["direction"] == "maximize" and 0 < result.best_value <= 1
    assert result.best_params == {"train.optimizer.lr": 3e-2}  # 1e-6 learns nothing in three epochs
    assert (tmp_path / "o" / "best" / "weights.safetensors").exists()  # trained once, from best.yaml


def test_a_metric_the_runs_do_not_measure_fails_before_any_trial(tmp_path):
    recipe = _recipe(tmp_path, metric="val_los")
    with pytest.raises(
        RecipeError, match=r"tune\.metric: 'val_los' is not measured for this recipe \(did you mean 'val_loss'\?\)"
    ):
        strata.tune(recipe, storage=f"sqlite:///{tmp_path / 'optuna.db'}", out=tmp_path / "out", quiet=True)
    regression = _recipe(tmp_path, metric="val_accuracy") | {"data": {"dataset": "diabetes", "target": "progression"}}
    with pytest.raises(RecipeError, match="'val_accuracy' is not measured"):
        strata.tune(regression, storage=f"sqlite:///{tmp_path / 'optuna.db'}", out=tmp_path / "out", quiet=True)
    assert not (tmp_path / "optuna.db").exists()


def test_a_resumed_random_search_draws_new_values(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    recipe = _recipe(tmp_path, strategy="random", trials=2) | {"track": False}
    recipe["tune"]["space"] = {"train.optimizer.lr": {"loguniform": [1e-4, 1e-1]}}
    strata.tune(recipe, storage=storage, out=tmp_path / "out", quiet=True)
    recipe["tune"]["trials"] = 4
    strata.tune(recipe, storage=storage, out=tmp_path / "out", quiet=True)
    values = [t.params["train.optimizer.lr"] for t in optuna.load_study(study_name="iris", storage=storage).trials]
    assert len(values) == 4 and len(set(values)) == 4
