"""Running a study: grid visits each combination once (also from two processes), budgets count resumed
trials, pruning stops a poor curve, and the summary and plots read back. Objectives are cheap formulas.

Objectives handed to `run(..., jobs=2)` are module-level functions: worker processes are spawned and
import them by name.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from strata.errors import RecipeError
from strata.tuning.space import TuneConfig, grid, suggest
from strata.tuning.study import open_study, plots, reporter, run, summary

GRID = {"model.hidden": [[64], [128, 64], [256, 128]], "train.epochs": {"int": [1, 4]}}  # 12 combinations


def _quadratic(trial: optuna.Trial, space: dict, pause: float = 0.0) -> float:
    """Best at dropout 0.3, the fewest epochs and the shortest choice. Records the process that ran it."""
    params = suggest(trial, space)
    trial.set_user_attr("pid", os.getpid())
    time.sleep(pause)  # long enough for two workers to overlap
    return sum(_cost(v) for v in params.values())


def _cost(value: object) -> float:
    if isinstance(value, float):
        return (value - 0.3) ** 2
    return value if isinstance(value, int) else len(str(value))


def _objective(cfg: TuneConfig, pause: float = 0.0):
    return functools.partial(_quadratic, space=cfg.space, pause=pause)


def _cfg(**tune) -> TuneConfig:
    return TuneConfig.from_dict({"space": {"model.dropout": {"uniform": [0.0, 0.5]}}, "strategy": "random", **tune})


def _seen(study: optuna.Study) -> Counter:
    from strata.tuning.study import decoded_params

    return Counter(str(sorted(decoded_params(t).items())) for t in study.trials if t.params)


def _url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def test_grid_visits_every_combination_once(tmp_path):
    cfg = TuneConfig.from_dict({"space": GRID, "strategy": "grid"})
    study = open_study("grid", _url(tmp_path), cfg, seed=0)
    run(study, _objective(cfg), cfg)
    assert _seen(study) == Counter(str(sorted(c.items())) for c in grid(cfg.space))
    assert summary(study)["complete"] == len(study.trials) == 12


def test_grid_from_two_processes_visits_every_combination_once(tmp_path):
    cfg = TuneConfig.from_dict({"space": GRID, "strategy": "grid"})
    study = open_study("grid2", _url(tmp_path), cfg, seed=3)
    run(study, _objective(cfg, pause=0.1), cfg, jobs=2)
    assert len({t.user_attrs["pid"] for t in study.trials if t.params}) == 2  # both workers ran trials
    seen = _seen(study)
    assert seen == Counter(str(sorted(c.items())) for c in grid(cfg.space))  # all 12, none twice
    assert summary(study)["complete"] == 12


def test_two_processes_finish_exactly_the_trials_asked_for(tmp_path):
    cfg = _cfg(trials=6)
    study = open_study("par", _url(tmp_path), cfg, seed=0)
    shown = []
    run(study, _objective(cfg, pause=0.1), cfg, jobs=2, progress=lambda s, t: shown.append(t.number))
    assert len({t.user_attrs["pid"] for t in study.trials if t.params}) == 2
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 6
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert len({t.params["model.dropout"] for t in complete}) == 6  # each worker samples its own values
    assert sorted(shown) == sorted(t.number for t in complete)


def test_a_resumed_study_runs_only_the_missing_trials(tmp_path):
    first = _cfg(trials=3)
    study = open_study("resume", _url(tmp_path), first, seed=0)
    run(study, _objective(first), first)
    assert len(study.trials) == 3
    more = _cfg(trials=5)
    again = open_study("resume", _url(tmp_path), more, seed=0)
    shown = []
    run(again, _objective(more), more, progress=lambda s, t: shown.append(t.number))
    assert len(again.get_trials(states=(TrialState.COMPLETE,))) == 5
    assert shown == [3, 4]
    run(again, _objective(more), more)  # already done: nothing more
    assert len(again.trials) == 5


def test_a_resumed_grid_does_not_repeat_combinations(tmp_path):
    cfg = TuneConfig.from_dict({"space": GRID, "strategy": "grid", "trials": 5})
    study = open_study("grid-resume", _url(tmp_path), cfg, seed=1)
    run(study, _objective(cfg), cfg)
    whole = TuneConfig.from_dict({"space": GRID, "strategy": "grid"})
    again = open_study("grid-resume", _url(tmp_path), whole, seed=7)  # another recipe seed: the same grid order
    run(again, _objective(whole), whole)
    assert _seen(again) == Counter(str(sorted(c.items())) for c in grid(whole.space))


def test_reopening_with_another_space_is_an_error(tmp_path):
    cfg = _cfg(trials=1)
    run(open_study("changed", _url(tmp_path), cfg, seed=0), _objective(cfg), cfg)
    other = TuneConfig.from_dict({"space": {"model.dropout": {"uniform": [0.0, 0.3]}}})
    with pytest.raises(RecipeError, match=r"study 'changed' in .* was run with another space"):
        open_study("changed", _url(tmp_path), other, seed=0)


def _curve(trial: optuna.Trial) -> float:
    """Trials 0-4 learn well; trial 5 stays ten times worse."""
    report = reporter(trial)
    value = 1.0
    for epoch in range(1, 6):
        value = (10.0 if trial.number == 5 else 1.0) / epoch
        report(epoch, value)
    return value


def test_the_median_pruner_stops_a_clearly_worse_trial(tmp_path):
    cfg = _cfg(trials=6, pruner="median")
    study = open_study("prune", _url(tmp_path), cfg, seed=0)
    run(study, _curve, cfg)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 5 + [TrialState.PRUNED]
    assert max(study.trials[5].intermediate_values) == 2  # stopped at the first epoch after the warm-up
    assert summary(study)["pruned"] == 1


def test_without_a_pruner_the_worse_trial_runs_to_the_end(tmp_path):
    cfg = _cfg(trials=6)
    study = open_study("noprune", _url(tmp_path), cfg, seed=0)
    run(study, _curve, cfg)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6


def test_summary_names_the_best_settings_as_recipe_values(tmp_path):
    cfg = TuneConfig.from_dict(
        {"space": {**GRID, "model.dropout": [0.0, 0.3]}, "strategy": "grid", "metric": "val_loss"}
    )
    study = open_study("summary", _url(tmp_path), cfg, seed=0)
    run(study, _objective(cfg), cfg)
    result = summary(study)
    assert result["best_params"] == {"model.hidden": [64], "train.epochs": 1, "model.dropout": 0.3}
    assert (result["complete"], result["pruned"], result["failed"], result["direction"]) == (24, 0, 0, "minimize")


def test_failed_trials_are_counted_when_caught(tmp_path):
    def explode(trial):
        suggest(trial, cfg.space)
        raise ArithmeticError("diverged")

    cfg = _cfg(trials=2)
    study = open_study("fail", _url(tmp_path), cfg, seed=0)
    run(study, explode, cfg, catch=(ArithmeticError,))  # every trial failing stops after `trials` failures
    assert summary(study)["failed"] == 2
    assert summary(study)["best_value"] is None


def test_plots_are_png_images(tmp_path):
    cfg = TuneConfig.from_dict({"space": {"model.dropout": {"uniform": [0.0, 0.5]}, "train.epochs": {"int": [1, 9]}},
                                "strategy": "random", "trials": 8})  # fmt: skip
    study = open_study("plots", _url(tmp_path), cfg, seed=0)
    assert plots(study) == {}  # nothing to draw yet
    run(study, _objective(cfg), cfg)
    images = plots(study)
    assert set(images) == {"optimization_history.png", "param_importances.png", "parallel_coordinate.png"}
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images.values())


def test_one_parameter_skips_the_importances(tmp_path):
    cfg = _cfg(trials=3)
    study = open_study("one", _url(tmp_path), cfg, seed=0)
    run(study, _objective(cfg), cfg)
    assert set(plots(study)) == {"optimization_history.png", "parallel_coordinate.png"}


def test_the_default_storage_is_a_sqlite_file_under_strata_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(trials=1)
    run(open_study("default", None, cfg, seed=0), _objective(cfg), cfg)
    assert (tmp_path / "strata-runs" / "optuna.db").is_file()


def test_the_timeout_ends_the_study(tmp_path):
    cfg = _cfg(trials=100, timeout=0.6)
    study = open_study("timeout", _url(tmp_path), cfg, seed=0)
    run(study, _objective(cfg, pause=0.2), cfg)
    assert 1 <= len(study.trials) <= 5


def test_hyperband_runs_trials_to_the_budget(tmp_path):
    cfg = _cfg(trials=4, pruner="hyperband", strategy="tpe")
    study = open_study("hyperband", _url(tmp_path), cfg, seed=0)
    run(study, _curve, cfg)
    assert isinstance(study.pruner, optuna.pruners.HyperbandPruner)
    assert summary(study)["complete"] + summary(study)["pruned"] == 4
