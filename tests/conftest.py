"""Shared fixtures: small tables made here, with a fixed seed (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def no_runs_left_in_the_checkout():
    """A test that tracks runs must do it in its own folder, not in the checkout (nor let MLflow
    fall back to its own default store, ./mlflow.db or ./mlruns)."""
    names = ("strata-runs", "mlflow.db", "mlruns")
    before = {n for n in names if (ROOT / n).exists()}
    yield
    after = {n for n in names if (ROOT / n).exists()}
    assert after <= before, f"a test wrote {sorted(after - before)} into the checkout"


def tiny_recipe(**sections: object) -> dict:
    """A fast recipe on a generated table; sections given here replace the defaults."""
    recipe = {
        "data": {"target": "label"},
        "model": {"hidden": [16]},
        "train": {"epochs": 5, "batch_size": 16},
        "track": False,  # tracking is tested on its own, in tests/track
        "evaluate": False,  # plots, intervals and reports: tests/evaluation/test_run_evaluation.py
    }
    recipe.update(sections)
    return recipe


@pytest.fixture(scope="session")
def store_uri(tmp_path_factory) -> str:
    """A tracking store shared by the tests of one worker: opening a SQLite store costs seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    return make_mixed_frame()


def make_mixed_frame() -> pd.DataFrame:
    """200 rows: numeric (with gaps), categorical (with gaps), binary, and a learnable 3-class label."""
    rng = np.random.default_rng(0)
    n = 200
    x1 = rng.normal(size=n)
    x2 = rng.normal(5, 2, size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    flag = rng.choice(["yes", "no"], size=n)
    score = x1 + (colour == "red") * 1.5 - (flag == "yes") * 0.5
    label = np.where(score > 0.8, "high", np.where(score < -0.5, "low", "mid"))
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "flag": flag, "label": label})
    frame.loc[[3, 17, 40], "x2"] = np.nan
    frame.loc[[5, 9], "colour"] = None
    return frame


@pytest.fixture
def regression_frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 300
    x = rng.normal(size=(n, 3))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2] ** 2 + rng.normal(0, 0.1, n) + 10
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": y})


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    """Run the `strata` entry point in-process, as a user would; returns (exit code, stdout, stderr)."""
    import sys

    from strata.cli import main

    old, sys.argv = sys.argv, ["strata", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err
