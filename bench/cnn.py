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
alternating order, a check that no other process used the CPUs) is that of bench/overhead.py.

Usage:
  python bench/cnn.py                                    # every tool, fresh processes, a Markdown table
  python bench/cnn.py --rounds 5 --epochs 4
  python bench/cnn.py --tool floor|trainer|api --epochs N  # one measurement in this process, JSON
  python bench/cnn.py --tool api --epochs 1 --rows 1000    # a quick check that it runs (tests/bench)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import (  # the measurement machinery and the floor loop are shared with the MLP benchmark
    accuracy,
    busy_cpu_seconds,
    disturbed,
    hand_written_loop,
    machine_line,
    median_of,
    others_share,
    own_cpu_seconds,
    wait_for_quiet,
)

TOOLS = ("floor", "trainer", "api")
LABELS = {"floor": "floor (hand-written PyTorch)", "trainer": "strata (trainer)", "api": "strata (train API)"}
LR, BATCH, THREADS = 1e-3, 64, 2
N_TRAIN, N_TEST = 20_000, 4_000
TARGET_RATIO = 1.10


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


def n_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------- tools
def run_floor(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """The floor of peers.py, line for line, so its figures compare with the harness's."""

    model = floor_model()
    times, acc = hand_written_loop(model, data, epochs, BATCH, LR)
    return times, acc, {"params": n_params(model), "train_rows": len(data[0])}


def run_trainer(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """Strata's Trainer with the floor's data, seeds and initial weights: only the loop differs."""
    import torch

    from strata.data.batches import TensorSet
    from strata.recipe import OptimizerConfig, Seeds, TrainConfig
    from strata.training.callbacks import Callback
    from strata.training.trainer import Trainer

    class ImageNet(torch.nn.Module):
        """The floor's network, taking its input by name as strata's networks do."""

        def __init__(self) -> None:
            super().__init__()
            self.net = floor_model()

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.net(image)

    class EpochTimer(Callback):
        """Wall time from one epoch end to the next: everything the loop does, as the floor's timer."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_begin(self, trainer: Trainer) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
            now = time.perf_counter()
            self.times.append(now - self.start)
            self.start = now

    Xtr, ytr, Xte, yte = data
    model = ImageNet()
    cfg = TrainConfig(epochs=epochs, batch_size=BATCH, optimizer=OptimizerConfig(name="adam", lr=LR))
    timer = EpochTimer()
    # Seed 0 everywhere: the floor's batch order (Generator seeded 0); the weights come from manual_seed(0).
    trainer = Trainer(model, torch.nn.CrossEntropyLoss(), cfg, Seeds(0, 0, 0), callbacks=[timer])
    trainer.fit(TensorSet({"image": torch.from_numpy(Xtr)}, torch.from_numpy(ytr).long()))
    acc = accuracy(trainer.predict({"image": torch.from_numpy(Xte)}), yte)
    return timer.times, acc, {"params": n_params(model), "train_rows": len(Xtr)}


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


def run_api(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """strata.train end to end on a DataFrame of all 24,000 images; strata makes its own 80/20 split."""
    import numpy as np
    import pandas as pd

    import strata

    Xtr, ytr, Xte, yte = data
    pictures = np.concatenate([Xtr, Xte]).transpose(0, 2, 3, 1)  # (N, 28, 28, 1): height, width, channels
    frame = pd.DataFrame({"image": list(pictures), "label": np.concatenate([ytr, yte])})
    start = time.perf_counter()
    result = strata.train(api_recipe(epochs), data=frame, quiet=True)
    wall = time.perf_counter() - start
    times = [row["seconds"] for row in result.history]
    meta = result.model.meta
    params, train_rows = meta.get("n_parameters"), meta["rows"]["train"]
    return (
        times,
        float(result.metrics["test"]["accuracy"]),
        {"params": params, "train_rows": train_rows, "wall_s": round(wall, 3)},
    )


RUNNERS = {"floor": run_floor, "trainer": run_trainer, "api": run_api}


def measure(tool: str, epochs: int, rows: int = N_TRAIN) -> dict[str, Any]:
    """One measurement in this process; the first epoch is a warm-up and is not counted. `rows` < 20,000
    keeps the first `rows` training and `rows // 5` test images (a quick check, not a benchmark)."""
    import torch

    torch.set_num_threads(THREADS)
    busy0, own0, wall0 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    Xtr, ytr, Xte, yte = task_data()
    data = (Xtr[:rows], ytr[:rows], Xte[: rows // 5], yte[: rows // 5])
    times, acc, extra = RUNNERS[tool](data, epochs)
    others = others_share(busy0, own0, wall0)
    steady = times[1:] or times
    per_image = N_TRAIN / extra["train_rows"]  # scale to the floor's 20,000 training images
    return {
        "tool": tool,
        "epochs": epochs,
        "sec_per_epoch": round(statistics.median(steady) * per_image, 4),
        "min": round(min(steady) * per_image, 4),
        "max": round(max(steady) * per_image, 4),
        "raw_sec_per_epoch": round(statistics.median(steady), 4),
        "test_acc": round(acc, 4),
        "others_cpu": None if others is None else round(others, 3),
        **extra,
    }


# ---------------------------------------------------------------------- every tool, fresh processes
def run_child(tool: str, epochs: int, rows: int) -> dict[str, Any] | None:
    """One tool in a fresh interpreter (see overhead.py: the first model in a process can be slower)."""
    import subprocess

    cmd = [sys.executable, os.path.abspath(__file__), "--tool", tool, "--epochs", str(epochs), "--rows", str(rows)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        print(f"# {tool} failed (exit {out.returncode}): {out.stderr[-800:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def measure_quietly(tool: str, args: argparse.Namespace) -> dict[str, Any] | None:
    rec = None
    for _ in range(1 + args.retries):
        wait_for_quiet(args.busy, args.max_wait)
        rec = run_child(tool, args.epochs, args.rows)
        if rec is None or not disturbed(rec, args.busy):
            return rec
        print(
            f"# {tool} disturbed (others used {rec['others_cpu']:.0%} of the CPUs): {json.dumps(rec)}",
            file=sys.stderr,
            flush=True,
        )
    return rec


def run_rounds(tools: list[str], args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Alternate the order every round, so that drift in the machine's speed hits every tool alike."""
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    for r in range(args.rounds):
        for tool in tools if r % 2 == 0 else tools[::-1]:
            rec = measure_quietly(tool, args)
            if rec is not None:
                print(f"# round {r + 1}: {json.dumps(rec)}", file=sys.stderr, flush=True)
                results[tool].append(rec)
    return results


def table_row(tool: str, records: list[dict[str, Any]], floor: float | None) -> str:
    sec = median_of(records, "sec_per_epoch")
    spread = f"{min(r['sec_per_epoch'] for r in records):.3f} to {max(r['sec_per_epoch'] for r in records):.3f}"
    ratio = f"{sec / floor:.2f}" if floor else "-"
    wall = f"{median_of(records, 'wall_s'):.1f}" if "wall_s" in records[0] else "-"
    others = [r["others_cpu"] for r in records if r.get("others_cpu") is not None]
    busy = f"{max(others):.0%}" if others else "?"
    acc = median_of(records, "test_acc")
    params = records[0].get("params")
    params_cell = f"{params:,}" if params else "?"
    return f"| {LABELS[tool]} | {sec:.3f} | {spread} | {ratio} | {acc:.4f} | {params_cell} | {wall} | {busy} |"


def print_table(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    floor = median_of(results["floor"], "sec_per_epoch") if results.get("floor") else None
    print(f"Seconds per epoch: median over {args.rounds} fresh processes (alternating order) of the median of")
    print(
        f"{args.epochs - 1} timed epochs after a warm-up epoch, per {N_TRAIN:,} training images. "
        f"CNN conv32-conv64-dense64-10 on 28x28, batch {BATCH}."
    )
    print()
    print(
        "| tool | s/epoch (median) | range over processes | ratio to floor | test acc | parameters "
        "| whole call (s) | others' CPU (max) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for tool, records in results.items():
        if records:
            print(table_row(tool, records, floor))
    print()
    print(machine_line())
    for tool in ("trainer", "api"):
        if floor and results.get(tool):
            ratio = median_of(results[tool], "sec_per_epoch") / floor
            verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
            print(f"Target {LABELS[tool]} / floor <= {TARGET_RATIO:.2f}: {verdict} ({ratio:.2f}).")
    noisy = sum(disturbed(r, args.busy) for records in results.values() for r in records)
    if noisy:
        print(
            f"WARNING: other processes used over {args.busy:.0%} of the CPUs during {noisy} measurement(s); "
            f"these figures are not reliable. Re-run on a quiet machine."
        )


# ---------------------------------------------------------------------- command line
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tool", choices=TOOLS, help="measure one tool in this process and print one JSON line")
    ap.add_argument("--tools", default=",".join(TOOLS), help="tools to compare (without --tool)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per process, the first one a warm-up")
    ap.add_argument("--rows", type=int, default=N_TRAIN, help="training images (fewer: a quick check only)")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per tool (without --tool)")
    ap.add_argument("--busy", type=float, default=0.10, help="share of the CPUs used by others that disturbs")
    ap.add_argument("--retries", type=int, default=1, help="re-measurements of a disturbed process")
    ap.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for a quiet machine")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.tool:
        print(json.dumps(measure(args.tool, args.epochs, args.rows)), flush=True)
        return
    print_table(run_rounds(args.tools.split(","), args), args)


if __name__ == "__main__":
    main()
