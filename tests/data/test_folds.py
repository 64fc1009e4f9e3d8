from __future__ import annotations

import doctest
import math
import re

import numpy as np
import pytest

from strata.data.folds import folds
from strata.errors import DataError, RecipeError

LABELS = np.repeat([0, 1, 2], [60, 30, 10])
GROUPS = np.repeat(np.arange(20), 5)  # 20 groups of 5 rows


def _kwargs(kind):
    return {
        "kfold": {},
        "stratified": {"labels": LABELS},
        "group": {"groups": GROUPS},
        "repeated": {"labels": LABELS, "repeats": 2},
        "timeseries": {},
    }[kind]


@pytest.mark.parametrize("kind", ["kfold", "stratified", "group", "repeated", "timeseries"])
def test_parts_are_sorted_disjoint_int64_positions(kind):
    for fold in folds(100, kind=kind, k=5, seed=0, **_kwargs(kind)):
        parts = [fold.train, fold.val, fold.test]
        assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in parts)
        rows = np.concatenate(parts)
        assert len(np.unique(rows)) == len(rows)
        wanted = math.ceil(0.1 * (len(fold.train) + len(fold.val)))
        slack = 5 if kind == "group" else 0  # val takes whole groups (of 5 rows here), as near the share as they come
        assert abs(len(fold.val) - wanted) <= slack and len(fold.val) > 0


@pytest.mark.parametrize("kind", ["kfold", "stratified", "group", "repeated"])
def test_test_parts_of_each_repeat_cover_every_row_once(kind):
    result = folds(100, kind=kind, k=5, seed=0, **_kwargs(kind))
    for repeat in {f.repeat for f in result}:
        tests = [f.test for f in result if f.repeat == repeat]
        assert [f.index for f in result if f.repeat == repeat] == list(range(5))
        assert sorted(np.concatenate(tests)) == list(range(100))
        for f in result:  # every fold uses all rows
            assert len(f.train) + len(f.val) + len(f.test) == 100


@pytest.mark.parametrize("kind", ["kfold", "stratified", "group", "repeated"])
def test_same_seed_same_folds_other_seed_other_folds(kind):
    a, b = (folds(100, kind=kind, k=5, seed=1, **_kwargs(kind)) for _ in range(2))
    c = folds(100, kind=kind, k=5, seed=2, **_kwargs(kind))
    assert all(np.array_equal(x, y) for fa, fb in zip(a, b, strict=True) for x, y in zip(fa[:3], fb[:3], strict=True))
    assert any(not np.array_equal(fa.test, fc.test) for fa, fc in zip(a, c, strict=True))


def test_stratified_folds_keep_class_balance_in_test_and_val():
    for fold in folds(100, kind="stratified", k=5, seed=0, labels=LABELS):
        assert np.bincount(LABELS[fold.test]).tolist() == [12, 6, 2]
        assert np.bincount(LABELS[fold.val], minlength=3).tolist() == [5, 2, 1]


def test_kfold_stratifies_val_by_labels_unless_told_not_to():
    kept = folds(100, kind="kfold", k=5, seed=0, labels=np.repeat([0, 1], [90, 10]))
    assert all(np.bincount(np.repeat([0, 1], [90, 10])[f.val], minlength=2)[1] >= 1 for f in kept)
    plain = folds(100, kind="kfold", k=5, seed=0, labels=LABELS, stratify_val=False)
    assert [len(f.val) for f in plain] == [8] * 5


def test_no_validation_part():
    for fold in folds(50, kind="kfold", k=5, seed=0, val=0.0):
        assert len(fold.val) == 0 and len(fold.train) == 40


def test_a_group_never_in_both_test_and_train_or_val():
    for fold in folds(100, kind="group", k=5, seed=0, groups=GROUPS):
        test_groups = set(GROUPS[fold.test])
        assert not test_groups & set(GROUPS[fold.train]) and not test_groups & set(GROUPS[fold.val])
        assert not set(GROUPS[fold.val]) & set(GROUPS[fold.train])  # val is drawn by whole groups


def test_group_keys_may_be_strings():
    groups = np.array([f"patient-{i // 4}" for i in range(24)])
    for fold in folds(24, kind="group", k=3, seed=0, groups=groups, val=0.2):
        assert not set(groups[fold.test]) & (set(groups[fold.train]) | set(groups[fold.val]))


def test_repeated_folds_number_their_repeats():
    result = folds(100, kind="repeated", k=4, seed=0, repeats=3)
    assert [(f.repeat, f.index) for f in result] == [(r, i) for r in range(3) for i in range(4)]
    assert not np.array_equal(result[0].test, result[4].test)


def test_timeseries_tests_are_later_blocks_after_a_gap_and_val_is_the_latest_training_rows():
    result = folds(60, kind="timeseries", k=3, seed=0, gap=2, val=0.2)
    assert [f.test.tolist() for f in result] == [list(range(s, s + 15)) for s in (15, 30, 45)]
    for fold in result:
        rest = np.concatenate([fold.train, fold.val])
        assert rest.tolist() == list(range(fold.test[0] - 2))  # everything before the gap
        assert fold.train.max() < fold.val.min()
        assert len(fold.val) == math.ceil(0.2 * len(rest))


def test_timeseries_ignores_the_seed():
    a, b = folds(30, kind="timeseries", k=3, seed=0), folds(30, kind="timeseries", k=3, seed=9)
    assert all(np.array_equal(x.val, y.val) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"n_rows": 10, "kind": "kfold", "k": 1}, "folds: k is 1; cross-validation needs k >= 2 folds"),
        (
            {"n_rows": 4, "kind": "kfold", "k": 5},
            "folds: k = 5 folds need at least 5 rows, got 4 rows; use fewer folds",
        ),
        (
            {"n_rows": 10, "kind": "stratified", "k": 3},
            "folds: kind 'stratified' needs labels (class codes, one per row)",
        ),
        ({"n_rows": 10, "kind": "group", "k": 3}, "folds: kind 'group' needs groups (a group key per row)"),
        (
            {"n_rows": 10, "kind": "group", "k": 3, "groups": [0] * 5 + [1] * 5},
            "folds: 2 groups, fewer than the k = 3 folds; use fewer folds",
        ),
        (
            {"n_rows": 10, "kind": "kfold", "k": 3, "labels": [0] * 9},
            "folds: labels has 9 values for 10 rows; give one per row",
        ),
        (
            {"n_rows": 4, "kind": "timeseries", "k": 3, "gap": 1},
            "folds: the first time-series fold has 0 rows to train on (4 rows, k = 3, gap = 1); use more data, fewer folds or a smaller gap",
        ),
        (
            {"n_rows": 6, "kind": "kfold", "k": 3, "val": 0.75},
            "folds: fold 1 of 3 leaves 1 row to train on (2 test, 3 val); use more data, fewer folds or a smaller val",
        ),
    ],
)
def test_impossible_folds_are_one_line_data_errors(args, message):
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        folds(seed=0, **args)


@pytest.mark.parametrize("kind", ["stratified", "repeated"])
def test_class_rarer_than_k_is_named(kind):
    labels = np.array([0] * 30 + [1] * 3)
    with pytest.raises(
        DataError,
        match=r"^folds: class 'rare' has 3 rows, fewer than the k = 5 folds; use fewer folds, merge rare classes or kind 'kfold'$",
    ):
        folds(33, kind=kind, k=5, seed=0, labels=labels, class_names=["common", "rare"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"kind": "kfolds"}, r"folds: kind 'kfolds' is not one of .* \(did you mean 'kfold'\?\)"),
        (
            {"kind": "kfold", "groups": np.arange(20)},
            "groups were given but kind 'kfold' ignores them; use kind 'group'",
        ),
        ({"kind": "kfold", "repeats": 3}, "repeats is 3; expected 1, or any count >= 1 with kind 'repeated'"),
        ({"kind": "kfold", "gap": 2}, "gap is 2; expected 0, or any count >= 0 with kind 'timeseries'"),
        ({"kind": "kfold", "val": 1.0}, r"val is 1.0; expected a fraction in \[0, 1\)"),
    ],
)
def test_options_that_cannot_work_are_recipe_errors(args, message):
    with pytest.raises(RecipeError, match=message):
        folds(20, k=2, seed=0, **args)


def test_docstring_examples_run():
    import strata.data.folds as module

    result = doctest.testmod(module, report=True, verbose=False)
    assert result.failed == 0 and result.attempted > 0
