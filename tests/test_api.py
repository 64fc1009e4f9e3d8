"""`strata.train` and `prepare` end to end: no statistic leaks from held-out rows, awkward tables train
or fail with one clear DataError."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import strata
from strata._labels import level_key
from strata.errors import DataError
from strata.features.categorical import MISSING, UNSEEN
from strata.recipe import Recipe
from strata.workflow import prepare
from tests.conftest import tiny_recipe


def numeric_state(values: pd.Series) -> dict[str, object]:
    """What the default numeric options (impute mean, zscore) should learn from `values`."""
    seen = values.dropna()
    filled = values.fillna(seen.mean()).to_numpy(dtype=float)
    return {"fill": seen.mean(), "center": filled.mean(), "scale": filled.std(), "range": [seen.min(), seen.max()]}


def poison_held_out_rows(frame: pd.DataFrame, recipe: Recipe) -> tuple[pd.DataFrame, np.ndarray]:
    """The same table with wild values in the validation and test rows only (the split stays the same:
    it depends on the labels and the seed, not on the inputs)."""
    split = prepare(recipe, frame).split
    held = np.concatenate([split.val, split.test])
    frame = frame.copy()
    for column in frame.columns.drop("label"):
        if pd.api.types.is_numeric_dtype(frame[column]):
            frame.loc[frame.index[held], column] = 1000.0
    return frame, held


# ---------------------------------------------------------------------------------- leakage
def test_feature_statistics_come_from_training_rows_only(mixed_frame):
    recipe = Recipe.from_dict(tiny_recipe())
    frame, held = poison_held_out_rows(mixed_frame, recipe)
    frame.loc[frame.index[held], "colour"] = "purple"  # a level seen only outside training
    prep = prepare(recipe, frame)
    train = frame.iloc[prep.split.train]
    assert not set(held) & set(prep.split.train)
    states = {c["name"]: c["state"] for c in prep.pipeline.columns}
    for name in ("x1", "x2"):
        for key, value in numeric_state(train[name]).items():
            assert states[name][key] == pytest.approx(value), (name, key)
    vocab = set(states["colour"]["vocab"]) - {UNSEEN, MISSING}
    assert vocab == {level_key(v) for v in train["colour"].dropna()}
    assert "purple" not in vocab
    assert set(states["flag"]["levels"]) == set(train["flag"])


def test_target_scaling_comes_from_training_rows_only(regression_frame):
    recipe = Recipe.from_dict(tiny_recipe())
    prep0 = prepare(recipe, regression_frame)
    held = np.concatenate([prep0.split.val, prep0.split.test])
    frame = regression_frame.copy()
    frame.loc[held, "label"] += 1000.0
    prep = prepare(recipe, frame)
    train = frame["label"].iloc[prep.split.train]
    assert prep.pipeline.target["mean"] == pytest.approx([train.mean()])
    assert prep.pipeline.target["std"] == pytest.approx([train.std(ddof=0)])


# ------------------------------------------------------------------------ awkward tables
def test_integer_column_names_train_and_predict():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)))  # columns 0, 1, 2
    frame["label"] = np.where(frame[0] + frame[1] > 0, "up", "down")
    model = strata.train(tiny_recipe(), data=frame, quiet=True).model
    assert model.pipeline.input_names == ["0", "1", "2"]
    assert list(frame.columns) == [0, 1, 2, "label"]  # the caller's frame is left alone
    np.testing.assert_array_equal(model.predict_proba(frame), model.predict_proba(frame.rename(columns=str)))


def test_mixed_type_labels_train_with_classes_sorted_by_text():
    rng = np.random.default_rng(1)
    x = rng.normal(size=90)
    label = np.array([1, "a", 2.5], dtype=object)[np.digitize(x, [-0.4, 0.4])]
    model = strata.train(tiny_recipe(), data=pd.DataFrame({"x": x, "label": label}), quiet=True).model
    assert model.classes == [1, 2.5, "a"]
    assert set(model.predict(pd.DataFrame({"x": [-2.0, 0.0, 2.0]}))) <= {1, 2.5, "a"}


def test_infinite_values_are_named_at_training_and_at_predict(mixed_frame):
    bad = mixed_frame.copy()
    bad.loc[7, "x1"] = np.inf
    with pytest.raises(DataError, match=r"^column 'x1' has infinite values in row 7; replace them"):
        strata.train(tiny_recipe(), data=bad, quiet=True)
    model = strata.train(tiny_recipe(), data=mixed_frame, quiet=True).model
    rows = mixed_frame.head(4).copy()
    rows.loc[[1, 3], "x2"] = -np.inf
    with pytest.raises(DataError, match=r"^column 'x2' has infinite values in rows 1, 3; "):
        model.predict(rows)


def test_an_infinite_regression_target_is_named(regression_frame):
    bad = regression_frame.copy()
    bad.loc[12, "label"] = np.inf
    recipe = tiny_recipe(data={"target": "label", "task": "regression"})
    with pytest.raises(DataError, match=r"column 'label' has infinite values in row 12"):
        strata.train(recipe, data=bad, quiet=True)
