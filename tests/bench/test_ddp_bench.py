"""bench/ddp.py keeps working (its figures are read by people, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[2] / "bench" / "ddp.py"


@pytest.mark.slow  # two torchrun launches, about 40 s on a busy 2-core machine
def test_one_and_two_processes_run_and_report():
    args = ["--rows", "2000", "--epochs", "2", "--rounds", "1", "--max-wait", "0", "--timeout", "240"]
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line.split(": ", 1)[1]) for line in done.stderr.splitlines() if line.startswith("# round")]
    assert [r["nproc"] for r in rows] == [1, 2] and all(r["samples_per_s"] > 0 for r in rows)
    assert rows[0]["test_acc"] == pytest.approx(rows[1]["test_acc"], abs=0.01)  # the same global batches
    assert "| 2 |" in done.stdout and "scaling efficiency" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message printed where there is no GPU")
def test_the_gpu_part_skips_cleanly_without_a_gpu():
    done = subprocess.run([sys.executable, str(SCRIPT), "--gpu"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "no CUDA GPU here" in done.stdout
