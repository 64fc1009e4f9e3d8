"""Seeded train / validation / test splits, stratified by class for classification."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from strata.errors import DataError
from strata.recipe import SplitConfig


class Split(NamedTuple):
    train: np.ndarray  # row positions
    val: np.ndarray
    test: np.ndarray


def holdout(
    labels: np.ndarray | None, n_rows: int, cfg: SplitConfig, seed: int, class_names: list | None = None
) -> Split:
    """Split row positions; `labels` (class codes) make it stratified when `cfg.stratify`.

    The validation fraction is of the whole table, so test=0.2, val=0.1 leaves 70% to train.
    """
    from sklearn.model_selection import train_test_split

    rows = np.arange(n_rows)
    strat = labels if cfg.stratify and labels is not None else None
    if strat is not None:
        _check_stratifiable(strat, cfg, class_names)
    empty = np.array([], dtype=np.int64)
    rest, test = (
        (rows, empty)
        if cfg.test == 0
        else train_test_split(rows, test_size=cfg.test, random_state=seed, stratify=strat)
    )
    if cfg.val == 0:
        return Split(np.sort(rest), empty, np.sort(test))
    train, val = train_test_split(
        rest, test_size=cfg.val / (1 - cfg.test), random_state=seed + 1, stratify=None if strat is None else strat[rest]
    )
    for name, part in (("train", train), ("test", test), ("val", val)):
        if len(part) == 0 and getattr(cfg, name, 1) != 0:
            raise DataError(f"split: the {name} part is empty with {n_rows} rows; use more data or change split")
    return Split(np.sort(train), np.sort(val), np.sort(test))


def _check_stratifiable(labels: np.ndarray, cfg: SplitConfig, class_names: list | None) -> None:
    counts = np.bincount(labels)
    parts = 1 + (cfg.test > 0) + (cfg.val > 0)
    rare = np.flatnonzero((counts > 0) & (counts < parts))
    if len(rare):
        name = class_names[rare[0]] if class_names else int(rare[0])
        raise DataError(
            f"split.stratify: class {name!r} has only {int(counts[rare[0]])} rows, too few to "
            f"appear in each of the {parts} splits; add rows, merge rare classes or set split.stratify: false"
        )
