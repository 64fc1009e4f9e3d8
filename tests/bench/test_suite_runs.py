"""The suite's scripts keep working (bench/peers.py, bench/scaling.py): that they run, not how fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


def _run(script: str, *argv: str) -> str:
    done = subprocess.run([sys.executable, str(BENCH / script), *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_peers_table_has_strata_and_the_floor_and_names_what_it_skipped():
    out = _run("peers.py", "--tasks", "lstm", "--tools", "floor,strata,keras", "--rounds", "1",
               "--epochs", "1", "--rows", "500", "--max-wait", "0")  # fmt: skip
    assert "| floor (hand-written PyTorch) |" in out and "| strata (recipe) |" in out
    try:
        import keras  # noqa: F401  (not a dependency: measured only where it is installed)
    except ImportError:
        assert "Not measured in this run" in out and "Keras 3 (torch) 2.59" in out


@pytest.mark.slow  # three processes that each train or predict: about a minute
def test_scaling_reports_training_and_batch_prediction():
    out = _run("scaling.py", "--sizes", "1000", "--predict-sizes", "1000", "--epochs", "2")
    assert "| 1,000 | 800 |" in out
    assert "| csv | 1,000 |" in out and "| parquet | 1,000 |" in out


def test_tuning_modes_run():
    import json

    record = json.loads(_run("tuning.py", "--mode", "nhwc", "--rows", "300", "--epochs", "2").strip().splitlines()[-1])
    assert record["mode"] == "nhwc" and record["fit_minflt"] > 0 and record["cpu_s_per_epoch"] > 0
