"""The examples in docstrings run and print what they show (pytest is not run with --doctest-modules)."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "strata",
        "strata.recipe",
        "strata.api",
        "strata.sklearn",
        "strata.models.sequence",
        "strata.data.forecast_spec",
        "strata.data.text_data",
    ],
)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
    assert result.attempted > 0 or name == "strata"  # the package's own examples are all +SKIP
