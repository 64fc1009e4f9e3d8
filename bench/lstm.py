"""Strata's seconds per epoch against a hand-written PyTorch loop, on the LSTM task of the peer harness.

Task (as /work/shared/bench/peers.py, task lstm): 12,000 sequences of 50 steps of one feature, N(0, 1)
noise (default_rng(0)), label = (sum of the steps > 0); the first 10,000 train, the last 2,000 test.
Network LSTM(1 -> 64), its last hidden state -> Linear(64, 2) (17,282 parameters), Adam lr 1e-3,
batch 64, cross-entropy on 2 logits, 2 torch threads.

Tools:
  floor    the hand-written loop of peers.py: pre-made tensors, index slices of a seeded permutation.
  trainer  strata's Trainer on a TensorSet {"sequence": (N, 50, 1)}, the floor's network (same
           weights: built the same way after manual_seed(0)) taking `sequence=`; the same seeds, so
           it sees the same batches: only the loop differs.
  api      strata.train(recipe, data=DataFrame) end to end: a `sequence` column holding one (50,)
           float32 array per row (a univariate sequence) and a `label` column, model `lstm` configured
           as the floor's network (hidden_size 64, one layer, pooling last, no dense layers, init
           default), loss cross_entropy (2 logits, as the floor), no validation split, test 1/6 (so
           10,000 train). s/epoch is the history's `seconds` (data preparation excluded); the whole
           call is reported as wall time. Strata makes its own stratified split of the 12,000
           sequences, z-scores the steps with the training split's mean and standard deviation, and
           runs the LSTM on packed sequences (with the lengths, all 50 here).

Each timed number is the median of the epochs after a warm-up epoch; s/epoch is scaled to the floor's
10,000 training sequences where a tool trains on another count. Test accuracy is reported so that no
tool wins by skipping work, and parameter counts so that a reader sees the networks match. The method
(fresh processes, alternating order, a check that no other process used the CPUs) is that of
bench/overhead.py; the machinery lives in bench/peer_bench.py, shared with bench/cnn.py.

Usage:
  python bench/lstm.py                                    # every tool, fresh processes, a Markdown table
  python bench/lstm.py --rounds 5 --epochs 4
  python bench/lstm.py --tool floor|trainer|api --epochs N  # one measurement in this process, JSON
  python bench/lstm.py --tool api --epochs 1 --rows 1000    # a quick check that it runs (tests/bench)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import hand_written_loop  # the peers' floor loop, shared with the MLP benchmark
from peer_bench import LR, PeerTask, main, n_params, run_api, run_trainer

BATCH = 64
N_TRAIN, N_TEST = 10_000, 2_000
STEPS, HIDDEN = 50, 64


# ---------------------------------------------------------------------- the task (as peers.py)
def task_data() -> tuple[Any, Any, Any, Any]:
    """peers.py's lstm_data, line for line: (Xtr (10000, 50, 1) float32, ytr, Xte, yte)."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_TRAIN + N_TEST, STEPS, 1)).astype(np.float32)
    y = (X[:, :, 0].sum(1) > 0).astype(np.int64)
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


def floor_model() -> Any:
    """peers.py's torch_model('lstm'), seeded as there: LastLSTM."""
    import torch

    class LastLSTM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(1, HIDDEN, batch_first=True)
            self.head = torch.nn.Linear(HIDDEN, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _, (h, _) = self.lstm(x)
            return self.head(h[-1])

    torch.manual_seed(0)
    return LastLSTM()


# ---------------------------------------------------------------------- tools
def run_floor(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """The floor of peers.py, line for line, so its figures compare with the harness's."""
    model = floor_model()
    times, acc = hand_written_loop(model, data, epochs, BATCH, LR)
    return times, acc, {"params": n_params(model), "train_rows": len(data[0])}


def run_strata_trainer(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """Strata's Trainer with the floor's data, seeds and initial weights, the network taking `sequence=`."""
    return run_trainer(floor_model(), "sequence", data, epochs, BATCH)


def api_recipe(epochs: int, test: float = N_TEST / (N_TRAIN + N_TEST)) -> dict[str, Any]:
    """The floor's network and optimiser as a recipe; no validation pass."""
    return {
        "seed": 0,
        "data": {"target": "label", "task": "binary"},
        "features": {"columns": [{"name": "sequence", "type": "sequence"}]},
        "split": {"test": test, "val": 0.0},  # 1/6 of 12,000: 10,000 train, as the floor
        "track": False,  # the loop is measured here; tracking costs a few ms per epoch on top
        "evaluate": False,  # nor the bootstrap intervals, nor plots
        "model": {
            "type": "lstm",
            "hidden_size": HIDDEN,
            "layers": 1,
            "pooling": "last",
            "hidden": [],
            "dropout": 0.0,
            "init": "default",
        },
        "train": {
            "epochs": epochs,
            "batch_size": BATCH,
            "optimizer": {"name": "adam", "lr": LR},
            "loss": {"name": "cross_entropy"},  # 2 logits, as the floor (auto would pick bce, 1 logit)
        },
    }


def run_strata_api(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """strata.train end to end on a DataFrame of all 12,000 sequences; strata makes its own split."""
    import numpy as np
    import pandas as pd

    Xtr, ytr, Xte, yte = data
    steps = np.concatenate([Xtr, Xte])[:, :, 0]  # (N, 50): one univariate sequence per row
    frame = pd.DataFrame({"sequence": list(steps), "label": np.concatenate([ytr, yte])})
    return run_api(api_recipe(epochs, len(Xte) / len(steps)), frame)


TASK = PeerTask(
    name="lstm",
    script=str(Path(__file__).resolve()),
    description=__doc__,
    n_train=N_TRAIN,
    n_test=N_TEST,
    batch=BATCH,
    unit="training sequences",
    network=f"LSTM(1 -> {HIDDEN}) over {STEPS} steps, last hidden state -> Linear({HIDDEN}, 2)",
    task_data=task_data,
    runners={"floor": run_floor, "trainer": run_strata_trainer, "api": run_strata_api},
)

if __name__ == "__main__":
    main(TASK)
