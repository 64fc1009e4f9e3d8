"""Each process-tuning change on its own, on the CNN task's floor loop: page faults and CPU seconds.

Modes, each in fresh processes, in rounds of alternating order:
  default   the hand-written loop of peers.py, glibc's default malloc settings, contiguous tensors
  malloc    the same after strata._process.tune_for_training() (mallopt thresholds)
  nhwc      malloc + the network in channels-last layout (strata._process.use_channels_last)
  nhwc-in   malloc + only each batch converted to channels-last (not adopted: no gain)

Page faults are counted while training; CPU seconds per epoch are the process's CPU time, which a
busy machine disturbs far less than wall time when the loop runs on one thread (`--threads 1`, the
default here); wall seconds are printed too.

Usage:
  python bench/tuning.py                           # 5,000 images, 3 epochs, 3 rounds, 1 thread
  python bench/tuning.py --rows 20000 --threads 2  # the benchmark's size and threads (quiet machine only)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODES = ("default", "malloc", "nhwc", "nhwc-in")


def measure(mode: str, rows: int, epochs: int, threads: int) -> dict:
    import torch
    from cnn import BATCH, floor_model, task_data

    from strata import _process

    torch.set_num_threads(threads)
    if mode != "default":
        _process.tune_for_training()
    Xtr, ytr, _, _ = task_data()
    X, y = torch.from_numpy(Xtr[:rows]), torch.from_numpy(ytr[:rows]).long()
    model = floor_model()
    if mode == "nhwc":
        _process.use_channels_last(model)
    opt, lossf = torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    cpu, wall = [], []
    for _ in range(epochs):
        c, t = time.process_time(), time.perf_counter()
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), BATCH):
            idx = perm[i : i + BATCH]
            xb = X[idx].contiguous(memory_format=torch.channels_last) if mode == "nhwc-in" else X[idx]
            opt.zero_grad(set_to_none=True)
            lossf(model(xb), y[idx]).backward()
            opt.step()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return {
        "mode": mode,
        "fit_minflt": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0,
        "cpu_s_per_epoch": round(statistics.median(cpu[1:] or cpu), 3),
        "wall_s_per_epoch": round(statistics.median(wall[1:] or wall), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=3, help="the first one a warm-up")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mode", choices=MODES, help="(child) one measurement in this process, one JSON line")
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.rows, args.epochs, args.threads)), flush=True)
        return
    modes, results = args.modes.split(","), {}
    for r in range(args.rounds):
        for mode in modes if r % 2 == 0 else modes[::-1]:
            cmd = [sys.executable, __file__, "--mode", mode, "--rows", str(args.rows), "--epochs", str(args.epochs),
                   "--threads", str(args.threads)]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rec = json.loads(out.strip().splitlines()[-1])
            print(f"# {json.dumps(rec)}", file=sys.stderr, flush=True)
            results.setdefault(mode, []).append(rec)
    print(f"CNN floor loop, {args.rows:,} images, {args.threads} thread(s), median of {args.rounds} processes:")
    print()
    print("| mode | page faults in training | CPU s/epoch (range) | wall s/epoch (range) |")
    print("|---|---|---|---|")
    for mode, recs in results.items():
        cells = []
        for key in ("cpu_s_per_epoch", "wall_s_per_epoch"):
            values = [r[key] for r in recs]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        faults = statistics.median(r["fit_minflt"] for r in recs)
        print(f"| {mode} | {faults:,.0f} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
