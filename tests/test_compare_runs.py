"""strata compare, stack and ensemble end to end."""

from __future__ import annotations

import numpy as np
import pytest

import strata
from strata.comparison import compare_models, compare_recipes
from strata.errors import DataError
from tests.test_cli import strata as cli

IRIS = {"data": {"dataset": "iris", "target": "species"}, "train": {"epochs": 5}, "track": False}


def test_two_recipes_are_compared_on_the_same_folds():
    weak = IRIS | {"name": "weak", "model": {"hidden": [2]}, "train": {"epochs": 2, "optimizer": {"lr": 1e-4}}}
    strong = IRIS | {"name": "strong", "model": {"hidden": [32]}, "train": {"epochs": 30, "optimizer": {"lr": 1e-2}}}
    found = compare_recipes(weak, strong, folds=3)
    assert found["metric"] == "accuracy" and len(found["scores"]["weak"]) == 3
    diffs = np.subtract(found["scores"]["strong"], found["scores"]["weak"])
    assert found["result"]["mean_difference"] == pytest.approx(diffs.mean())
    assert (
        found["verdict"].startswith("strong is better than weak by")
        and "corrected resampled t-test" in found["verdict"]
    )


def test_a_recipe_against_itself_shows_no_difference():
    found = compare_recipes(IRIS | {"name": "a"}, IRIS | {"name": "b"}, folds=3)
    assert found["result"]["mean_difference"] == 0 and "no significant difference" in found["verdict"]


def test_two_models_on_one_labelled_table(tmp_path, capsys):
    strata.train(IRIS | {"model": {"hidden": [2]}, "train": {"epochs": 1}}, out=tmp_path / "a", quiet=True)
    strata.train(IRIS | {"train": {"epochs": 40, "optimizer": {"lr": 1e-2}}}, out=tmp_path / "b", quiet=True)
    rows = tmp_path / "rows.csv"
    strata.load_dataset("iris").to_csv(rows, index=False)
    found = compare_models(tmp_path / "a", tmp_path / "b", rows)
    assert found["mcnemar"]["c"] > found["mcnemar"]["b"]  # rows only B gets right outnumber the reverse
    assert found["verdict"].startswith("B is better than A") and "paired bootstrap" in found["verdict"]
    code, out, err = cli(capsys, "compare", tmp_path / "a", tmp_path / "b", "--data", rows)
    assert code == 0 and "McNemar" in out, err
    code, _, err = cli(capsys, "compare", tmp_path / "a", tmp_path / "b")
    assert code == 1 and "give --data FILE" in err
    strata.train({"data": {"dataset": "diabetes", "target": "progression"}, "train": {"epochs": 1}, "track": False},
                 out=tmp_path / "r", quiet=True)  # fmt: skip
    with pytest.raises(DataError, match="the models predict different things"):
        compare_models(tmp_path / "a", tmp_path / "r", rows)


def test_stacked_and_averaged_ensembles_are_bundles_that_load_and_predict(tmp_path, capsys):
    recipes = [IRIS | {"model": {"hidden": [4]}}, IRIS | {"model": {"hidden": [32]}, "train": {"epochs": 20}}]
    strata.stack(recipes, folds=3, out=tmp_path / "stack")
    stacked = strata.load(tmp_path / "stack")
    assert isinstance(stacked, strata.Ensemble) and stacked.method == "stacking"
    rows = strata.load_dataset("iris").drop(columns="species")
    assert np.allclose(stacked.predict_proba(rows).sum(1), 1)
    labelled = tmp_path / "iris.csv"
    strata.load_dataset("iris").to_csv(labelled, index=False)
    code, out, err = cli(capsys, "evaluate", tmp_path / "stack", labelled)  # the recipe's bootstrap, like a bundle
    assert code == 0 and "accuracy" in out, err
    assert "no significant difference" in compare_models(tmp_path / "stack", tmp_path / "stack", labelled)["verdict"]
    for seed in (0, 1):
        strata.train(IRIS | {"seed": seed}, out=tmp_path / f"seed-{seed}", quiet=True)
    code, _, err = cli(capsys, "ensemble", tmp_path / "seed-0", tmp_path / "seed-1", "--out", tmp_path / "avg")
    assert code == 0, err
    averaged = strata.load(tmp_path / "avg")
    members = [strata.load(tmp_path / f"seed-{s}").predict_proba(rows) for s in (0, 1)]
    np.testing.assert_allclose(averaged.predict_proba(rows), np.mean(members, axis=0), atol=1e-6)
