"""Issue 5's held-out accuracy targets, with the example recipes and fixed seeds (slow: `make test-slow`).

digits as 8x8 pictures with a CNN: >= 0.985 on average over three seeds, each >= 0.98. MNIST-1D: a 1-D CNN >= 0.94, an MLP near the paper's
0.68 (Greydanus 2020: logistic regression 32%, MLP 68%, CNN 94%).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import strata

EXAMPLES = Path(__file__).parent.parent / "examples"
pytestmark = pytest.mark.slow


def accuracy(recipe: str, seed: int) -> float:
    spec = strata.Recipe.from_yaml(EXAMPLES / recipe).override({"seed": seed, "track": False, "evaluate": False})
    return strata.train(spec, quiet=True).metrics["test"]["accuracy"]


def test_a_cnn_reads_the_digits():
    # The target is the mean over three seeds; each seed may fall one or two test images (of 360) short
    # of it: a change in the order of float sums (channels-last convolutions, issue 9) moved seed 2
    # from 355 to 354 right, 0.986 -> 0.983, without making the model any worse.
    scores = [accuracy("digits_cnn.yaml", seed) for seed in (0, 1, 2)]
    assert sum(scores) / 3 >= 0.985 and min(scores) >= 0.98, scores


def test_a_1d_cnn_reads_mnist1d():
    assert accuracy("mnist1d_cnn1d.yaml", 0) >= 0.94


def test_an_mlp_on_mnist1d_is_near_the_paper():
    assert 0.6 <= accuracy("mnist1d_mlp.yaml", 0) <= 0.8
