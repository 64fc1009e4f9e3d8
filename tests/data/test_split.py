from __future__ import annotations

import numpy as np
import pytest

from strata.data.split import holdout
from strata.errors import DataError
from strata.recipe import SplitConfig


def test_parts_are_disjoint_and_cover_every_row():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    split = holdout(labels, 100, SplitConfig(test=0.2, val=0.1), seed=3)
    rows = np.concatenate(split)
    assert sorted(rows) == list(range(100))
    assert (len(split.train), len(split.val), len(split.test)) == (70, 10, 20)


def test_stratified_split_keeps_class_balance():
    labels = np.repeat([0, 1], [90, 10])
    split = holdout(labels, 100, SplitConfig(test=0.2, val=0.1), seed=0)
    assert np.bincount(labels[split.test]).tolist() == [18, 2]
    assert np.bincount(labels[split.val]).tolist() == [9, 1]


def test_same_seed_same_split_other_seed_other_split():
    labels = np.repeat([0, 1], 50)
    a, b = holdout(labels, 100, SplitConfig(), 1), holdout(labels, 100, SplitConfig(), 1)
    c = holdout(labels, 100, SplitConfig(), 2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a.test, c.test)


def test_no_validation_part():
    split = holdout(None, 50, SplitConfig(test=0.2, val=0.0), 0)
    assert len(split.val) == 0 and len(split.train) == 40


def test_class_too_rare_to_stratify_is_named():
    labels = np.array([0] * 30 + [1])
    with pytest.raises(
        DataError, match=r"class 'rare' has 1 row, too few to appear in each of the 3 parts.*split.stratify: false"
    ):
        holdout(labels, 31, SplitConfig(), 0, class_names=["common", "rare"])


@pytest.mark.parametrize("rows", [1, 2])
def test_a_table_too_small_to_split_is_a_data_error(rows):
    with pytest.raises(
        DataError,
        match=r"^split: .* to train on \(test 0.2, val 0.1\); use more data or smaller split.test / split.val$",
    ):
        holdout(None, rows, SplitConfig(), 0)


def test_more_classes_than_held_out_rows_is_a_data_error_not_scikit_learns():
    labels = np.arange(60) % 13  # 4 or 5 rows per class, but 13 classes cannot fit in 6 validation rows
    with pytest.raises(DataError) as err:
        holdout(labels, 60, SplitConfig(), 0)
    assert str(err.value) == (
        "split.stratify: the val part would have 6 rows, fewer than the 13 classes; "
        "use more data, a larger split.val or split.stratify: false"
    )
    split = holdout(labels, 60, SplitConfig(stratify=False), 0)  # the way out the message offers
    assert len(split.val) == 6
