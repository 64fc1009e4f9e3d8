"""Checkpoints and --resume: a run killed mid-training and resumed ends with the weights, bit for
bit, of a run never stopped; a damaged newest checkpoint is passed over for the one before it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

import strata
from strata.training import checkpoint
from strata.training.callbacks import Callback


def frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6))
    label = np.where(x[:, 0] + x[:, 1] * x[:, 2] > 0, "a", "b")
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]).assign(label=label)


def recipe(**train: object) -> dict:
    """Every random stream in play: dropout (torch RNG), batch order, noise augmentation, and a
    schedule and early stopping whose state must come back too."""
    return {
        "data": {"target": "label"},
        "model": {"hidden": [32, 16], "dropout": 0.2, "norm": "batch"},
        "train": {
            "epochs": 8,
            "batch_size": 32,
            "schedule": {"name": "cosine", "warmup_epochs": 1},
            "augment": [{"name": "noise", "std": 0.1}],
            "early_stopping": {"patience": 50, "monitor": "val_loss"},
            **train,
        },
        "track": False,
        "evaluate": False,
    }


class Crash(Callback):
    """Stands for a kill: the process dies at the end of `epoch`, before that epoch's checkpoint."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, trainer, logs) -> None:
        if logs["epoch"] == self.epoch:
            raise KeyboardInterrupt


def crashed(tmp_path: Path, data: pd.DataFrame, at: int = 5, **train: object) -> Path:
    out = tmp_path / "m"
    with pytest.raises(KeyboardInterrupt):
        strata.train(recipe(**train), data=data, out=out, quiet=True, callbacks=[Crash(at)])
    return out.with_name("m.checkpoints")


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def weights_of(result: strata.TrainResult) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in result.model.network.state_dict().items()}


# ------------------------------------------------------------------------------- the files
def test_a_crash_leaves_the_last_two_checkpoints_beside_the_bundle(tmp_path):
    folder = crashed(tmp_path, frame(), at=5)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["epoch-00003.json", "epoch-00003.safetensors", "epoch-00004.json", "epoch-00004.safetensors"]
    record = json.loads((folder / "epoch-00004.json").read_text())
    assert record["epoch"] == 4 and record["meta"]["recipe"] == strata.Recipe.from_dict(recipe()).hash()
    tensors = load_file(folder / "epoch-00004.safetensors")  # no pickle anywhere: safetensors and JSON
    assert "state.rng.torch" in tensors and "state.rng.order" in tensors and "state.rng.augment" in tensors
    assert any(k.startswith("state.callbacks.EarlyStopping.best_weights.") for k in tensors)
    assert not (tmp_path / "m").exists()  # no bundle: the run did not finish


def test_a_finished_run_removes_its_checkpoints(tmp_path):
    strata.train(recipe(epochs=3), data=frame(), out=tmp_path / "m", quiet=True)
    assert (tmp_path / "m" / "meta.json").is_file()
    assert not (tmp_path / "m.checkpoints").exists()


def test_in_memory_runs_write_no_checkpoints_unless_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        strata.train(recipe(epochs=3), data=frame(), quiet=True, callbacks=[Crash(3)])
    assert not (tmp_path / "strata-runs").exists()
    with pytest.raises(KeyboardInterrupt):
        strata.train(recipe(epochs=3, checkpoint={"every": 2}), data=frame(), quiet=True, callbacks=[Crash(3)])
    kept = [p.name for p in checkpoint.checkpoints(tmp_path / "strata-runs" / "checkpoints" / "model")]
    assert kept == ["epoch-00002.json"]  # every 2 epochs


# ------------------------------------------------------------------------------ resuming
@pytest.fixture(scope="module")
def uninterrupted() -> dict[str, torch.Tensor]:
    return weights_of(strata.train(recipe(), data=frame(), quiet=True))


def test_resume_after_a_crash_gives_the_uninterrupted_weights(tmp_path, uninterrupted):
    import random

    folder = crashed(tmp_path, frame(), at=5)
    random.seed(7), np.random.seed(7)
    expected = (random.random(), np.random.rand())
    random.seed(7), np.random.seed(7)
    result = strata.train(recipe(), data=frame(), out=tmp_path / "m", quiet=True, resume=folder)
    assert (random.random(), np.random.rand()) == expected  # the caller's generators are left as they were
    assert same_weights(weights_of(result), uninterrupted)
    assert [h["epoch"] for h in result.history] == list(range(1, 9))
    assert not folder.exists()


@pytest.mark.parametrize("damage", ["truncate tensors", "edit json", "cut json"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path, uninterrupted, damage):
    folder = crashed(tmp_path, frame(), at=5)
    if damage == "truncate tensors":
        blob = folder / "epoch-00004.safetensors"
        blob.write_bytes(blob.read_bytes()[:-100])
        expected = "truncated or damaged"
    elif damage == "edit json":
        text = (folder / "epoch-00004.json").read_text()
        (folder / "epoch-00004.json").write_text(text.replace('"epoch": 4', '"epoch": 5', 1))
        expected = "does not match its sha256"
    else:
        text = (folder / "epoch-00004.json").read_text()
        (folder / "epoch-00004.json").write_text(text[: len(text) // 2])
        expected = "cannot be read"
    with pytest.warns(strata.StrataWarning, match=rf"epoch-00004.*{expected}.*resuming from epoch 3 instead"):
        result = strata.train(recipe(), data=frame(), out=tmp_path / "m", quiet=True, resume=folder)
    assert same_weights(weights_of(result), uninterrupted)


def test_no_usable_checkpoint_is_a_one_line_error(tmp_path):
    folder = crashed(tmp_path, frame(), at=5)
    for blob in folder.glob("*.safetensors"):
        blob.write_bytes(b"")
    with pytest.raises(strata.StrataError, match=r"^no usable checkpoint in .*m\.checkpoints': .*truncated"):
        strata.train(recipe(), data=frame(), quiet=True, resume=folder)
    with pytest.raises(strata.StrataError, match=r"--resume: no checkpoint \(epoch-\*\.json\) in .*nothing-here"):
        strata.train(recipe(), data=frame(), quiet=True, resume=tmp_path / "nothing-here")


def test_resuming_with_another_recipe_or_data_is_refused(tmp_path):
    folder = crashed(tmp_path, frame(), at=3)
    with pytest.raises(strata.RecipeError, match=r"^--resume: the checkpoint in .* is of another recipe \(hash"):
        strata.train(recipe(batch_size=16), data=frame(), quiet=True, resume=folder)
    with pytest.raises(strata.DataError, match=r"^--resume: the data differs"):
        strata.train(recipe(), data=frame(500), quiet=True, resume=folder)
    # when checkpoints are written is not part of the recipe's identity
    assert strata.Recipe.from_dict(recipe(checkpoint={"every": 3})).hash() == strata.Recipe.from_dict(recipe()).hash()


def test_resume_continues_a_tracked_run_by_its_id(tmp_path, store_uri, uninterrupted):
    from strata.track.store import Store

    tracked = {**recipe(), "track": {"uri": store_uri, "experiment": "resume"}}
    with pytest.raises(KeyboardInterrupt):
        strata.train(tracked, data=frame(), out=tmp_path / "m", quiet=True, callbacks=[Crash(5)])
    store = Store.open(store_uri)
    first = store.all_runs("resume")[0]
    assert first.data.tags["strata.checkpoints"] == str((tmp_path / "m.checkpoints").resolve())
    result = strata.train(tracked, data=frame(), out=tmp_path / "m", quiet=True, resume=first.info.run_id[:10])
    assert same_weights(weights_of(result), uninterrupted)
    again = store.client.get_run(result.run_id)
    assert again.data.tags["strata.resumed_from"] == first.info.run_id
    assert store.client.get_run(first.info.run_id).info.status == "KILLED"
    steps = [m.step for m in store.client.get_metric_history(result.run_id, "train_loss")]
    assert sorted(steps) == list(range(1, 9))  # the interrupted run's epochs, then its own


# --------------------------------------------------------------------- a real kill, by the CLI
def test_sigkill_mid_training_then_resume_by_the_cli_is_bit_identical(tmp_path):
    """`strata train` killed with SIGKILL once a checkpoint exists; `--resume` ends where an
    uninterrupted run ends. (Threads pinned: float sums differ between thread counts.)"""
    data = frame(3000)
    data.to_csv(tmp_path / "table.csv", index=False)
    spec = recipe(epochs=40)
    spec["data"]["path"] = str(tmp_path / "table.csv")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "strata", "train", str(tmp_path / "recipe.yaml"), "--quiet"]

    subprocess.run([*cli, "--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    killed = subprocess.Popen([*cli, "--out", str(tmp_path / "m")], env=env, stderr=subprocess.PIPE)
    folder = tmp_path / "m.checkpoints"
    deadline = time.monotonic() + 120
    while not (folder / "epoch-00003.json").exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    kept = [int(p.stem.split("-")[1]) for p in checkpoint.checkpoints(folder)]
    assert 3 <= kept[0] < 40 and not (tmp_path / "m").exists()

    resumed = subprocess.run([*cli, "--out", str(tmp_path / "m"), "--resume", str(tmp_path / "m")], env=env,
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    ours, theirs = (
        load_file(tmp_path / "m" / "weights.safetensors"),
        load_file(tmp_path / "full" / "weights.safetensors"),
    )
    assert same_weights(ours, theirs)
    history = json.loads((tmp_path / "m" / "meta.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, 41))


def test_a_new_run_never_removes_an_unfinished_runs_checkpoints(tmp_path):
    folder = crashed(tmp_path, frame())
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(strata.errors.StrataError, match=r"holds checkpoints of an unfinished run .* --resume"):
        strata.train(recipe(), data=frame(), out=tmp_path / "m", quiet=True)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_a_resume_that_names_nothing_says_what_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(strata.StrataError, match=r"--resume 'typo': no checkpoint folder .* and no tracked run"):
        strata.train(recipe(), data=frame(), quiet=True, resume="typo")
