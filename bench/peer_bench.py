"""What bench/cnn.py and bench/lstm.py share: one task of the peer harness, three tools, fresh processes.

A task script (cnn.py, lstm.py) describes its task in a `PeerTask` (the data as peers.py makes it, the
runners of the tools `floor`, `trainer` and `api`, the lines of the table's header) and hands it to
`main`. Everything else lives here: one measurement in this process (`--tool`, one JSON line), or every
tool in fresh interpreters, in rounds of alternating order, each after waiting for a quiet machine, and
a Markdown table with the ratio to the floor. The CPU-busy checks, the floor loop and the machine line
come from bench/overhead.py, whose method this is.

A runner takes the task's data `(Xtr, ytr, Xte, yte)` and a number of epochs and returns the time of
each epoch, the test accuracy and a dict of extras: `params` (the network's parameter count),
`train_rows` (the rows it trained on; s/epoch is scaled to the task's `n_train` where it differs) and,
for the API, `wall_s` (the whole call).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import (  # the measurement machinery and the floor loop are shared with the MLP benchmark
    accuracy,
    busy_cpu_seconds,
    disturbed,
    epoch_timer,
    machine_line,
    median_of,
    minor_faults,
    others_share,
    own_cpu_seconds,
    process_counters,
    wait_for_quiet,
)

TOOLS = ("floor", "trainer", "api")
LABELS = {"floor": "floor (hand-written PyTorch)", "trainer": "strata (trainer)", "api": "strata (train API)"}
LR, THREADS = 1e-3, 2
TARGET_RATIO = 1.10

Data = tuple[Any, Any, Any, Any]  # (Xtr, ytr, Xte, yte) as peers.py makes them
Runner = Callable[[Data, int], tuple[list[float], float, dict[str, Any]]]


@dataclass(frozen=True)
class PeerTask:
    """One task of the peer harness, as a task script measures it."""

    name: str  # the task's name in peers.py: "cnn", "lstm"
    script: str  # the task script's path: fresh processes run it with --tool
    description: str  # the script's docstring: its first paragraph is --help's description
    n_train: int  # the floor's training rows; every s/epoch is scaled to them
    n_test: int  # the floor's test rows; --rows R keeps R * n_test // n_train of them
    batch: int
    unit: str  # what a row is, plural, for the header: "training images"
    network: str  # one line for the header: "CNN conv32-conv64-dense64-10 on 28x28"
    task_data: Callable[[], Data]
    runners: dict[str, Runner]
    default_epochs: int = 3


# ---------------------------------------------------------------------- helpers for the runners
def n_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def run_trainer(net: Any, slot: str, data: Data, epochs: int, batch: int) -> tuple[list[float], float, dict[str, Any]]:
    """Strata's Trainer on a TensorSet {slot: Xtr} with `net` (the floor's network, built after
    manual_seed(0)) taking its input by name; Seeds(0, 0, 0), so the batch order is the floor's too
    (its Generator is seeded 0): only the loop differs."""
    import torch

    from strata.data.batches import TensorSet
    from strata.recipe import OptimizerConfig, Seeds, TrainConfig
    from strata.training.trainer import Trainer

    class ByName(torch.nn.Module):
        """The floor's network, taking its input by name as strata's networks do."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
            return self.net(inputs[slot])

    Xtr, ytr, Xte, yte = data
    model = ByName()
    cfg = TrainConfig(epochs=epochs, batch_size=batch, optimizer=OptimizerConfig(name="adam", lr=LR))
    timer = epoch_timer()
    trainer = Trainer(model, torch.nn.CrossEntropyLoss(), cfg, Seeds(0, 0, 0), callbacks=[timer])
    trainer.fit(TensorSet({slot: torch.from_numpy(Xtr)}, torch.from_numpy(ytr).long()))
    acc = accuracy(trainer.predict({slot: torch.from_numpy(Xte)}), yte)
    return timer.times, acc, {"params": n_params(model), "train_rows": len(Xtr)}


def run_api(recipe: dict[str, Any], frame: Any) -> tuple[list[float], float, dict[str, Any]]:
    """strata.train(recipe, data=frame, quiet=True): the history's `seconds` per epoch (data
    preparation excluded), the test accuracy, and the whole call's wall time."""
    import strata

    start = time.perf_counter()
    result = strata.train(recipe, data=frame, quiet=True)
    wall = time.perf_counter() - start
    times = [row["seconds"] for row in result.history]
    meta = result.model.meta
    return (
        times,
        float(result.metrics["test"]["accuracy"]),
        {"params": meta.get("n_parameters"), "train_rows": meta["rows"]["train"], "wall_s": round(wall, 3)},
    )


# ---------------------------------------------------------------------- one measurement
def measure(task: PeerTask, tool: str, epochs: int, rows: int | None = None) -> dict[str, Any]:
    """One measurement in this process; the first epoch is a warm-up and is not counted. `rows` below
    `n_train` keeps the first `rows` training rows and as many test rows in the task's proportion
    (a quick check, not a benchmark)."""
    import torch

    rows = task.n_train if rows is None else rows
    torch.set_num_threads(THREADS)
    busy0, own0, wall0 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    Xtr, ytr, Xte, yte = task.task_data()
    test_rows = rows * task.n_test // task.n_train
    data = (Xtr[:rows], ytr[:rows], Xte[:test_rows], yte[:test_rows])
    faults = minor_faults()
    times, acc, extra = task.runners[tool](data, epochs)
    others = others_share(busy0, own0, wall0)
    steady = times[1:] or times
    per_row = task.n_train / extra["train_rows"]  # scale to the floor's training rows
    return {
        "tool": tool,
        "epochs": epochs,
        "sec_per_epoch": round(statistics.median(steady) * per_row, 4),
        "min": round(min(steady) * per_row, 4),
        "max": round(max(steady) * per_row, 4),
        "raw_sec_per_epoch": round(statistics.median(steady), 4),
        "test_acc": round(acc, 4),
        "others_cpu": None if others is None else round(others, 3),
        **process_counters(faults),
        **extra,
    }


# ---------------------------------------------------------------------- every tool, fresh processes
def run_child(task: PeerTask, tool: str, epochs: int, rows: int) -> dict[str, Any] | None:
    """One tool in a fresh interpreter (see overhead.py: the first model in a process can be slower)."""
    cmd = [sys.executable, task.script, "--tool", tool, "--epochs", str(epochs), "--rows", str(rows)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        print(f"# {tool} failed (exit {out.returncode}): {out.stderr[-800:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def measure_quietly(task: PeerTask, tool: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """A measurement that other processes did not disturb, if one can be had in `args.retries` tries;
    else the last one, marked as disturbed by its others_cpu."""
    rec = None
    for _ in range(1 + args.retries):
        wait_for_quiet(args.busy, args.max_wait)
        rec = run_child(task, tool, args.epochs, args.rows)
        if rec is None or not disturbed(rec, args.busy):
            return rec
        print(
            f"# {tool} disturbed (others used {rec['others_cpu']:.0%} of the CPUs): {json.dumps(rec)}",
            file=sys.stderr,
            flush=True,
        )
    return rec


def run_rounds(task: PeerTask, tools: list[str], args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Alternate the order every round, so that drift in the machine's speed hits every tool alike."""
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    for r in range(args.rounds):
        for tool in tools if r % 2 == 0 else tools[::-1]:
            rec = measure_quietly(task, tool, args)
            if rec is not None:
                print(f"# round {r + 1}: {json.dumps(rec)}", file=sys.stderr, flush=True)
                results[tool].append(rec)
    return results


# ---------------------------------------------------------------------- the table
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


def print_table(task: PeerTask, results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    floor = median_of(results["floor"], "sec_per_epoch") if results.get("floor") else None
    print(f"Seconds per epoch: median over {args.rounds} fresh processes (alternating order) of the median of")
    print(
        f"{args.epochs - 1} timed epochs after a warm-up epoch, per {task.n_train:,} {task.unit}. "
        f"{task.network}, batch {task.batch}."
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
def parse_args(task: PeerTask, argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=task.description.split("\n\n")[0])
    ap.add_argument("--tool", choices=TOOLS, help="measure one tool in this process and print one JSON line")
    ap.add_argument("--tools", default=",".join(TOOLS), help="tools to compare (without --tool)")
    ap.add_argument(
        "--epochs", type=int, default=task.default_epochs, help="epochs per process, the first one a warm-up"
    )
    ap.add_argument("--rows", type=int, default=task.n_train, help=f"{task.unit} (fewer: a quick check only)")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per tool (without --tool)")
    ap.add_argument("--busy", type=float, default=0.10, help="share of the CPUs used by others that disturbs")
    ap.add_argument("--retries", type=int, default=1, help="re-measurements of a disturbed process")
    ap.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for a quiet machine")
    return ap.parse_args(argv)


def main(task: PeerTask, argv: list[str] | None = None) -> None:
    args = parse_args(task, argv)
    if args.tool:
        print(json.dumps(measure(task, args.tool, args.epochs, args.rows)), flush=True)
        return
    print_table(task, run_rounds(task, args.tools.split(","), args), args)
