"""Strata's training-loop overhead over a hand-written PyTorch loop, on the MLP task of the peer harness.

Task (as /work/shared/bench/peers.py, task mlp): make_classification(100_000 x 32, 16 informative,
random_state=0), 80/20 split, standardised; MLP 32-256-256-2 ReLU, Adam lr 1e-3, batch 256,
cross-entropy on 2 logits, 2 torch threads.

Tools:
  floor    the hand-written loop of peers.py: pre-made tensors, index slices of a seeded permutation.
  trainer  strata's Trainer on a TensorSet, the network from strata's builder (init "default", so it
           starts from the same weights as the floor and sees the same batches): loop overhead only.
  api      strata.train(recipe, data=DataFrame) end to end, no validation split; s/epoch is the
           history's `seconds` (data preparation excluded), the whole call is reported as wall time.

Each timed number is the median of the epochs after a warm-up epoch. Test accuracy is reported so
that no tool wins by skipping work. Every measurement also reports the share of the CPUs that other
processes used meanwhile: on a 2-core machine two torch threads slow down many-fold when anything
else runs, so the table run waits for an idle machine, re-measures a disturbed process and warns
when a disturbed one remains.

Usage:
  python bench/overhead.py                                  # every tool, fresh processes, a Markdown table
  python bench/overhead.py --rounds 5 --epochs 8
  python bench/overhead.py --tool floor|trainer|api --epochs N  # one measurement in this process, JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

TOOLS = ("floor", "trainer", "api")
LABELS = {"floor": "floor (hand-written PyTorch)", "trainer": "strata (trainer)", "api": "strata (train API)"}
LR, BATCH, THREADS = 1e-3, 256, 2
TARGET_RATIO = 1.10
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


# ---------------------------------------------------------------------- the task (as peers.py)
def task_data() -> tuple[Any, Any, Any, Any]:
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=100_000, n_features=32, n_informative=16, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    s = StandardScaler().fit(Xtr)
    return s.transform(Xtr).astype(np.float32), ytr, s.transform(Xte).astype(np.float32), yte


def floor_model() -> Any:
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))


def accuracy(outputs: Any, yte: Any) -> float:
    return float((outputs.argmax(1).numpy() == yte).mean())


# ---------------------------------------------------------------------- tools
def run_floor(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """The floor of peers.py, line for line, so its figures compare with the harness's."""

    times, acc = hand_written_loop(floor_model(), data, epochs, BATCH, LR)
    return times, acc, {}


def hand_written_loop(model: Any, data: tuple, epochs: int, batch: int, lr: float) -> tuple[list[float], float]:
    """The peers' floor: Adam on cross-entropy over index slices of a seeded permutation; the time
    of each epoch and the test accuracy. bench/cnn.py runs it too."""
    import torch

    Xtr, ytr, Xte, yte = data
    X, y = torch.from_numpy(Xtr), torch.from_numpy(ytr).long()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    lossf = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        model.train()
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), batch):
            idx = perm[i : i + batch]
            opt.zero_grad(set_to_none=True)
            lossf(model(X[idx]), y[idx]).backward()
            opt.step()
        times.append(time.perf_counter() - t)
    model.eval()
    with torch.no_grad():
        return times, accuracy(model(torch.from_numpy(Xte)), yte)


def epoch_timer() -> Any:
    """A callback timing each epoch from one epoch end to the next: everything the loop does, as the
    floor's timer. `.times` holds the seconds (bench/peer_bench.py uses it too)."""
    from strata.training.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_begin(self, trainer: Any) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
            now = time.perf_counter()
            self.times.append(now - self.start)
            self.start = now

    return EpochTimer()


def run_trainer(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """Strata's Trainer with the floor's data, seeds and initial weights: only the loop differs."""
    from types import SimpleNamespace

    import torch

    from strata.data.batches import TensorSet
    from strata.models import build
    from strata.recipe import MLPConfig, OptimizerConfig, Seeds, TrainConfig
    from strata.training.trainer import Trainer

    Xtr, ytr, Xte, yte = data
    # The builder reads only the input shape from a fitted pipeline; 32 numbers, no embeddings.
    shape = SimpleNamespace(numeric_width=Xtr.shape[1], embeddings=[], columns=[], column_for=lambda slot: None)
    net = MLPConfig(hidden=[256, 256], activation="relu", norm="none", dropout=0.0, init="default")
    cfg = TrainConfig(epochs=epochs, batch_size=BATCH, optimizer=OptimizerConfig(name="adam", lr=LR))
    # Seed 0 everywhere: the floor's batch order (Generator seeded 0) and weights (manual_seed(0)).
    timer = epoch_timer()
    trainer = Trainer(build(net, shape, 2, 0), torch.nn.CrossEntropyLoss(), cfg, Seeds(0, 0, 0), callbacks=[timer])
    trainer.fit(TensorSet(as_inputs(Xtr), torch.from_numpy(ytr).long()))
    return timer.times, accuracy(trainer.predict(as_inputs(Xte)), yte), {}


def as_inputs(X: Any) -> dict[str, Any]:
    """The network's named inputs, as the feature pipeline makes them: numbers only, no embeddings."""
    import torch

    return {"numeric": torch.from_numpy(X)}


def api_recipe(columns: list[str], epochs: int) -> dict[str, Any]:
    """The floor's network and optimiser as a recipe; no validation pass, the data is already scaled."""
    return {
        "seed": 0,
        "data": {"target": "y", "task": "binary"},
        "features": {"columns": [{"name": c, "type": "numeric"} for c in columns], "numeric": {"scale": "none"}},
        "split": {"test": 0.2, "val": 0.0},
        "track": False,  # the loop is measured here; tracking costs a few ms per epoch on top
        "evaluate": False,  # nor the bootstrap intervals (about 2 s on the 20,000 test rows), nor plots
        "model": {"hidden": [256, 256], "activation": "relu", "norm": "none", "dropout": 0.0, "init": "default"},
        "train": {
            "epochs": epochs,
            "batch_size": BATCH,
            "optimizer": {"name": "adam", "lr": LR},
            "loss": {"name": "cross_entropy"},  # 2 logits, as the floor (auto would pick bce, 1 logit)
        },
    }


def run_api(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
    """strata.train end to end on a DataFrame of all 100k rows; strata makes its own 80/20 split."""
    import numpy as np
    import pandas as pd

    import strata

    Xtr, ytr, Xte, yte = data
    columns = [f"x{i}" for i in range(Xtr.shape[1])]
    frame = pd.DataFrame(np.concatenate([Xtr, Xte]), columns=columns)
    frame["y"] = np.concatenate([ytr, yte])
    start = time.perf_counter()
    result = strata.train(api_recipe(columns, epochs), data=frame, quiet=True)
    wall = time.perf_counter() - start
    times = [row["seconds"] for row in result.history]
    return times, float(result.metrics["test"]["accuracy"]), {"wall_s": round(wall, 3)}


RUNNERS = {"floor": run_floor, "trainer": run_trainer, "api": run_api}


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux /proc/stat), None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def others_share(busy0: float | None, own0: float, wall0: float) -> float | None:
    """The share of the machine's CPUs that other processes used meanwhile. Two torch threads on a
    2-core machine slow down many-fold when anything else runs, so a measurement is only as good
    as this is small."""
    busy1 = busy_cpu_seconds()
    if busy0 is None or busy1 is None:
        return None
    others = (busy1 - busy0) - (own_cpu_seconds() - own0)
    return max(others, 0.0) / ((time.perf_counter() - wall0) * (os.cpu_count() or 1))


def measure(tool: str, epochs: int) -> dict[str, Any]:
    """One measurement in this process; the first epoch is a warm-up and is not counted."""
    import torch

    torch.set_num_threads(THREADS)
    busy0, own0, wall0 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    data = task_data()
    faults = minor_faults()
    times, acc, extra = RUNNERS[tool](data, epochs)
    others = others_share(busy0, own0, wall0)
    steady = times[1:] or times
    return {
        "tool": tool,
        "epochs": epochs,
        "sec_per_epoch": round(statistics.median(steady), 4),
        "min": round(min(steady), 4),
        "max": round(max(steady), 4),
        "test_acc": round(acc, 4),
        "others_cpu": None if others is None else round(others, 3),
        **process_counters(faults),
        **extra,
    }


def minor_faults() -> int:
    """This process's minor page faults so far (0 where getrusage is missing)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def process_counters(faults_before: int) -> dict[str, Any]:
    """The minor page faults since `faults_before` (the training run's, data preparation excluded for
    the floor and trainer), the process's peak memory, and whether strata tuned the allocator. Page
    faults tell malloc trimming apart from slow code even on a busy machine, where times do not."""
    try:
        import resource
    except ImportError:
        return {}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    done = getattr(sys.modules.get("strata._process"), "_done", None)
    return {
        "fit_minflt": usage.ru_minflt - faults_before,
        "peak_rss_mb": round(usage.ru_maxrss * scale / 2**20, 1),
        "malloc_tuned": bool(done and done.malloc),
    }


# ---------------------------------------------------------------------- every tool, fresh processes
def run_child(tool: str, epochs: int) -> dict[str, Any] | None:
    """One tool in a fresh interpreter: the first model trained in a process can be much slower
    (glibc malloc trimming), so sharing a process would judge tools by their position."""
    cmd = [sys.executable, os.path.abspath(__file__), "--tool", tool, "--epochs", str(epochs)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        print(f"# {tool} failed (exit {out.returncode}): {out.stderr[-800:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def wait_for_quiet(limit: float, max_wait: float) -> None:
    """Wait (up to `max_wait` s) until other processes use less than `limit` of the CPUs over a
    second. This process is idle meanwhile, so all the busy time it sees is someone else's."""
    deadline = time.perf_counter() + max_wait
    while time.perf_counter() < deadline:
        busy0, own0, wall0 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        time.sleep(1.0)
        share = others_share(busy0, own0, wall0)
        if share is None or share < limit:
            return
    print(f"# machine still busy after {max_wait:.0f} s; measuring anyway", file=sys.stderr, flush=True)


def disturbed(rec: dict[str, Any], limit: float) -> bool:
    return rec.get("others_cpu") is not None and rec["others_cpu"] > limit


def measure_quietly(tool: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """A measurement that other processes did not disturb, if one can be had in `args.retries` tries;
    else the last one, marked as disturbed by its others_cpu."""
    rec = None
    for _ in range(1 + args.retries):
        wait_for_quiet(args.busy, args.max_wait)
        rec = run_child(tool, args.epochs)
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


def median_of(records: list[dict[str, Any]], key: str) -> float:
    return statistics.median(rec[key] for rec in records)


def table_row(tool: str, records: list[dict[str, Any]], floor: float | None) -> str:
    sec = median_of(records, "sec_per_epoch")
    spread = f"{min(r['sec_per_epoch'] for r in records):.3f} to {max(r['sec_per_epoch'] for r in records):.3f}"
    ratio = f"{sec / floor:.2f}" if floor else "-"
    wall = f"{median_of(records, 'wall_s'):.1f}" if "wall_s" in records[0] else "-"
    others = [r["others_cpu"] for r in records if r.get("others_cpu") is not None]
    busy = f"{max(others):.0%}" if others else "?"
    acc = median_of(records, "test_acc")
    return f"| {LABELS[tool]} | {sec:.3f} | {spread} | {ratio} | {acc:.4f} | {wall} | {busy} |"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return names[0] if names else platform.processor()
    except OSError:
        return platform.processor() or "unknown CPU"


def machine_line() -> str:
    malloc = ", ".join(f"{v}={os.environ[v]}" for v in MALLOC_VARS if v in os.environ) or "default malloc settings"
    return (
        f"Machine: {os.cpu_count()} CPUs ({cpu_name()}), torch {metadata.version('torch')}, "
        f"Python {platform.python_version()}, {THREADS} torch threads, {malloc}; "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}."
    )


def print_table(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    floor = median_of(results["floor"], "sec_per_epoch") if results.get("floor") else None
    print(f"Seconds per epoch: median over {args.rounds} fresh processes (alternating order) of the median of")
    print(
        f"{args.epochs - 1} timed epochs after a warm-up epoch. MLP 32-256-256-2, 80,000 training rows, batch {BATCH}."
    )
    print()
    print(
        "| tool | s/epoch (median) | range over processes | ratio to floor | test acc | whole call (s) "
        "| others' CPU (max) |"
    )
    print("|---|---|---|---|---|---|---|")
    for tool, records in results.items():
        if records:
            print(table_row(tool, records, floor))
    print()
    print(machine_line())
    if floor and results.get("trainer"):
        ratio = median_of(results["trainer"], "sec_per_epoch") / floor
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        print(f"Target strata (trainer) / floor <= {TARGET_RATIO:.2f}: {verdict} ({ratio:.2f}).")
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
    ap.add_argument("--epochs", type=int, default=6, help="epochs per process, the first one a warm-up")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per tool (without --tool)")
    ap.add_argument("--busy", type=float, default=0.10, help="share of the CPUs used by others that disturbs")
    ap.add_argument("--retries", type=int, default=1, help="re-measurements of a disturbed process")
    ap.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for a quiet machine")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.tool:
        print(json.dumps(measure(args.tool, args.epochs)), flush=True)
        return
    tools = args.tools.split(",")
    print_table(run_rounds(tools, args), args)


if __name__ == "__main__":
    main()
