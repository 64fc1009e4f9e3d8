"""The target: which task it implies, and its classes in a stable order."""

from __future__ import annotations

import pandas as pd
import pytest

from strata.errors import DataError
from strata.features.target import classes_of, encode, fit, infer_task


@pytest.mark.parametrize("declared", ["auto", "multiclass", "binary"])
def test_a_single_class_is_a_data_error_whatever_the_task(declared):
    frame = pd.DataFrame({"y": ["same"] * 10})
    with pytest.raises(DataError, match=r"^target 'y' has a single value \('same'\); there is nothing to learn$"):
        infer_task(frame, ["y"], declared)


def test_mixed_type_labels_are_ordered_by_their_text():
    column = pd.Series([2.5, "a", 1, "a", 1.0, 2.5], dtype=object, name="y")
    assert classes_of(column) == [1, 2.5, "a"]  # 1 and 1.0 are one class
    state = fit(column.to_frame(), ["y"], "multiclass", "none")
    assert encode(column.to_frame(), state).tolist() == [1, 2, 0, 2, 0, 1]


def test_whole_numbers_read_as_classes_and_fractions_as_amounts():
    assert infer_task(pd.DataFrame({"y": [0, 1, 2, 1] * 5}), ["y"], "auto")[0] == "multiclass"
    assert infer_task(pd.DataFrame({"y": [0.5, 1.0, 2.0, 1.0] * 5}), ["y"], "auto")[0] == "regression"
    assert infer_task(pd.DataFrame({"y": [0, 1, 2, 1] * 5}), ["y"], "regression")[0] == "regression"
