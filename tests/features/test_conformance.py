"""Every registered feature type keeps the same contract: `fit(column, options) -> state` (plain JSON),
`transform(column, state)` (deterministic, row by row), and `slot` / `width` that describe its output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from strata.features.pipeline import KINDS, SLOTS

NUMERIC = {"impute": "mean", "fill_value": 0.0, "scale": "zscore", "missing_indicator": False}
CATEGORICAL = {"encoding": "auto", "max_onehot": 10, "embedding_dim": None, "min_frequency": 1}
RNG = np.random.default_rng(0)

# kind: [(column, options), ...]; a new kind needs its cases here before this suite passes.
WORDS = ["good", "bad", "great", "awful", "not", "really", "quite", "cheap"]
CASES = {
    "numeric": [
        (pd.Series([*RNG.normal(3, 2, 30), np.nan], name="x"), NUMERIC),
        (
            pd.Series([*RNG.normal(3, 2, 30), np.nan], name="x"),
            {**NUMERIC, "missing_indicator": True, "scale": "robust"},
        ),
        (pd.Series(RNG.integers(0, 5, 30), name="x"), {**NUMERIC, "impute": "median", "scale": "minmax"}),
    ],
    "categorical": [
        (pd.Series([*RNG.choice(["a", "b", "c"], 30), None], name="c"), {**CATEGORICAL, "encoding": "onehot"}),
        (pd.Series([*RNG.choice(["a", "b", "c"], 30), None], name="c"), {**CATEGORICAL, "encoding": "embedding"}),
        (pd.Series(RNG.integers(0, 40, 60), name="c"), {**CATEGORICAL, "min_frequency": 2}),
    ],
    "binary": [
        (pd.Series([*RNG.choice(["yes", "no"], 30), None], name="b"), {}),
        (pd.Series(RNG.choice([True, False], 30), name="b"), {}),
    ],
    "image": [
        (pd.Series(list(RNG.integers(0, 256, (12, 6, 5, 1), dtype=np.uint8)), name="img"), {}),
        (pd.Series(list(RNG.random((12, 4, 4, 3), dtype=np.float32)), name="img"), {}),
    ],
    "text": [
        (
            pd.Series([*(f"review {i} was {w} and fine" for i, w in enumerate(RNG.choice(WORDS, 30))), None], name="t"),
            {},
        ),
        (
            pd.Series([*(" ".join(RNG.choice(WORDS, 4)) for _ in range(30)), None], name="t"),
            {"tokenizer": "char", "max_length": 20},
        ),
        (
            pd.Series([" ".join(RNG.choice(WORDS, 6)) for _ in range(30)], name="t"),
            {"tokenizer": "bpe", "vocab_size": 60},
        ),
    ],
    "sequence": [
        (pd.Series([RNG.normal(size=int(n)) for n in RNG.integers(1, 9, 20)], name="s"), {}),
        (pd.Series([RNG.normal(size=(int(n), 3)) for n in RNG.integers(2, 9, 20)], name="s"), {"max_length": 5}),
    ],
}


def test_every_registered_kind_has_cases():
    assert set(CASES) == set(KINDS)


@pytest.mark.filterwarnings("ignore::strata.errors.StrataWarning")  # levels rarer than min_frequency warn
@pytest.mark.parametrize(
    ("kind", "column", "options"),
    [
        pytest.param(kind, column, options, id=f"{kind}-{i}")
        for kind, cases in CASES.items()
        for i, (column, options) in enumerate(cases)
    ],
)
def test_feature_kind_contract(kind, column, options):
    module = KINDS[kind]
    state = module.fit(column, options)
    stored = json.loads(json.dumps(state, allow_nan=False))  # plain JSON, nothing lost on the way
    assert stored == state

    values = module.transform(column, state)
    slot = module.slot(state)
    outputs = values if isinstance(values, dict) else {slot: values}  # a sequence also gives its lengths
    order = RNG.permutation(len(column))
    again, stored_out = module.transform(column, state), module.transform(column, stored)
    shuffled = module.transform(column.iloc[order], state)
    for name, out in outputs.items():
        expected_ndim = {"image": 4, "sequence": 3, "lengths": 1}.get(name, 2)
        assert out.shape[0] == len(column) and out.ndim == expected_ndim
        pick = (lambda v, n=name: v[n]) if isinstance(values, dict) else (lambda v: v)
        np.testing.assert_array_equal(pick(stored_out), out)  # a loaded bundle predicts the same
        np.testing.assert_array_equal(pick(again), out)  # deterministic
        np.testing.assert_array_equal(pick(shuffled), out[order])  # row by row
        assert name in SLOTS and out.dtype == SLOTS[name]
    out = outputs[slot]

    assert slot in SLOTS and out.dtype == SLOTS[slot]
    assert module.width(state) == (out.shape[1] if slot == "numeric" else 0)
    if slot in ("numeric", "image"):
        assert np.isfinite(out).all()  # missing values are filled, never passed on as NaN
    if slot == "image":  # (N, C, H, W), each channel normalised over the rows it was fitted on
        assert out.shape[1] == state["channels"] and list(out.shape[2:]) == state["size"]
        np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    if slot == "categorical":
        assert out.shape[1] == 1 and out.min() >= 0 and out.max() < len(state["vocab"])
    if slot == "text":  # ids within the vocabulary, padding (0) only after the last token
        assert out.min() >= 0 and out.max() < module.vocab_size(state)
        assert not ((out[:, :-1] == 0) & (out[:, 1:] != 0)).any()
    if slot == "sequence":  # scaled steps, zero padding after each row's length
        lengths = outputs["lengths"]
        assert lengths.min() >= 1 and lengths.max() <= state["max_length"] == out.shape[1]
        assert np.isfinite(out).all() and all((out[i, n:] == 0).all() for i, n in enumerate(lengths))
