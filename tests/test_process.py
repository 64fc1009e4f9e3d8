"""Process tuning for CPU training (strata._process): applied once, never over the user's choices."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
import torch

from strata._process import physical_cores, use_channels_last

PROBE = (
    "import json, torch\nfrom strata._process import tune_for_training\n"
    "first = tune_for_training()\nsecond = tune_for_training()\n"
    "print(json.dumps({'malloc': first.malloc, 'threads': first.threads, 'skipped': first.skipped,"
    " 'same': first is second, 'torch_threads': torch.get_num_threads()}))"
)


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "STRATA_NO_TUNING", "OMP_", "MKL_"))}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env={**clean, **env}
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_raises_malloc_thresholds_once_on_glibc():
    result = _probe()
    assert result["malloc"] is True and result["same"] is True


def test_opt_out_changes_nothing():
    result = _probe(STRATA_NO_TUNING="1")
    assert result["malloc"] is False and result["threads"] is None
    assert result["skipped"] == ["STRATA_NO_TUNING is set"]


def test_the_users_settings_win():
    result = _probe(MALLOC_TRIM_THRESHOLD_="1000", OMP_NUM_THREADS="1")
    assert result["malloc"] is False and result["threads"] is None and result["torch_threads"] == 1
    assert any("environment" in reason for reason in result["skipped"])


def test_threads_are_never_raised():
    result = _probe()
    cores = physical_cores()
    assert result["threads"] is None or (cores is not None and result["threads"] == cores)
    assert cores is None or result["torch_threads"] <= max(cores, torch.get_num_threads())


def test_channels_last_only_for_cpu_convolutions(monkeypatch):
    monkeypatch.delenv("STRATA_NO_TUNING", raising=False)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
    assert use_channels_last(conv) is True
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    dense = torch.nn.Linear(3, 2)
    assert use_channels_last(dense) is False and dense.weight.is_contiguous()
    monkeypatch.setenv("STRATA_NO_TUNING", "1")
    assert use_channels_last(torch.nn.Conv2d(1, 4, 3)) is False


def test_trainer_gives_back_contiguous_weights_after_training_a_cnn():
    from strata.data.batches import TensorSet
    from strata.recipe import OptimizerConfig, Seeds, TrainConfig
    from strata.training.trainer import Trainer

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.head = torch.nn.Conv2d(1, 4, 3), torch.nn.Linear(4 * 6 * 6, 2)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.head(self.conv(image).flatten(1))

    net = Net()
    cfg = TrainConfig(epochs=1, batch_size=8, optimizer=OptimizerConfig(name="adam", lr=1e-3))
    Trainer(net, torch.nn.CrossEntropyLoss(), cfg, Seeds(0, 0, 0)).fit(
        TensorSet({"image": torch.randn(32, 1, 8, 8)}, torch.arange(32) % 2)
    )
    assert all(p.is_contiguous() for p in net.parameters())  # safetensors and exports need plain tensors


STREAM_PROBE = (
    "import json\nfrom strata._process import tune_for_streaming, tune_for_training\n"
    "alone = tune_for_streaming()\ntrained = tune_for_training()\n"
    "print(json.dumps({'alone': alone, 'after_training': tune_for_streaming(), 'trained': trained.malloc}))"
)


def test_batch_prediction_tuning_yields_to_training_and_to_the_user():
    """Batch prediction fixes glibc's mmap threshold low (memory given back after each chunk), but
    never in a process tuned for training (whose thresholds stay), nor over the user's settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "STRATA_NO_TUNING"))}

    def probe(**env: str) -> dict:
        done = subprocess.run([sys.executable, "-c", STREAM_PROBE], capture_output=True, text=True, check=True,
                              env={**clean, **env})  # fmt: skip
        return json.loads(done.stdout.strip().splitlines()[-1])

    glibc = platform.libc_ver()[0] == "glibc"
    assert probe() == {"alone": glibc, "after_training": False, "trained": glibc}
    assert probe(MALLOC_MMAP_THRESHOLD_="65536")["alone"] is False
    assert probe(STRATA_NO_TUNING="1")["alone"] is False
