"""Seeded cross-validation folds, each with its own validation part for early stopping.

scikit-learn's splitters choose the held-out (test) part of every fold; this module only validates
the request up front, with errors that name what is wrong, and carves a validation part out of the
rest of each fold, so that early stopping never looks at the rows the fold is scored on.

============  ==========================================  ==============================================
kind          test parts                                  validation part (a `val` share of non-test rows)
============  ==========================================  ==============================================
kfold         KFold, shuffled                             random, stratified by `labels` when given
stratified    StratifiedKFold, shuffled (needs labels)    random, stratified by `labels`
group         GroupKFold, shuffled (needs groups): a      whole groups, so it shares none with test
              group is never in both train and test
repeated      RepeatedStratifiedKFold with labels, else   random, stratified by `labels` when given
              RepeatedKFold; `repeats` times
timeseries    TimeSeriesSplit: consecutive blocks after   the LAST rows before the test block: the
              an expanding window, `gap` rows skipped     future must not validate the past
============  ==========================================  ==============================================

"Stratified when given" falls back to a plain random draw when a class has too few non-test rows
to appear in both train and validation: the validation part only decides when to stop, and a fold
the splitter could make should not fail over it.

>>> [len(f.test) for f in folds(10, kind="kfold", k=3, seed=0)]
[4, 3, 3]
>>> f = folds(10, kind="timeseries", k=2, seed=0, val=0.25)[1]
>>> f.train.tolist(), f.val.tolist(), f.test.tolist()
([0, 1, 2, 3, 4], [5, 6], [7, 8, 9])
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from strata.errors import DataError, RecipeError, one_of, plural

KINDS = ("kfold", "stratified", "group", "repeated", "timeseries")
MIN_TRAIN_ROWS = 2


class Fold(NamedTuple):
    train: np.ndarray  # sorted int64 row positions
    val: np.ndarray
    test: np.ndarray
    index: int  # fold number within its repeat, from 0
    repeat: int  # from 0; always 0 unless kind is "repeated"


def folds(
    n_rows: int,
    *,
    kind: str,
    k: int,
    seed: int,
    labels: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    repeats: int = 1,
    val: float = 0.1,
    stratify_val: bool = True,
    gap: int = 0,
    class_names: list | None = None,
) -> list[Fold]:
    """The folds of `n_rows` rows; the same arguments always give the same folds.

    `labels` are class codes (one per row), `groups` any group keys (one per row); `class_names`
    only makes errors name a class by its name instead of its code.
    """
    labels, groups = _per_row(labels, n_rows, "labels"), _per_row(groups, n_rows, "groups")
    _check_options(kind, repeats, val, gap, groups)
    reason = problem(n_rows, kind=kind, k=k, labels=labels, groups=groups, gap=gap, class_names=class_names)
    if reason:
        raise DataError(reason)
    splitter = _splitter(kind, k, seed, repeats, gap, labeled=labels is not None)
    out = []
    try:
        for i, (rest, test) in enumerate(splitter.split(np.zeros((n_rows, 1)), labels, groups)):
            repeat, index = divmod(i, k)
            rng = np.random.default_rng([seed, repeat, index])
            train, val_rows = _carve_val(rest, kind, val, labels if stratify_val else None, groups, rng)
            fold = Fold(*(np.sort(part).astype(np.int64) for part in (train, val_rows, test)), index, repeat)
            _check_train(fold, k, kind)
            out.append(fold)
    except DataError:
        raise
    except ValueError as err:  # a case `problem` does not foresee: still one line, naming the function
        raise DataError(f"folds: {err}") from None
    return out


def problem(
    n_rows: int,
    *,
    kind: str,
    k: int,
    labels: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    gap: int = 0,
    class_names: list | None = None,
) -> str | None:
    """Why these rows cannot be cut into `k` folds of this kind, or None."""
    if k < 2:
        return f"folds: k is {k}; cross-validation needs k >= 2 folds"
    missing = _missing(kind, labels, groups)
    if missing:
        return missing
    if k > n_rows:
        return f"folds: k = {k} folds need at least {k} rows, got {plural(n_rows, 'row')}; use fewer folds"
    if kind == "stratified" or (kind == "repeated" and labels is not None):
        return _rarest_class(labels, k, class_names)
    if kind == "group":
        n_groups = len(np.unique(groups))
        if n_groups < k:
            return f"folds: {plural(n_groups, 'group')}, fewer than the k = {k} folds; use fewer folds"
    if kind == "timeseries":
        return _timeseries_problem(n_rows, k, gap)
    return None


def _per_row(values: np.ndarray | None, n_rows: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    values = np.asarray(values)
    if len(values) != n_rows:
        raise DataError(
            f"folds: {name} has {plural(len(values), 'value')} for {plural(n_rows, 'row')}; give one per row"
        )
    return values


def _check_options(kind: str, repeats: int, val: float, gap: int, groups: np.ndarray | None) -> None:
    """Options that are wrong whatever the data: a mistake in the call or recipe."""
    if kind not in KINDS:
        raise RecipeError(f"folds: kind {one_of(kind, KINDS)}")
    if not 0 <= val < 1:
        raise RecipeError(f"folds: val is {val}; expected a fraction in [0, 1)")
    if repeats < 1 or (repeats != 1 and kind != "repeated"):
        raise RecipeError(f"folds: repeats is {repeats}; expected 1, or any count >= 1 with kind 'repeated'")
    if gap < 0 or (gap and kind != "timeseries"):
        raise RecipeError(f"folds: gap is {gap}; expected 0, or any count >= 0 with kind 'timeseries'")
    if groups is not None and kind != "group":
        # silently ignoring them would let one group land in both train and test
        raise RecipeError(f"folds: groups were given but kind {kind!r} ignores them; use kind 'group'")


def _missing(kind: str, labels: np.ndarray | None, groups: np.ndarray | None) -> str | None:
    if kind == "stratified" and labels is None:
        return "folds: kind 'stratified' needs labels (class codes, one per row)"
    if kind == "group" and groups is None:
        return "folds: kind 'group' needs groups (a group key per row)"
    return None


def _rarest_class(labels: np.ndarray, k: int, class_names: list | None) -> str | None:
    classes, counts = np.unique(labels, return_counts=True)
    rarest = int(np.argmin(counts))
    if counts[rarest] >= k:
        return None
    code = classes[rarest]
    name = class_names[int(code)] if class_names else code.item()
    return (
        f"folds: class {name!r} has {plural(int(counts[rarest]), 'row')}, fewer than the k = {k} folds; "
        f"use fewer folds, merge rare classes or kind 'kfold'"
    )


def _timeseries_problem(n_rows: int, k: int, gap: int) -> str | None:
    """TimeSeriesSplit cuts the rows into k + 1 blocks: the first (less `gap`) is the first fold's training."""
    block = n_rows // (k + 1)
    if block == 0:
        return f"folds: kind 'timeseries' with k = {k} needs at least {k + 1} rows, got {n_rows}; use fewer folds"
    first_train = n_rows - k * block - gap
    if first_train < MIN_TRAIN_ROWS:
        return (
            f"folds: the first time-series fold has {plural(max(first_train, 0), 'row')} to train on "
            f"({n_rows} rows, k = {k}, gap = {gap}); use more data, fewer folds or a smaller gap"
        )
    return None


def _splitter(kind: str, k: int, seed: int, repeats: int, gap: int, labeled: bool):
    from sklearn import model_selection as ms

    if kind == "kfold":
        return ms.KFold(k, shuffle=True, random_state=seed)
    if kind == "stratified":
        return ms.StratifiedKFold(k, shuffle=True, random_state=seed)
    if kind == "group":
        return ms.GroupKFold(k, shuffle=True, random_state=seed)
    if kind == "repeated":
        repeated = ms.RepeatedStratifiedKFold if labeled else ms.RepeatedKFold
        return repeated(n_splits=k, n_repeats=repeats, random_state=seed)
    return ms.TimeSeriesSplit(k, gap=gap)


def _carve_val(
    rest: np.ndarray,
    kind: str,
    val: float,
    labels: np.ndarray | None,
    groups: np.ndarray | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) from a fold's non-test rows: a `val` share of them, rounded up as holdout rounds."""
    n_val = math.ceil(val * len(rest)) if val else 0
    if n_val == 0:
        return rest, rest[:0]
    if n_val >= len(rest):  # nothing left to train on: `_check_train` says so
        return rest[:0], rest
    if kind == "timeseries":  # `rest` is in time order
        return rest[:-n_val], rest[-n_val:]
    if groups is not None and len(np.unique(groups[rest])) > 1:
        return _val_by_groups(rest, groups[rest], n_val, rng)
    # One group left (k = 2 with 2 groups) can only be split by rows; it still shares no group with test.
    strat = labels[rest] if labels is not None and _can_stratify(labels[rest], n_val) else None
    from sklearn.model_selection import train_test_split

    train, val_rows = train_test_split(rest, test_size=n_val, random_state=int(rng.integers(2**31)), stratify=strat)
    return train, val_rows


def _val_by_groups(
    rest: np.ndarray, rest_groups: np.ndarray, n_val: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Whole groups, in a seeded order, until their rows come closest to `n_val`; at least one group
    each way, so a group seen in training never also decides when training stops."""
    _, inverse, counts = np.unique(rest_groups, return_inverse=True, return_counts=True)
    order = rng.permutation(len(counts))
    total = np.cumsum(counts[order])
    take = int(np.searchsorted(total, n_val)) + 1  # groups needed to reach n_val rows
    if take > 1 and n_val - total[take - 2] < total[take - 1] - n_val:
        take -= 1  # one group fewer comes closer
    take = min(take, len(counts) - 1)
    in_val = np.isin(inverse, order[:take])
    return rest[~in_val], rest[in_val]


def _can_stratify(rest_labels: np.ndarray, n_val: int) -> bool:
    """Whether every class can appear in both train and validation (what train_test_split requires)."""
    counts = np.unique(rest_labels, return_counts=True)[1]
    return counts.min() >= 2 and len(counts) <= n_val <= len(rest_labels) - len(counts)


def _check_train(fold: Fold, k: int, kind: str) -> None:
    if len(fold.train) >= MIN_TRAIN_ROWS:
        return
    where = f"fold {fold.index + 1} of {k}" + (f" (repeat {fold.repeat + 1})" if kind == "repeated" else "")
    raise DataError(
        f"folds: {where} leaves {plural(len(fold.train), 'row')} to train on "
        f"({len(fold.test)} test, {len(fold.val)} val); use more data, fewer folds or a smaller val"
    )
