"""Throughput and latency of `strata serve`: single-record POST /predict under a bounded load.

The server runs in its own process on a free loopback port (uvicorn, one worker, the drift monitor
off); the load comes from this process: `--concurrency` workers (asyncio + httpx), each sending one
request after another for `--duration` seconds, after a one-second warm-up. Requests/s counts
answered requests (any status); errors are those that were not 200 or failed to connect.

The model is the bundle given, else a small MLP trained here on make_classification (2,000 x 8,
hidden 64-64, 5 epochs). Backends: torch always; onnx when strata.runtime and strata.export exist
(the bundle is exported, then served with onnxruntime).

Usage:
  python bench/serve.py                            # torch (and onnx), 10 s each, a Markdown table
  python bench/serve.py --bundle models/penguins --backend torch --duration 30 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def small_bundle(folder: Path) -> Path:
    import pandas as pd
    from sklearn.datasets import make_classification

    import strata

    x, y = make_classification(n_samples=2000, n_features=8, n_informative=5, random_state=0)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)]).assign(label=y)
    recipe = {"name": "bench-serve", "data": {"target": "label"}, "model": {"hidden": [64, 64]},
              "train": {"epochs": 5, "batch_size": 64}, "track": False, "evaluate": False}  # fmt: skip
    return strata.train(recipe, data=frame, out=folder / "bundle", quiet=True).path


def example_record(bundle: Path) -> dict[str, Any]:
    """A record of training-like values: each numeric column's fill, each category's first level."""
    pipeline = json.loads((bundle / "pipeline.json").read_text())
    record: dict[str, Any] = {}
    for column in pipeline["columns"]:
        state = column["state"]
        if column["kind"] == "numeric":
            record[column["name"]] = state["fill"]
        elif column["kind"] == "categorical":
            record[column["name"]] = state["vocab"][-1]
        elif column["kind"] == "binary":
            record[column["name"]] = state["mode"]
        else:
            record[column["name"]] = "some text"
    return record


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, backend: str, port: int) -> subprocess.Popen:
    code = (
        "from strata.serving import serve; "
        f"serve({str(bundle)!r}, port={port}, backend={backend!r}, monitor=False, log_level='warning')"
    )
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def wait_ready(base: str, process: subprocess.Popen, seconds: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer {base}/health within {seconds:.0f} s")


async def load(base: str, record: dict[str, Any], concurrency: int, duration: float) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0

    async def worker(client: httpx.AsyncClient, until: float, timed: bool) -> None:
        nonlocal errors
        while time.perf_counter() < until:
            start = time.perf_counter()
            try:
                ok = (await client.post("/predict", json=record)).status_code == 200
            except httpx.HTTPError:
                ok = False
            if timed:
                latencies.append(time.perf_counter() - start)
                errors += not ok

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client, time.perf_counter() + 1.0, False) for _ in range(concurrency)))
        begin = time.perf_counter()
        await asyncio.gather(*(worker(client, begin + duration, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - begin
    ms = sorted(1000 * t for t in latencies)
    return {
        "requests": len(ms),
        "rps": len(ms) / elapsed,
        "p50_ms": statistics.median(ms) if ms else float("nan"),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))] if ms else float("nan"),
        "errors": errors,
    }


def measure(bundle: Path, backend: str, concurrency: int, duration: float) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(bundle, backend, port)
    try:
        wait_ready(base, process)
        return {"backend": backend, **asyncio.run(load(base, example_record(bundle), concurrency, duration))}
    finally:
        process.terminate()
        process.wait(10)


def onnx_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("strata.runtime", "strata.export", "onnxruntime"))


def table(rows: list[dict[str, Any]], concurrency: int, duration: float) -> str:
    lines = [
        f"Single-record POST /predict, concurrency {concurrency}, {duration:g} s, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}",
        "",
        "| backend | requests | requests/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['backend']} | {r['requests']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="a bundle folder (default: train a small MLP)")
    parser.add_argument("--backend", choices=("torch", "onnx", "all"), default="all")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per backend")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or small_bundle(Path(tmp))
        backends = ["torch", "onnx"] if args.backend == "all" else [args.backend]
        if "onnx" in backends and not onnx_available():
            print("onnx: skipped (strata.runtime, strata.export or onnxruntime is missing)", file=sys.stderr)
            backends.remove("onnx")
        rows = [measure(bundle, b, args.concurrency, args.duration) for b in backends]
    print(table(rows, args.concurrency, args.duration))


if __name__ == "__main__":
    main()
