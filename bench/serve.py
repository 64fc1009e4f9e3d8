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


def start_server(bundle: Path, backend: str, port: int, workers: int = 1) -> subprocess.Popen:
    code = (
        "from strata.serving import serve; "
        f"serve({str(bundle)!r}, port={port}, backend={backend!r}, monitor=False, log_level='warning', "
        f"workers={workers})"
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


class Connection:
    """One keep-alive HTTP/1.1 connection sending a fixed request: a client this small costs the
    shared CPUs far less than a general one (httpx), so the figures are the server's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes):
        self.reader, self.writer, self.request = reader, writer, request

    @classmethod
    async def open(cls, port: int, body: bytes) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        return cls(reader, writer, f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)

    async def send(self) -> bool:
        """One request and its whole response; True for a 200."""
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        return head[9:12] == b"200"

    def close(self) -> None:
        self.writer.close()


def summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    ms = sorted(1000 * t for t in latencies)
    return {
        "requests": len(ms),
        "rps": len(ms) / elapsed,
        "p50_ms": statistics.median(ms) if ms else float("nan"),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))] if ms else float("nan"),
        "errors": errors,
    }


async def closed_loop(port: int, body: bytes, concurrency: int, duration: float) -> dict[str, Any]:
    """Saturation: `concurrency` connections, each sending its next request as soon as the last is
    answered. The latency is then about concurrency / throughput (Little's law): queueing, mostly."""
    connections = [await Connection.open(port, body) for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0

    async def worker(connection: Connection, until: float, timed: bool) -> None:
        nonlocal errors
        while time.perf_counter() < until:
            start = time.perf_counter()
            try:
                ok = await connection.send()
            except (OSError, asyncio.IncompleteReadError, StopIteration):
                ok = False
            if timed:
                latencies.append(time.perf_counter() - start)
                errors += not ok

    await asyncio.gather(*(worker(c, time.perf_counter() + 1.0, False) for c in connections))  # warm-up
    begin = time.perf_counter()
    await asyncio.gather(*(worker(c, begin + duration, True) for c in connections))
    elapsed = time.perf_counter() - begin
    for c in connections:
        c.close()
    return summary(latencies, errors, elapsed)


async def open_loop(port: int, body: bytes, concurrency: int, duration: float, rate: float) -> dict[str, Any]:
    """A fixed offered rate: request i is due at i / rate seconds, whether or not earlier ones have
    been answered, on at most `concurrency` connections. Latency counts from the due time, so a
    server that falls behind is charged for the wait (no coordinated omission)."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(await Connection.open(port, body))
    latencies: list[float] = []
    errors = 0

    async def one(due: float, timed: bool) -> None:
        nonlocal errors
        connection = await pool.get()
        try:
            ok = await connection.send()
        except (OSError, asyncio.IncompleteReadError, StopIteration):
            ok = False
        pool.put_nowait(connection)
        if timed:
            latencies.append(time.perf_counter() - due)
            errors += not ok

    tasks = []
    warm_up = 1.0
    begin = time.perf_counter()
    for i in range(int((warm_up + duration) * rate)):
        due = begin + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(due, due >= begin + warm_up)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - begin - warm_up
    while not pool.empty():
        pool.get_nowait().close()
    return summary(latencies, errors, elapsed)


def measure(
    bundle: Path, backend: str, concurrency: int, duration: float, rate: float, workers: int
) -> list[dict[str, Any]]:
    """Both loads against one server: saturation, then the fixed rate (when `rate` > 0)."""
    port = free_port()
    process = start_server(bundle, backend, port, workers)
    body = json.dumps(example_record(bundle)).encode()
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        backend = backend if workers == 1 else f"{backend}, {workers} workers"
        rows = [{"backend": backend, "load": f"closed loop, {concurrency} concurrent",
                 **run_loop(closed_loop(port, body, concurrency, duration))}]  # fmt: skip
        if rate > 0:
            rows.append({"backend": backend, "load": f"{rate:g} req/s offered, <= {concurrency} in flight",
                         **run_loop(open_loop(port, body, concurrency, duration, rate))})  # fmt: skip
        return rows
    finally:
        process.terminate()
        process.wait(10)


def run_loop(work: Any) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(work)
    except ImportError:
        return asyncio.run(work)


def onnx_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("strata.runtime", "strata.export", "onnxruntime"))


def table(rows: list[dict[str, Any]], duration: float) -> str:
    lines = [
        f"Single-record POST /predict, {duration:g} s per load, server and client on the same {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}",
        "",
        "| backend | load | requests | requests/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['backend']} | {r['load']} | {r['requests']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
        f"| {r['errors']} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="a bundle folder (default: train a small MLP)")
    parser.add_argument("--backend", choices=("torch", "onnx", "all"), default="all")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each load")
    parser.add_argument("--rate", type=float, default=500.0, help="the offered rate of the open loop (0: none)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (strata serve --workers)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or small_bundle(Path(tmp))
        backends = ["torch", "onnx"] if args.backend == "all" else [args.backend]
        if "onnx" in backends and not onnx_available():
            print("onnx: skipped (strata.runtime, strata.export or onnxruntime is missing)", file=sys.stderr)
            backends.remove("onnx")
        rows = [
            row
            for b in backends
            for row in measure(bundle, b, args.concurrency, args.duration, args.rate, args.workers)
        ]
    print(table(rows, args.duration))


if __name__ == "__main__":
    main()
