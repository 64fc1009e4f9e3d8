"""Data-parallel training (strata.distributed): the shards of each batch, and `strata train --nproc 2`
on CPU (gloo) against the single-process run of the same recipe."""

from __future__ import annotations

import doctest
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file

import strata
from conftest import run_cli as run_in_process
from strata import distributed
from strata.api import as_recipe
from strata.data.batches import ShardedSet, TensorSet
from strata.errors import StrataError

HANG = 240  # seconds: far beyond a run's ~15 s, so only a hung process group reaches it


def rows_set(n: int) -> TensorSet:
    return TensorSet({"numeric": torch.arange(n, dtype=torch.float32)[:, None]}, torch.arange(n))


# ----------------------------------------------------------------------------- the shards
@given(n=st.integers(2, 90), size=st.integers(1, 20), world=st.integers(2, 5), seed=st.integers(0, 2**31))
def test_the_shards_of_each_batch_make_up_the_single_process_batch(n, size, world, seed):
    whole = rows_set(n)
    single = [t for _, t in whole.batches(size, torch.Generator().manual_seed(seed))]
    shards = [ShardedSet(whole, r, world) for r in range(world)]
    steps = [[t for _, t in s.batches(size, torch.Generator().manual_seed(seed))] for s in shards]
    assert all(len(parts) == shards[0].n_batches(size) for parts in steps)  # DDP hangs otherwise
    for k, batch in enumerate(single[: len(steps[0])]):
        assert torch.equal(torch.cat([parts[k] for parts in steps]), batch)  # rank order = row order
    for r, s in enumerate(shards):
        assert s.rows(size) == sum(len(t) for t in steps[r])
    dropped = single[len(steps[0]) :]  # only a trailing batch too small to give every process a row
    assert len(dropped) <= 1 and all(len(b) < world for b in dropped)


def test_a_process_share_of_each_step_weights_its_gradient():
    shards = [ShardedSet(rows_set(21), r, 2) for r in range(2)]  # batches of 8, 8 and 5 rows
    shares = []
    for s in shards:
        shares.append([s.share for _ in s.batches(8, torch.Generator().manual_seed(0))])
    assert shares == [[0.5, 0.5, 3 / 5], [0.5, 0.5, 2 / 5]]


def test_the_module_examples_run():
    result = doctest.testmod(distributed, report=True, verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_one_process_trains_as_it_always_did():
    model, data = torch.nn.Linear(1, 1), rows_set(10)
    assert not distributed.active() and distributed.is_main()
    assert distributed.wrap(model, data) is model
    assert distributed.data_parallel(as_recipe(recipe_dict()), data, None) == (data, None, [])


# ----------------------------------------------------------------------------- strata train --nproc
def recipe_dict() -> dict:
    """105 training rows in batches of 16: the last batch of 9 splits 5 + 4, so the gradient weights
    are exercised. Early stopping stops after epoch 4 (nothing improves by 1000), so the processes must
    agree to stop. No dropout: the processes draw their own masks (a single process draws others)."""
    return {
        "seed": 3,
        "data": {"dataset": "iris", "target": "species"},
        "model": {"hidden": [16], "dropout": 0.0},
        "train": {
            "epochs": 8,
            "batch_size": 16,
            "optimizer": {"name": "adam", "lr": 0.01},
            "early_stopping": {"monitor": "val_loss", "patience": 3, "min_delta": 1000, "restore_best": False},
        },
        "track": False,
        "evaluate": {"plots": False, "report": False, "bootstrap": 0},
    }


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m strata ARGS`; a run that outlives HANG seconds is ended with all its processes."""
    cmd = [sys.executable, "-m", "strata", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # torchrun passes it on to the training processes
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        pytest.fail(f"strata {' '.join(args)} did not finish in {HANG} s: a process group hung")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_two_processes_reach_the_single_process_weights(tmp_path):
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(recipe_dict()))
    single = strata.train(recipe_dict(), out=tmp_path / "single", quiet=True)
    done = run_cli("train", "iris.yaml", "--nproc", "2", "--out", "ddp", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((tmp_path / "ddp" / "meta.json").read_text())
    assert meta["rows"]["train"] % 16 == 9  # an uneven last batch was split
    # The processes' gradients are summed in another order than one process sums its rows': float32
    # rounding (about 1e-7 relative per step) is all that may differ, after 4 epochs of 7 steps.
    ours = load_file(tmp_path / "single" / "weights.safetensors")
    theirs = load_file(tmp_path / "ddp" / "weights.safetensors")
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(theirs[name], ours[name], atol=1e-5, rtol=0, msg=name)
    assert meta["stopped"] == single.model.meta["stopped"] and meta["epochs_run"] == 4
    for a, b in zip(meta["history"], single.history, strict=True):  # train loss over both processes' rows
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
    # Rank 0 alone prints and writes: one bundle, one "saved" line, nothing else in the folder.
    assert done.stdout.count("model saved to") == 1 and done.stdout.count("Metrics") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "iris.yaml", "single"]


def cli(capsys, *args: str) -> tuple[int, str]:
    code, _, err = run_in_process(capsys, *args)
    return code, err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--nproc", "0"], "--nproc: the number of processes must be at least 1, got 0"),
        (["--nproc", "2", "--seeds", "3"], "--nproc trains one model in several processes"),
        (
            ["--nproc", "2", "--set", "model.pretrained=models/x", "--set", "model.unfreeze_every=2"],
            "model.unfreeze_every: gradual unfreezing",
        ),
    ],
)
def test_what_cannot_run_in_processes_is_a_one_line_error(capsys, tmp_path, args, says):
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(recipe_dict()))
    code, err = cli(capsys, "train", str(tmp_path / "iris.yaml"), "--out", str(tmp_path / "m"), *args)
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ") and says in err
    assert not (tmp_path / "m").exists()


def test_nproc_inside_torchrun_is_a_one_line_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(recipe_dict()))
    code, err = cli(capsys, "train", str(tmp_path / "iris.yaml"), "--nproc", "2")
    assert code == 1 and "started by torchrun already" in err


def test_resume_under_torchrun_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it; rank 0 alone would resume
    with pytest.raises(StrataError, match="continues a run in one process"):
        strata.train(recipe_dict(), resume="models/iris.checkpoints")
