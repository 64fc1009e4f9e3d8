"""Cross-validation end to end: every fold fits its own pipeline, out-of-fold predictions cover each row once."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import strata
from strata.data.folds import folds
from strata.errors import DataError, RecipeError
from strata.recipe import Recipe

IRIS = {"data": {"dataset": "iris", "target": "species"}, "train": {"epochs": 15}, "track": False}


def test_each_fold_fits_its_pipeline_on_its_own_training_rows(tmp_path):
    # A column whose scale differs wildly between rows: a pipeline fitted on all rows (leakage)
    # would have the same mean in every fold; fitted inside the fold, each mean is its rows' mean.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=120) * np.repeat([1, 100], 60), "y": rng.normal(size=120)})
    frame["target"] = frame["y"] * 2 + rng.normal(size=120)
    recipe = Recipe.from_dict({"data": {"target": "target"}, "train": {"epochs": 2}, "track": False})
    result = strata.cross_validate(recipe, frame, folds=4, out=tmp_path / "cv")
    parts = folds(len(frame), kind="kfold", k=4, seed=recipe.seeds.data, val=recipe.split.val)
    assert result.kind == "kfold"
    for i, fold in enumerate(parts):
        column = strata.load(tmp_path / "cv" / f"fold-{i}").pipeline.columns[0]
        assert column["name"] == "x"
        assert column["state"]["center"] == pytest.approx(frame["x"].iloc[fold.train].mean())
        assert column["state"]["center"] != pytest.approx(frame["x"].mean())
        assert set(result.oof.loc[result.oof["fold"] == i, "row"]) == set(fold.test.tolist())


def test_out_of_fold_predictions_cover_every_row_once_and_the_summary_is_written(tmp_path):
    result = strata.cross_validate(IRIS, folds=3, out=tmp_path)
    assert sorted(result.oof["row"]) == list(range(150))
    assert {"prediction", "proba_setosa"} <= set(result.oof.columns)
    summary = result.summary["accuracy"]
    assert summary["n"] == 3 and summary["ci_low"] <= summary["mean"] <= summary["ci_high"]
    assert summary["mean"] == pytest.approx(np.mean(result.scores["accuracy"]))
    saved = json.loads((tmp_path / "cv.json").read_text())
    assert [f["metrics"]["accuracy"] for f in saved["folds"]] == result.scores["accuracy"]
    assert len(pd.read_csv(tmp_path / "oof.csv")) == 150


def test_repeated_folds_predict_every_row_once_per_repeat():
    result = strata.cross_validate(IRIS | {"train": {"epochs": 2}}, folds=3, repeats=2)
    assert result.kind == "repeated" and len(result.folds) == 6
    assert result.oof.groupby("repeat")["row"].apply(lambda r: sorted(r) == list(range(150))).all()


def test_group_folds_keep_each_group_in_one_fold(tmp_path):
    frame = strata.load_dataset("iris")
    frame["plant"] = np.arange(len(frame)) % 10  # ten plants, each measured 15 times
    recipe = {"data": {"target": "species"}, "train": {"epochs": 2}, "track": False}
    result = strata.cross_validate(recipe, frame, folds=3, group="plant", out=tmp_path)
    assert "plant" not in strata.load(tmp_path / "fold-0").pipeline.input_names  # an id to group by, not an input
    plants = frame["plant"].to_numpy()[result.oof["row"].to_numpy()]
    assert result.kind == "group"
    assert pd.Series(result.oof["fold"].to_numpy()).groupby(plants).nunique().max() == 1


def test_cross_validation_errors_are_one_line():
    with pytest.raises(DataError, match="--group: column 'islnd' is not in the data"):
        strata.cross_validate(IRIS | {"data": {"dataset": "penguins", "target": "species"}}, folds=3, group="islnd")
    with pytest.raises(RecipeError, match="--kind 'kfolds': expected one of"):
        strata.cross_validate(IRIS, folds=3, kind="kfolds")
    with pytest.raises(DataError, match="k"):
        strata.cross_validate(IRIS, folds=1)
    with pytest.raises(RecipeError, match="--group applies to group folds"):
        strata.cross_validate(IRIS, folds=3, kind="timeseries", group="species")


def test_cli_cv_prints_the_spread_and_writes_the_files(tmp_path, capsys):
    from tests.test_cli import strata as cli

    recipe = tmp_path / "iris.yaml"
    recipe.write_text("data: {dataset: iris, target: species}\ntrain: {epochs: 5}\ntrack: false\n")
    code, out, err = cli(capsys, "cv", recipe, "--folds", "3", "--out", tmp_path / "cv")
    assert code == 0, err
    assert "metrics over 3 folds" in out and "accuracy" in out
    assert (tmp_path / "cv" / "oof.csv").exists() and (tmp_path / "cv" / "fold-2" / "weights.safetensors").exists()
