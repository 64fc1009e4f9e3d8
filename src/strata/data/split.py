"""Seeded train / validation / test splits, stratified by class for classification."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from strata.errors import DataError, plural
from strata.recipe import SplitConfig

MIN_TRAIN_ROWS = 2


class Split(NamedTuple):
    train: np.ndarray  # row positions
    val: np.ndarray
    test: np.ndarray


def part_sizes(n_rows: int, cfg: SplitConfig) -> dict[str, int]:
    """Rows in each part, rounded as scikit-learn's train_test_split rounds them (up for the held-out part)."""
    n_test = math.ceil(cfg.test * n_rows)
    rest = n_rows - n_test
    n_val = math.ceil(cfg.val / (1 - cfg.test) * rest) if cfg.val else 0
    return {"train": rest - n_val, "val": n_val, "test": n_test}


def problem(labels: np.ndarray | None, n_rows: int, cfg: SplitConfig, class_names: list | None = None) -> str | None:
    """Why this table cannot be split as `cfg` asks, or None. `labels` are class codes, when stratified."""
    sizes = part_sizes(n_rows, cfg)
    if sizes["train"] < MIN_TRAIN_ROWS:
        verb = "leaves" if n_rows == 1 else "leave"
        return (
            f"split: {plural(n_rows, 'row')} {verb} {plural(sizes['train'], 'row')} to train on "
            f"(test {cfg.test:g}, val {cfg.val:g}); use more data or smaller split.test / split.val"
        )
    if labels is None or not cfg.stratify:
        return None
    counts = np.bincount(labels)
    parts = {name: size for name, size in sizes.items() if size}
    for name, size in parts.items():
        if size < len(counts):
            return (
                f"split.stratify: the {name} part would have {plural(size, 'row')}, fewer than the "
                f"{len(counts)} classes; use more data, a larger split.{name} or split.stratify: false"
            )
    rarest = int(np.argmin(counts))
    if counts[rarest] < len(parts):
        name = class_names[rarest] if class_names else rarest
        return (
            f"split.stratify: class {name!r} has {plural(int(counts[rarest]), 'row')}, too few to appear in "
            f"each of the {len(parts)} parts; add rows, merge rare classes or set split.stratify: false"
        )
    return None


def holdout(
    labels: np.ndarray | None, n_rows: int, cfg: SplitConfig, seed: int, class_names: list | None = None
) -> Split:
    """Split row positions; `labels` (class codes) make it stratified when `cfg.stratify`.

    The validation fraction is of the whole table, so test=0.2, val=0.1 leaves 70% to train.
    """
    from sklearn.model_selection import train_test_split

    reason = problem(labels, n_rows, cfg, class_names)
    if reason:
        raise DataError(reason)
    strat = labels if cfg.stratify else None
    rows, empty = np.arange(n_rows), np.array([], dtype=np.int64)
    try:
        rest, test = (
            (rows, empty)
            if cfg.test == 0
            else train_test_split(rows, test_size=cfg.test, random_state=seed, stratify=strat)
        )
        train, val = (
            (rest, empty)
            if cfg.val == 0
            else train_test_split(
                rest,
                test_size=cfg.val / (1 - cfg.test),
                random_state=seed + 1,
                stratify=None if strat is None else strat[rest],
            )
        )
    except ValueError as err:  # a case `problem` does not foresee: still one line, naming the section
        raise DataError(f"split: {err}") from None
    return Split(np.sort(train), np.sort(val), np.sort(test))
