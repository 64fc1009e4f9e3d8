"""Data-parallel throughput on the MLP task of bench/overhead.py: samples per second of `strata.train`
in 1 and 2 processes on CPU (torchrun, gloo) and the scaling efficiency; on a GPU, samples per second
with train.precision fp32 and bf16 and with train.compile.

Each measurement is one torchrun launch of fresh processes running `strata.train` on the task's table
(make_classification 100,000 x 32, 80/20 split, MLP 32-256-256-2, Adam lr 1e-3, batch 256: the API
tool of overhead.py), so it measures the path a user gets: the batches sharded, DDP's gradient
all-reduce every step, the epoch's loss all-reduced. One process is torchrun with one worker, which
is a plain single-process run. Samples/s is the training rows of an epoch over rank 0's median epoch
time after a warm-up epoch; scaling efficiency is samples/s of N processes over N times that of one.

Usage:
  python bench/ddp.py                                  # CPU: 1 and 2 processes, 3 rounds, a Markdown table
  python bench/ddp.py --nprocs 1,2,4 --threads 2        # torch threads per process
  python bench/ddp.py --rows 4000 --epochs 2 --rounds 1 --max-wait 0   # a quick check that it runs
  python bench/ddp.py --gpu                             # fp32 / bf16 / compile on CUDA; skips without a GPU
  (internal) --worker: one process of a measurement, started by torchrun
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import BATCH, api_recipe, busy_cpu_seconds, cpu_name, task_data, wait_for_quiet  # the MLP task

MODES = {  # the GPU part's train options
    "fp32": {"precision": "fp32"},
    "bf16": {"precision": "bf16"},
    "compile": {"precision": "fp32", "compile": True},
}


# ---------------------------------------------------------------------- one process of a measurement
def worker(args: argparse.Namespace) -> None:
    """Train the task with strata.train in this torchrun process; rank 0 prints one JSON line."""
    import numpy as np
    import pandas as pd
    import torch

    import strata
    from strata import distributed

    torch.set_num_threads(args.threads)
    Xtr, ytr, Xte, yte = task_data()
    X, y = np.concatenate([Xtr, Xte]), np.concatenate([ytr, yte])
    rows = args.rows or len(X)
    columns = [f"x{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X[:rows], columns=columns).assign(y=y[:rows])
    recipe = api_recipe(columns, args.epochs)
    recipe["train"]["batch_size"] = args.batch
    if args.mode:  # the GPU part: the trainer's own device, precision and compile options
        recipe["train"].update(device="cuda", **MODES[args.mode])
    result = strata.train(recipe, data=frame, quiet=True)
    if not distributed.is_main():
        return
    seconds = [row["seconds"] for row in result.history]
    steady = statistics.median(seconds[1:] or seconds)
    train_rows = result.model.meta["rows"]["train"]
    record = {
        "nproc": int(os.environ.get("WORLD_SIZE", "1")),
        "mode": args.mode or "cpu",
        "threads": args.threads,
        "train_rows": train_rows,
        "sec_per_epoch": round(steady, 4),
        "samples_per_s": round(train_rows / steady, 1),
        "test_acc": round(float(result.metrics["test"]["accuracy"]), 4),
    }
    if args.mode:  # a run that never touched the GPU must not pass for a GPU figure
        record["gpu_used"] = torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0
    print(json.dumps(record), flush=True)


# ---------------------------------------------------------------------- fresh processes, a table
def launch(nproc: int, args: argparse.Namespace, mode: str | None = None) -> dict[str, Any] | None:
    """One measurement: torchrun starts `nproc` fresh workers; returns rank 0's record, with the share
    of the CPUs that other processes used meanwhile (this one and its children's time subtracted)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           os.path.abspath(__file__), "--worker", "--epochs", str(args.epochs), "--threads", str(args.threads),
           "--batch", str(args.batch), *(["--rows", str(args.rows)] if args.rows else []),
           *(["--mode", mode] if mode else [])]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    busy0, mine0, wall0 = busy_cpu_seconds(), _own_and_children(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=args.timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        print(f"# {nproc} process(es) {mode or ''} failed (exit {done.returncode}): {done.stderr[-1500:]}",
              file=sys.stderr)  # fmt: skip
        return None
    record = json.loads(lines[-1])
    busy1 = busy_cpu_seconds()
    if busy0 is not None and busy1 is not None:
        others = (busy1 - busy0) - (_own_and_children() - mine0)
        record["others_cpu"] = round(max(others, 0.0) / ((time.perf_counter() - wall0) * (os.cpu_count() or 1)), 3)
    return record


def _own_and_children() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system  # torchrun and its workers, once waited for


def cpu_rounds(args: argparse.Namespace) -> dict[int, list[dict[str, Any]]]:
    """Every process count per round, in alternating order, each after waiting for a quiet machine."""
    counts = [int(n) for n in args.nprocs.split(",")]
    results: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    for r in range(args.rounds):
        for n in counts if r % 2 == 0 else counts[::-1]:
            wait_for_quiet(args.busy, args.max_wait)
            rec = launch(n, args)
            if rec is not None:
                print(f"# round {r + 1}: {json.dumps(rec)}", file=sys.stderr, flush=True)
                results[n].append(rec)
    return results


def print_cpu_table(results: dict[int, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    one = statistics.median(r["samples_per_s"] for r in results.get(1, [])) if results.get(1) else None
    print(f"Samples/s of strata.train, data-parallel on CPU (gloo): median over {args.rounds} launches of rank 0's")
    print(f"median epoch after a warm-up epoch; {args.threads} torch thread(s) per process, batch {args.batch}.")
    print()
    print("| processes | samples/s | range | s/epoch | scaling efficiency | test acc | others' CPU (max) |")
    print("|---|---|---|---|---|---|---|")
    for n, records in results.items():
        if not records:
            continue
        sps = [r["samples_per_s"] for r in records]
        eff = f"{statistics.median(sps) / (n * one):.0%}" if one else "-"
        busy = max((r.get("others_cpu") or 0.0) for r in records)
        print(f"| {n} | {statistics.median(sps):.0f} | {min(sps):.0f} to {max(sps):.0f} "
              f"| {statistics.median(r['sec_per_epoch'] for r in records):.3f} | {eff} "
              f"| {statistics.median(r['test_acc'] for r in records):.4f} | {busy:.0%} |")  # fmt: skip
    print()
    print(machine_line(args))
    if any((r.get("others_cpu") or 0.0) > args.busy for records in results.values() for r in records):
        print(f"WARNING: other processes used over {args.busy:.0%} of the CPUs during a measurement; "
              f"these figures are not reliable. Re-run on a quiet machine.")  # fmt: skip


def gpu_table(args: argparse.Namespace) -> None:
    """fp32, bf16 and compile on CUDA, in `--gpu-procs` processes (one per GPU)."""
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: the GPU part (fp32, bf16, compile) is skipped; run `bench/ddp.py --gpu` on one")
        return
    print(f"Samples/s of strata.train on {torch.cuda.get_device_name()}, {args.gpu_procs} process(es), "
          f"batch {args.batch}; each mode once, median epoch after a warm-up epoch.")  # fmt: skip
    print()
    print("| mode | samples/s | s/epoch | test acc | ran on the GPU |")
    print("|---|---|---|---|---|")
    for mode in MODES:
        rec = launch(args.gpu_procs, args, mode)
        if rec is not None:
            print(f"| {mode} | {rec['samples_per_s']:.0f} | {rec['sec_per_epoch']:.4f} | {rec['test_acc']:.4f} "
                  f"| {'yes' if rec.get('gpu_used') else 'NO: train.device was not honoured'} |")  # fmt: skip
    print()
    print(machine_line(args))


def machine_line(args: argparse.Namespace) -> str:
    return (
        f"Machine: {os.cpu_count()} CPUs ({cpu_name()}), torch {metadata.version('torch')}, "
        f"Python {platform.python_version()}, {args.threads} torch thread(s) per process; "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}."
    )


# ---------------------------------------------------------------------- command line
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nprocs", default="1,2", help="process counts to compare on CPU")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per launch, the first one a warm-up")
    ap.add_argument("--rounds", type=int, default=3, help="launches per process count")
    ap.add_argument("--rows", type=int, default=0, help="use the first N rows of the table (0: all 100,000)")
    ap.add_argument("--batch", type=int, default=BATCH, help="global batch size")
    ap.add_argument("--busy", type=float, default=0.10, help="share of the CPUs used by others that disturbs")
    ap.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for a quiet machine")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds a launch may take")
    ap.add_argument("--gpu", action="store_true", help="the GPU part: fp32, bf16, compile")
    ap.add_argument("--gpu-procs", type=int, default=1, help="processes (GPUs) for the GPU part")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args)
    elif args.gpu:
        gpu_table(args)
    else:
        print_cpu_table(cpu_rounds(args), args)


if __name__ == "__main__":
    main()
