"""How training time and memory grow with the rows, and batch prediction's speed and memory.

Training: an MLP task at 10k, 100k and 1M rows, each size in a fresh process. The data is generated
with a fixed seed (32 float32 N(0, 1) columns, label = a fixed linear rule plus noise > 0) and
written to a Parquet file in a temporary folder; the process trains it with `strata.train` from
that file (the MLP 32-256-256-2 of bench/overhead.py, Adam, batch 256, 80/20 split, no validation,
no evaluation) and reports s/epoch (the history's, per 80% of the rows) and the process's peak memory
above what it held before reading the data, beside the expected bound: twice the float32 data plus
the model, its gradients and Adam's two moments, with the data counted two ways: the whole table read
(what the user trains on) and the 80% training rows alone (the stricter reading). The last column is
the slope: the extra peak memory per 1,000 added rows between one size and the next, beside twice a
float32 row (0.27 MB per 1,000 rows), since fixed costs (the Parquet reader's pages, the allocator's
arenas, a prediction chunk's activations) dominate small sizes. The time should grow linearly in rows.

Batch prediction: the 100k-row model's bundle predicts 100k and 1M rows from CSV and from Parquet
(`strata.batch.predict_file`, what `strata predict` runs on files), then 3M rows from a Parquet file
of three 1M-row row groups (the largest size three times over, --row-groups), each in a fresh
process: rows/s and peak memory above the loaded model. The Parquet files are as pandas writes them
(up to 1Mi rows per row group, dictionary-encoded pages). Memory should be bounded by the chunk
(50,000 rows), plus for Parquet the reader's buffers per column (which depend on how the file was
written, not on its rows), so 3M rows should need about what 1M rows need, and 1M about what 100k
need (a little more from Parquet: 1 MB dictionaries and pages a column, where 100k rows have 0.4 MB).
With glibc's default (dynamic) mmap threshold these peaks vary by tens of MB from run to run;
MALLOC_MMAP_THRESHOLD_=1048576 in the environment makes them repeatable to a few MB.

Peak memory is Linux's VmHWM, reset after the imports (/proc/self/clear_refs), so it is the peak of
the work measured, not of the imports; elsewhere, ru_maxrss minus the RSS before the work.

Usage:
  python bench/scaling.py                        # both tables (about 3 minutes on an idle 2-core machine)
  python bench/scaling.py --sizes 10000,100000   # fewer sizes
  python bench/scaling.py --quick                # tiny sizes: a check that it runs (tests/bench)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import BATCH, LR, machine_line

FEATURES, HIDDEN, EPOCHS = 32, (256, 256), 3
PARAMS = FEATURES * 256 + 256 + 256 * 256 + 256 + 256 * 2 + 2  # the MLP 32-256-256-2


# ---------------------------------------------------------------------- memory
def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (or its peak, VmHWM) in MB, from /proc; ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def reset_peak() -> None:
    """Make VmHWM the current RSS (Linux 4.0+), so the next peak is the work's, not the imports'."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


# ---------------------------------------------------------------------- data
def make_table(rows: int, seed: int = 0) -> Any:
    """`rows` x 32 float32 N(0, 1) columns x0..x31 and a label from a fixed linear rule plus noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    w = np.random.default_rng(1).standard_normal(FEATURES).astype(np.float32)
    y = (X @ w + rng.standard_normal(rows, dtype=np.float32) > 0).astype(np.int64)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(FEATURES)])
    frame["y"] = y
    return frame


def recipe(path: Path, epochs: int) -> dict[str, Any]:
    return {
        "seed": 0,
        "data": {"path": str(path), "target": "y", "task": "binary"},
        "features": {"numeric": {"scale": "none"}},
        "split": {"test": 0.2, "val": 0.0},
        "track": False,
        "evaluate": False,
        "model": {"hidden": list(HIDDEN), "activation": "relu", "norm": "none", "dropout": 0.0, "init": "default"},
        "train": {
            "epochs": epochs,
            "batch_size": BATCH,
            "optimizer": {"name": "adam", "lr": LR},
            "loss": {"name": "cross_entropy"},
        },
    }


def expected_train_mb(rows: int, share: float = 1.0) -> float:
    """2 x `share` of the rows in float32 + weights, gradients and Adam's two moments, float32."""
    data = share * rows * (FEATURES * 4 + 8)  # features and an int64 label
    return (2 * data + 4 * PARAMS * 4) / 2**20


# ---------------------------------------------------------------------- one measurement (a child)
def measure_train(path: Path, rows: int, epochs: int, bundle: Path | None) -> dict[str, Any]:
    import torch

    import strata

    torch.set_num_threads(2)
    warm = path.with_name(f"warm-{os.getpid()}.parquet")  # a tiny run first: imports and set-up done
    make_table(512, seed=2).to_parquet(warm, index=False)
    strata.train(recipe(warm, 1), quiet=True)
    warm.unlink()
    base = rss_mb()
    reset_peak()
    start = time.perf_counter()
    result = strata.train(recipe(path, epochs), quiet=True, out=bundle)
    wall = time.perf_counter() - start
    steady = [row["seconds"] for row in result.history][1:] or [result.history[0]["seconds"]]
    return {
        "rows": rows,
        "sec_per_epoch": round(sorted(steady)[len(steady) // 2], 4),
        "wall_s": round(wall, 2),
        "peak_over_base_mb": round(rss_mb("VmHWM") - base, 1),
        "expected_mb": round(expected_train_mb(rows), 1),
        "expected_train_rows_mb": round(expected_train_mb(rows, 0.8), 1),
        "test_acc": round(float(result.metrics["test"]["accuracy"]), 4),
    }


def measure_predict(bundle: Path, path: Path, rows: int) -> dict[str, Any]:
    import torch

    import strata
    from strata.batch import CHUNK_ROWS, predict_file

    torch.set_num_threads(2)
    model = strata.load(bundle)
    warm = path.with_name(f"warm-{os.getpid()}{path.suffix}")  # a tiny file first: imports done
    out = path.with_name(f"pred-{path.name}")
    frame = make_table(512, seed=2).drop(columns="y")
    frame.to_parquet(warm, index=False) if path.suffix == ".parquet" else frame.to_csv(warm, index=False)
    predict_file(model, warm, out, quiet=True)
    warm.unlink()
    base = rss_mb()
    reset_peak()
    start = time.perf_counter()
    done = predict_file(model, path, out, quiet=True)
    wall = time.perf_counter() - start
    out.unlink(missing_ok=True)
    groups = None
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        groups = pq.ParquetFile(path).metadata.num_row_groups
    return {
        "rows": rows,
        "format": path.suffix.lstrip("."),
        "row_groups": groups,
        "rows_per_s": round(done / wall),
        "wall_s": round(wall, 2),
        "peak_over_base_mb": round(rss_mb("VmHWM") - base, 1),
        "chunk_rows": CHUNK_ROWS,
    }


# ---------------------------------------------------------------------- the parent
def child(*argv: str) -> dict[str, Any] | None:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        print(f"# {' '.join(argv)} failed (exit {out.returncode}): {out.stderr[-800:]}", file=sys.stderr)
        return None
    print(f"# {lines[-1]}", file=sys.stderr, flush=True)
    return json.loads(lines[-1])


def write_files(folder: Path, sizes: list[int], predict_sizes: list[int], row_groups: int) -> Path | None:
    """The training and prediction files; returns the Parquet file of `row_groups` row groups of the
    largest prediction size (None when row_groups < 2), written one row group at a time."""
    for rows in sorted(set(sizes) | set(predict_sizes)):
        frame = make_table(rows)
        frame.to_parquet(folder / f"rows-{rows}.parquet", index=False)
        if rows in predict_sizes:
            frame.drop(columns="y").to_csv(folder / f"rows-{rows}.csv", index=False, float_format="%.6g")
    if row_groups < 2:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = max(predict_sizes)
    path = folder / f"rows-{rows * row_groups}-in-{row_groups}.parquet"
    writer = None
    for group in range(row_groups):  # pandas' defaults (dictionary pages, snappy), one group per write
        table = pa.Table.from_pandas(make_table(rows, seed=10 + group), preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=rows)
    if writer is not None:
        writer.close()
    return path


def train_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"Training, MLP 32-256-256-2 from a Parquet file, batch {BATCH}, {EPOCHS} epochs (median after the first):",
        "",
        "| rows | training rows | s/epoch | s/epoch per 100k training rows | peak memory over base (MB) "
        "| bound: 2x the table (MB) | 2x the training rows (MB) | MB per 1k more rows (bound 0.27) "
        "| test acc | whole call (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    previous = None
    for r in results:
        per = r["sec_per_epoch"] / (0.8 * r["rows"]) * 100_000
        slope = "-"
        if previous is not None and r["rows"] > previous["rows"]:
            added = (r["peak_over_base_mb"] - previous["peak_over_base_mb"]) / (r["rows"] - previous["rows"])
            slope = f"{added * 1000:.2f}"
        lines.append(f"| {r['rows']:,} | {int(0.8 * r['rows']):,} | {r['sec_per_epoch']:.3f} | {per:.3f} "
                     f"| {r['peak_over_base_mb']:,.0f} | {r['expected_mb']:,.0f} "
                     f"| {r.get('expected_train_rows_mb', 0):,.0f} | {slope} | {r['test_acc']:.4f} "
                     f"| {r['wall_s']:.1f} |")  # fmt: skip
        previous = r
    return lines


def predict_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "Batch prediction (`strata.batch.predict_file`, as `strata predict BUNDLE FILE --out FILE`), "
        f"chunks of {results[0]['chunk_rows']:,} rows:"
        if results
        else "Batch prediction: no result.",
        "",
        "| input | rows | row groups | rows/s | peak memory over the loaded model (MB) | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        groups = "-" if r.get("row_groups") is None else f"{r['row_groups']:,}"
        lines.append(f"| {r['format']} | {r['rows']:,} | {groups} | {r['rows_per_s']:,} "
                     f"| {r['peak_over_base_mb']:,.0f} | {r['wall_s']:.1f} |")  # fmt: skip
    return lines


def run_all(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    predict_sizes = [int(s) for s in args.predict_sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="strata-scaling-") as tmp:
        folder = Path(tmp)
        grouped = write_files(folder, sizes, predict_sizes, args.row_groups)
        bundle = folder / "bundle"
        model_rows = sizes[min(1, len(sizes) - 1)]
        train = []
        for rows in sizes:
            keep = ["--bundle", str(bundle)] if rows == model_rows else []
            rec = child("--train", str(folder / f"rows-{rows}.parquet"), "--rows", str(rows),
                        "--epochs", str(args.epochs), *keep)  # fmt: skip
            train += [rec] if rec else []
        predict = []
        files = [(folder / f"rows-{rows}.{fmt}", rows) for fmt in ("csv", "parquet") for rows in predict_sizes]
        files += [(grouped, max(predict_sizes) * args.row_groups)] if grouped is not None else []
        for path, rows in files:
            rec = child("--predict", str(path), "--rows", str(rows), "--bundle", str(bundle))
            predict += [rec] if rec else []
    print("\n".join(train_table(train)))
    print()
    print("\n".join(predict_table(predict)))
    print()
    print(machine_line())


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="rows of the training runs")
    ap.add_argument("--predict-sizes", default="100000,1000000", help="rows of the batch predictions")
    ap.add_argument("--row-groups", type=int, default=3, help="also predict a Parquet file of this many row groups "
                    "of the largest predict size, to show memory does not grow with the file (0: none)")  # fmt: skip
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one epoch: a check that it runs")
    ap.add_argument("--train", type=Path, help="(child) train on this file and print one JSON line")
    ap.add_argument("--predict", type=Path, help="(child) predict this file with --bundle, one JSON line")
    ap.add_argument("--rows", type=int, default=0, help="(child) the file's rows")
    ap.add_argument("--bundle", type=Path, help="(child) the bundle to save (--train) or to load (--predict)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.predict_sizes, args.epochs = "2000,4000", "3000,6000", 2
    return args


def main() -> None:
    args = parse_args()
    if args.train:
        print(json.dumps(measure_train(args.train, args.rows, args.epochs, args.bundle)), flush=True)
    elif args.predict:
        print(json.dumps(measure_predict(args.bundle, args.predict, args.rows)), flush=True)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
