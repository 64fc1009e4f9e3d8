"""The feature pipeline: fitted on training rows only, state is JSON, bad input is named."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import strata
from strata.data.sources import read_table
from strata.errors import DataError, RecipeError, StrataWarning
from strata.features import binary, categorical, numeric
from strata.features.pipeline import Pipeline, fit_pipeline, infer_kind
from strata.recipe import FeaturesConfig
from tests.conftest import tiny_recipe

NUM = {"impute": "mean", "fill_value": 0.0, "scale": "zscore", "missing_indicator": False}
CAT = {"encoding": "onehot", "embedding_dim": None, "min_frequency": 1, "max_onehot": 10}


def fit(frame: pd.DataFrame, rows: np.ndarray | None = None, **features: object) -> Pipeline:
    rows = np.arange(len(frame)) if rows is None else rows
    return fit_pipeline(frame, rows, FeaturesConfig(**features), ["label"], "multiclass", [])


# ---------------------------------------------------------------------------------- numeric
@pytest.mark.parametrize(("impute", "expected_fill"), [("mean", 2.0), ("median", 1.5), ("constant", -1.0)])
def test_numeric_imputation(impute, expected_fill):
    column = pd.Series([1.0, 1.5, 3.5, np.nan], name="x")
    state = numeric.fit(column, {**NUM, "impute": impute, "fill_value": -1.0, "scale": "none"})
    assert state["fill"] == pytest.approx(expected_fill)
    assert numeric.transform(column, state)[3, 0] == pytest.approx(expected_fill)


@pytest.mark.parametrize("scale", ["zscore", "minmax", "robust", "none"])
def test_numeric_scaling(scale):
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    out = numeric.transform(pd.Series(values), numeric.fit(pd.Series(values), {**NUM, "scale": scale}))[:, 0]
    expected = {
        "zscore": (values - values.mean()) / values.std(),
        "minmax": (values - 1) / 9,
        "robust": (values - 3) / 2,
        "none": values,
    }[scale]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_missing_indicator_column():
    column = pd.Series([1.0, np.nan, 3.0])
    state = numeric.fit(column, {**NUM, "missing_indicator": True})
    out = numeric.transform(column, state)
    assert out.shape == (3, 2)
    assert out[:, 1].tolist() == [0.0, 1.0, 0.0]


def test_constant_column_stays_finite():
    column = pd.Series([5.0, 5.0, 5.0])
    assert np.isfinite(numeric.transform(column, numeric.fit(column, NUM))).all()


def test_non_numeric_value_names_column_and_row():
    state = numeric.fit(pd.Series([1.0, 2.0], name="age"), NUM)
    with pytest.raises(DataError, match=r"column 'age' should be numeric but row 1 has 'abc'$"):
        numeric.transform(pd.Series(["3", "abc", None], name="age"), state)


def test_numeric_strings_are_accepted():
    state = numeric.fit(pd.Series([1.0, 2.0]), {**NUM, "scale": "none"})
    assert numeric.transform(pd.Series(["3.5", None]), state)[:, 0].tolist() == [3.5, 1.5]


# ------------------------------------------------------------------------------ categorical
def test_onehot_with_missing_level_and_unseen_warning():
    column = pd.Series(["a", "b", None, "a"], name="c")
    state = categorical.fit(column, CAT)
    assert state["vocab"] == ["<unseen>", "<missing>", "a", "b"]
    out = categorical.transform(pd.Series(["b", None], name="c"), state)
    assert out.tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.warns(StrataWarning, match=r"column 'c': 1 row has categories not in the training vocabulary \('z'\)"):
        unseen = categorical.transform(pd.Series(["z"], name="c"), state)
    assert unseen.tolist() == [[0, 0, 0]]


def test_embedding_indices_and_dimension_rule():
    levels = [f"l{i}" for i in range(40)]
    state = categorical.fit(pd.Series(levels * 2), {**CAT, "encoding": "auto"})
    assert state["encoding"] == "embedding"  # 40 levels > max_onehot
    assert state["embedding_dim"] == categorical.embedding_dim(40) == round(1.6 * 40**0.56)
    with pytest.warns(StrataWarning, match="'nope'"):
        codes = categorical.transform(pd.Series(["l0", "nope"]), state)
    assert codes.dtype == np.int64 and codes[:, 0].tolist() == [1, 0]


def test_rare_levels_fold_into_unknown():
    column = pd.Series(["a"] * 5 + ["b"] * 5 + ["rare"])
    state = categorical.fit(column, {**CAT, "min_frequency": 2})
    assert "rare" not in state["vocab"]


def test_integer_and_float_forms_of_a_level_match():
    state = categorical.fit(pd.Series([2007, 2008, 2009]), CAT)
    out = categorical.transform(pd.Series([2008.0, "2009"]), state)
    assert out.argmax(1).tolist() == [state["vocab"].index("2008") - 1, state["vocab"].index("2009") - 1]


# ---------------------------------------------------------------------------------- binary
def test_binary_maps_two_levels_and_imputes_mode():
    column = pd.Series(["no", "yes", "yes", None], name="flag")
    state = binary.fit(column, {})
    assert binary.transform(column, state)[:, 0].tolist() == [0, 1, 1, 1]
    with pytest.warns(StrataWarning, match="column 'flag': 1 row has values not seen in training"):
        binary.transform(pd.Series(["maybe"], name="flag"), state)


def test_binary_with_three_levels_is_refused():
    with pytest.raises(DataError, match="declared binary but has 3 levels"):
        binary.fit(pd.Series(["a", "b", "c"], name="x"), {})


# -------------------------------------------------------------------------------- pipeline
def test_type_inference_is_explained(mixed_frame):
    pipeline = fit(mixed_frame)
    kinds = {c["name"]: c["kind"] for c in pipeline.columns}
    assert kinds == {"x1": "numeric", "x2": "numeric", "colour": "categorical", "flag": "binary"}
    assert any(n.startswith("colour: categorical (3 distinct values)") for n in pipeline.notes)


def test_identifier_columns_are_skipped_with_a_note(mixed_frame):
    frame = mixed_frame.assign(customer=[f"id{i}" for i in range(len(mixed_frame))])
    pipeline = fit(frame)
    assert "customer" not in pipeline.input_names
    assert any("customer: skipped" in n and "identifier" in n for n in pipeline.notes)


def test_infer_kind_rules():
    assert infer_kind(pd.Series([True, False, True]))[0] == "binary"
    assert infer_kind(pd.Series([1, 2, 3, 1]))[0] == "categorical"
    assert infer_kind(pd.Series(np.arange(100)))[0] == "numeric"
    assert infer_kind(pd.Series([0.5, 1.5, 2.5]))[0] == "numeric"
    assert infer_kind(pd.Series(["same"] * 5))[0] is None


def test_statistics_come_from_training_rows_only(mixed_frame):
    train_rows = np.arange(100)
    pipeline = fit(mixed_frame, train_rows)
    x1 = next(c for c in pipeline.columns if c["name"] == "x1")["state"]
    assert x1["center"] == pytest.approx(mixed_frame["x1"].iloc[:100].mean())
    assert x1["center"] != pytest.approx(mixed_frame["x1"].mean())


def test_state_is_json_and_round_trips(mixed_frame):
    pipeline = fit(mixed_frame, columns=[{"name": "colour", "type": "categorical", "encoding": "embedding"}, "x1"])
    text = json.dumps(pipeline.to_json())
    again = Pipeline.from_json(json.loads(text))
    a, b = pipeline.transform(mixed_frame), again.transform(mixed_frame)
    assert a.keys() == b.keys() == {"numeric", "categorical"}
    np.testing.assert_array_equal(a["numeric"], b["numeric"])
    np.testing.assert_array_equal(a["categorical"], b["categorical"])
    assert a["categorical"].shape == (200, 1) and a["categorical"].dtype == np.int64
    assert a["numeric"].shape == (200, 1) and a["numeric"].dtype == np.float32


def test_listed_columns_only_and_per_column_options(mixed_frame):
    pipeline = fit(mixed_frame, columns=[{"name": "x2", "impute": "median", "missing_indicator": True}])
    assert pipeline.input_names == ["x2"]
    assert pipeline.numeric_width == 2


def test_missing_column_at_predict_is_named(mixed_frame):
    pipeline = fit(mixed_frame)
    with pytest.raises(DataError, match=r"data is missing column 'colour'.*the model needs: x1, x2, colour, flag"):
        pipeline.transform(mixed_frame.drop(columns=["colour"]))


def test_misspelt_column_gets_a_suggestion(mixed_frame):
    pipeline = fit(mixed_frame)
    with pytest.raises(DataError, match=r"missing column 'colour' \(did you mean 'color'\?\)"):
        pipeline.transform(mixed_frame.rename(columns={"colour": "color"}))


def test_wrong_dtype_at_predict(mixed_frame):
    pipeline = fit(mixed_frame)
    bad = mixed_frame.astype({"x1": object})
    bad.loc[7, "x1"] = "seven"
    with pytest.raises(DataError, match=r"column 'x1' should be numeric but row 7 has 'seven'"):
        pipeline.transform(bad)


def test_unseen_category_warns_but_predicts(mixed_frame):
    pipeline = fit(mixed_frame)
    new = mixed_frame.head(3).assign(colour=["purple", "red", "purple"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = pipeline.transform(new)
    assert inputs["numeric"].shape[0] == 3
    assert any("2 rows have categories not in the training vocabulary ('purple')" in str(w.message) for w in caught)


def test_unknown_columns_in_the_recipe_are_named(mixed_frame):
    with pytest.raises(DataError, match=r"features.columns: column 'colr' is not in the data \(did you mean 'colour'"):
        fit(mixed_frame, columns=["colr"])
    with pytest.raises(DataError, match="'label' is the target"):
        fit(mixed_frame, columns=["label"])


# ------------------------------------------------------------------------ awkward columns
def test_dates_listed_as_numeric_are_a_data_error(mixed_frame):
    frame = mixed_frame.assign(when=pd.date_range("2024-01-01", periods=len(mixed_frame)))
    with pytest.raises(
        DataError, match=r"^column 'when' holds dates or durations \(datetime64.*derive numbers from it"
    ):
        fit(frame, columns=["x1", {"name": "when", "type": "numeric"}])


def test_columns_that_cannot_be_used_are_skipped_with_a_note(mixed_frame):
    frame = mixed_frame.assign(
        when=pd.date_range("2024-01-01", periods=len(mixed_frame)),
        empty=np.nan,
        same="constant",
    )
    pipeline = fit(frame)
    assert pipeline.input_names == ["x1", "x2", "colour", "flag"]
    notes = "\n".join(pipeline.notes)
    assert "when: skipped (dates or durations" in notes
    assert "empty: skipped (every value is missing" in notes
    assert "same: skipped (a single value, 'constant'" in notes


def test_whole_numbers_with_gaps_are_read_like_whole_numbers(tmp_path):
    rating = [1, 2, 3, 2, 1, 3, 2, 4]
    pd.DataFrame({"rating": [*rating, None], "label": ["a", "b"] * 4 + ["a"]}).to_csv(tmp_path / "t.csv", index=False)
    from_csv = read_table(tmp_path / "t.csv")["rating"]
    assert from_csv.dtype == np.float64  # how pandas reads a whole-number column with a gap
    assert infer_kind(from_csv) == infer_kind(pd.Series(rating)) == ("categorical", "4 distinct whole numbers")
    assert infer_kind(pd.Series([0.5, 1.5, 2.5, np.nan]))[0] == "numeric"  # fractions stay numbers


def test_a_bad_value_under_a_repeated_index_label_is_one_line():
    state = numeric.fit(pd.Series([1.0, 2.0], name="age"), NUM)
    column = pd.Series(["3", "x", "4"], index=[5, 5, 6], name="age")  # e.g. after pd.concat
    with pytest.raises(DataError) as err:
        numeric.transform(column, state)
    assert str(err.value) == "column 'age' should be numeric but row 5 has 'x'"


def test_an_option_for_another_type_on_an_inferred_column_is_a_recipe_error(mixed_frame):
    recipe = tiny_recipe(features={"columns": ["x1", {"name": "colour", "scale": "minmax"}]})
    with pytest.raises(
        RecipeError,
        match=r"^features.columns: column 'colour' was read as categorical \(3 distinct values\), so option 'scale' would be ignored",
    ):
        strata.train(recipe, data=mixed_frame, quiet=True)


# ------------------------------------------------------------------ rows taken column by column
def test_transform_of_row_positions_equals_transform_of_those_rows(mixed_frame):
    """`transform(frame, rows)` (training's path: no copy of the table) gives what transforming the
    copied rows gives, for every kind of block: numeric with a missing indicator, one-hot, binary and
    embedding indices; and the target the same."""
    frame = mixed_frame.assign(big=np.random.default_rng(3).choice([f"l{i}" for i in range(30)], len(mixed_frame)))
    pipeline = fit(frame, np.arange(150), columns=[{"name": "x2", "missing_indicator": True}, "x1", "colour", "flag",
                                                   {"name": "big", "type": "categorical", "encoding": "embedding"}])  # fmt: skip
    rows = np.random.default_rng(4).permutation(len(frame))[:77]
    taken, copied = pipeline.transform(frame, rows), pipeline.transform(frame.iloc[rows])
    assert taken.keys() == copied.keys() == {"numeric", "categorical"}
    assert taken["numeric"].shape == (77, pipeline.numeric_width) and taken["numeric"].flags.c_contiguous
    for slot in taken:
        np.testing.assert_array_equal(taken[slot], copied[slot])
        assert taken[slot].dtype == copied[slot].dtype
    np.testing.assert_array_equal(pipeline.encode_target(frame, rows), pipeline.encode_target(frame.iloc[rows]))


def test_errors_from_row_positions_name_the_table_rows(mixed_frame):
    pipeline = fit(mixed_frame)
    bad = mixed_frame.astype({"x1": object})
    bad.loc[120, "x1"] = "oops"
    with pytest.raises(DataError, match=r"column 'x1' should be numeric but row 120 has 'oops'"):
        pipeline.transform(bad, np.arange(100, 130))


def test_statistics_from_row_positions_equal_those_of_the_copied_rows(mixed_frame):
    rows = np.arange(0, 200, 3)
    by_position = fit(mixed_frame, rows)
    by_copy = fit_pipeline(mixed_frame.iloc[rows].reset_index(drop=True), np.arange(len(rows)), FeaturesConfig(),
                           ["label"], "multiclass", [])  # fmt: skip
    assert by_position.to_json() == by_copy.to_json()


@pytest.mark.parametrize(
    "values",
    [[1, 2, 2, 3], [1.0, 2.5, np.nan, 2.0], np.array([0.1, 0.2], dtype=np.float32), [True, False, True],
     ["a", 1, None, 2.0], pd.array([1, None], dtype="Int64"), np.array([7, 7], dtype=np.uint8), []],
)  # fmt: skip
def test_row_keys_spell_every_row_as_level_key(values):
    """The distinct-values shortcut for numbers and booleans spells rows exactly as level_key does."""
    from strata._labels import level_key
    from strata.features._columns import row_keys

    column = pd.Series(values, dtype=None if len(values) else float)
    assert row_keys(column).tolist() == [level_key(v) for v in column.to_numpy(dtype=object)]


def test_a_fed_block_of_no_width_is_still_an_input():
    """A one-hot column whose levels are all rarer than min_frequency feeds `numeric` with no columns:
    the input is there, (N, 0), as the exported graphs and the runtime expect."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"rare": [f"r{i}" for i in range(60)], "c": rng.choice([f"l{i}" for i in range(30)], 60),
                          "label": rng.choice(["a", "b"], 60)})  # fmt: skip
    pipeline = fit(frame, columns=[{"name": "rare", "type": "categorical", "encoding": "onehot", "min_frequency": 5},
                                   {"name": "c", "type": "categorical", "encoding": "embedding"}])  # fmt: skip
    with pytest.warns(StrataWarning, match="not in the training vocabulary"):
        inputs = pipeline.transform(frame, np.arange(0, 60, 2))
    assert list(inputs) == ["numeric", "categorical"]
    assert inputs["numeric"].shape == (30, 0) and inputs["categorical"].shape == (30, 1)
