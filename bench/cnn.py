"""Strata's seconds per epoch against a hand-written PyTorch loop, on the CNN task of the peer harness.

Task (as /work/shared/bench/peers.py, task cnn): 24,000 28x28 grayscale images made from sklearn's
digits (8x8, upsampled x3 to 24x24, placed at a seeded random offset inside 28x28); the first 20,000
train, the last 4,000 test. Network conv3x3(32)-ReLU-maxpool2-conv3x3(64)-ReLU-maxpool2-flatten-
dense64-ReLU-dense10 (no padding, no batch norm), Adam lr 1e-3, batch 64, cross-entropy on 10 logits,
2 torch threads.

Tools:
  floor    the hand-written loop of peers.py: pre-made tensors, index slices of a seeded permutation.
  trainer  strata's Trainer on a TensorSet {"image": (N, 1, 28, 28)}, the floor's network (same
           weights: built the same way after manual_seed(0)) taking `image=`; the same seeds, so it
           sees the same batches: only the loop differs.
  api      strata.train(recipe, data=DataFrame) end to end: an `image` column of (28, 28, 1) float32
           pictures and a `label` column, model `cnn` configured as the floor's network (channels
           [32, 64], kernel 3, padding valid, no batch norm, max pooling, flatten, hidden [64],
           init default), no validation split, test 0.2, no augmentation. s/epoch is the history's
           `seconds` (data preparation excluded); the whole call is reported as wall time. Strata
           makes its own stratified split of the 24,000 images (19,200 train) and normalises the
           pixels with the training split's mean and standard deviation.

Each timed number is the median of the epochs after a warm-up epoch; the trainer and api s/epoch are
scaled to the floor's 20,000 training images where they train on another count (the api's 19,200),
so the ratio compares work per image. Test accuracy is reported so that no tool wins by skipping
work, and parameter counts so that a reader sees the networks match. The method (fresh processes,
alternating order, a check that no other process used the CPUs) is that of bench/overhead.py; the
machinery lives in bench/peer_bench.py, shared with bench/lstm.py.

Usage:
  python bench/cnn.py                                    # every tool, fresh processes, a Markdown table
  python bench/cnn.py --rounds 5 --epochs 4
  python bench/cnn.py --tool floor|trainer|api --epochs N  # one measurement in this process, JSON
  python bench/cnn.py --tool api --epochs 1 --rows 1000    # a quick check that it runs (tests/bench)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import hand_written_loop  # the peers' floor loop, shared with the MLP benchmark
from peer_bench import LR, PeerTask, main, n_params, run_api, run_trainer

BATCH = 64
N_TRAIN, N_TEST = 20_000, 4_000


# ---------------------------------------------------------------------- the task (as peers.py)
def task_data() -> tuple[Any, Any, Any, Any]:
    """peers.py's cnn_data, line for line: (Xtr (20000, 1, 28, 28) float32 in [0, 1], ytr, Xte, yte)."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = d.images.astype(np.float32) / 16.0
    big = imgs.repeat(3, axis=1).repeat(3, axis=2)  # 24x24
    rng = np.random.default_rng(0)
    n = N_TRAIN + N_TEST
    src = rng.integers(0, len(big), n)
    off = rng.integers(0, 5, (n, 2))
    X = np.zeros((n, 1, 28, 28), np.float32)
    for i in range(n):
        X[i, 0, off[i, 0] : off[i, 0] + 24, off[i, 1] : off[i, 1] + 24] = big[src[i]]
    y = d.target[src]
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


def floor_model() -> Any:
    """peers.py's torch_model('cnn'), seeded as there."""
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 5 * 5, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


# ---------------------------------------------------------------------- tools
def run_floor(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """The floor of peers.py, line for line, so its figures compare with the harness's."""
    model = floor_model()
    times, acc = hand_written_loop(model, data, epochs, BATCH, LR)
    return times, acc, {"params": n_params(model), "train_rows": len(data[0])}


def run_strata_trainer(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """Strata's Trainer with the floor's data, seeds and initial weights, the network taking `image=`."""
    return run_trainer(floor_model(), "image", data, epochs, BATCH)


def api_recipe(epochs: int) -> dict[str, Any]:
    """The floor's network and optimiser as a recipe; no validation pass, no augmentation."""
    return {
        "seed": 0,
        "data": {"target": "label", "task": "multiclass"},
        "features": {"columns": [{"name": "image", "type": "image"}]},
        "split": {"test": 0.2, "val": 0.0},
        "track": False,  # the loop is measured here; tracking costs a few ms per epoch on top
        "evaluate": False,  # nor the bootstrap intervals, nor plots
        "model": {
            "type": "cnn",
            "channels": [32, 64],
            "kernel": 3,
            "stride": 1,
            "padding": "valid",
            "norm": "none",
            "activation": "relu",
            "pool": "max",
            "blocks_per_stage": 1,
            "global_pool": "flatten",
            "hidden": [64],
            "dropout": 0.0,
            "init": "default",
        },
        "train": {
            "epochs": epochs,
            "batch_size": BATCH,
            "optimizer": {"name": "adam", "lr": LR},
            "loss": {"name": "cross_entropy"},
            "augment": [],
        },
    }


def run_strata_api(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """strata.train end to end on a DataFrame of all 24,000 images; strata makes its own 80/20 split."""
    import numpy as np
    import pandas as pd

    Xtr, ytr, Xte, yte = data
    pictures = np.concatenate([Xtr, Xte]).transpose(0, 2, 3, 1)  # (N, 28, 28, 1): height, width, channels
    frame = pd.DataFrame({"image": list(pictures), "label": np.concatenate([ytr, yte])})
    return run_api(api_recipe(epochs), frame)


TASK = PeerTask(
    name="cnn",
    script=str(Path(__file__).resolve()),
    description=__doc__,
    n_train=N_TRAIN,
    n_test=N_TEST,
    batch=BATCH,
    unit="training images",
    network="CNN conv32-conv64-dense64-10 on 28x28",
    task_data=task_data,
    runners={"floor": run_floor, "trainer": run_strata_trainer, "api": run_strata_api},
)

if __name__ == "__main__":
    main(TASK)
