"""The benchmark script keeps working as the code under it changes (its numbers are read by people)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "bench" / "overhead.py"


@pytest.mark.parametrize("tool", ["floor", "trainer", "api"])
def test_each_tool_runs_and_reports(tool):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tool", tool, "--epochs", "1"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert record["tool"] == tool and record["sec_per_epoch"] > 0
    assert record["test_acc"] > 0.9  # the same task the floor learns, not a skipped one


def _quick_run(script: str, tool: str) -> dict:
    """One epoch on 1,000 training rows of a peer task: that it runs and learns something, not how fast."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT.with_name(script)), "--tool", tool, "--epochs", "1", "--rows", "1000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert record["tool"] == tool and record["sec_per_epoch"] > 0
    return record


@pytest.mark.parametrize("tool", ["floor", "trainer", "api"])
def test_each_cnn_tool_runs_and_reports(tool):
    record = _quick_run("cnn.py", tool)
    assert record["params"] == 121_930  # the peer's network, whichever tool built it
    assert record["test_acc"] > 0.2  # ten classes: well above chance after 16 steps


@pytest.mark.parametrize("tool", ["floor", "trainer", "api"])
def test_each_lstm_tool_runs_and_reports(tool):
    record = _quick_run("lstm.py", tool)  # 16 steps of 64 sequences
    assert record["params"] == 17_282  # LSTM(1, 64) + Linear(64, 2), whichever tool built it
    assert record["train_rows"] == 1000
    # Two balanced classes on 200 test sequences: measured 0.62 (floor, trainer) and 0.63 (api), and
    # 0.575 to 0.63 over eight other initial weights; chance is 0.50 (one standard error 0.035).
    assert record["test_acc"] > 0.55
