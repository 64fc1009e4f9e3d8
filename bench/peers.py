"""Strata against the tools our users would otherwise pick, on the MLP, CNN and LSTM tasks of the peer harness.

The tasks are those of /work/shared/bench/peers.py, made by the same code (bench/overhead.py,
bench/cnn.py, bench/lstm.py): every tool trains the same architecture on the same data with Adam,
the same learning rate, batch size and number of epochs, on 2 torch threads.

Tools:
  floor      the hand-written PyTorch loop (pre-made tensors, index slices of a seeded permutation),
             in the default environment: no malloc settings, contiguous tensors.
  trainer    strata's Trainer with the floor's network, data, seeds and initial weights.
  strata     strata.train(recipe, data=DataFrame): the task as a recipe, end to end.
  loader     the floor's loop over DataLoader(TensorDataset, shuffle=True).
  lightning  PyTorch Lightning (logging, checkpointing, progress bar off).
  keras      Keras 3 on the torch backend.
  skorch     skorch's NeuralNetClassifier.

Lightning, Keras and skorch are not Strata's dependencies. They run in the interpreter given by
`--peer-python` (a separate virtualenv; bench/README.md has the commands), or in this one when they
are importable here; a tool that can be had in neither is skipped, and the table then quotes the
harness's figures for it, labelled as not measured in this run.

Every measurement runs in its own fresh interpreter, in rounds of alternating order, after waiting
for a quiet machine; each reports the median of its epochs after a warm-up epoch, its test accuracy
(so that no tool wins by skipping work), its page faults while training and its peak memory. The
table gives the median over processes and the ratio to the floor of the same run.

Usage:
  python bench/peers.py                                      # every task and tool, 3 rounds x 3 epochs
  python bench/peers.py --peer-python /tmp/peers-venv/bin/python --tasks cnn --rounds 5 --epochs 4
  python bench/peers.py --tool keras --task lstm --epochs 2  # one measurement in this process, JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cnn
import lstm
import overhead
from peer_bench import LR, PeerTask, measure

STRATA_TOOLS = ("floor", "trainer", "strata")
PEER_TOOLS = {"loader": "torch", "lightning": "pytorch_lightning", "keras": "keras", "skorch": "skorch"}
TOOLS = (*STRATA_TOOLS, *PEER_TOOLS)
LABELS = {
    "floor": "floor (hand-written PyTorch)",
    "trainer": "strata (Trainer)",
    "strata": "strata (recipe)",
    "loader": "DataLoader loop",
    "lightning": "Lightning",
    "keras": "Keras 3 (torch)",
    "skorch": "skorch",
}
TARGET = {"strata": 1.05, "trainer": 1.05}
CNN_TARGET = 0.80  # strata / the default-environment floor on the CNN task

# /work/shared/bench/README.md, "Default environment": s/epoch on a 2-core machine of this kind.
REFERENCE = {
    "mlp": {"floor": 0.39, "loader": 0.66, "lightning": 0.79, "keras": 0.87, "skorch": 0.65},
    "cnn": {"floor": 4.26, "loader": 4.13, "lightning": 4.40, "keras": 7.49, "skorch": 5.15},
    "lstm": {"floor": 0.39, "loader": 0.40, "lightning": 0.43, "keras": 2.59, "skorch": 0.48},
}


# ---------------------------------------------------------------------- the tasks
def _with_rows(runner: Any) -> Any:
    """overhead.py's runners report no row count; peer_bench.measure scales by it."""

    def run(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
        times, acc, extra = runner(data, epochs)
        return times, acc, {"train_rows": len(data[0]), **extra}

    return run


MLP = PeerTask(
    name="mlp",
    script=str(Path(overhead.__file__).resolve()),
    description=overhead.__doc__ or "",
    n_train=80_000,
    n_test=20_000,
    batch=overhead.BATCH,
    unit="training rows",
    network="MLP 32-256-256-2",
    task_data=overhead.task_data,
    runners={name: _with_rows(run) for name, run in overhead.RUNNERS.items()},
    default_epochs=6,
)
TASKS = {"mlp": (MLP, overhead.floor_model), "cnn": (cnn.TASK, cnn.floor_model), "lstm": (lstm.TASK, lstm.floor_model)}


# ---------------------------------------------------------------------- the peers (as peers.py runs them)
def _timer_times(times: list[float]) -> tuple[Any, Any]:
    """(start, stop) closures appending an epoch's seconds to `times`."""
    state: dict[str, float] = {}

    def start(*_: Any, **__: Any) -> None:
        state["t"] = time.perf_counter()

    def stop(*_: Any, **__: Any) -> None:
        times.append(time.perf_counter() - state["t"])

    return start, stop


def run_loader(task: str, data: tuple, epochs: int, batch: int) -> tuple[list[float], float]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    Xtr, ytr, Xte, yte = data
    model = TASKS[task][1]()
    loader = DataLoader(TensorDataset(torch.from_numpy(Xtr), torch.from_numpy(ytr).long()), batch, shuffle=True)
    opt, lossf, times = torch.optim.Adam(model.parameters(), lr=LR), torch.nn.CrossEntropyLoss(), []
    for _ in range(epochs):
        t = time.perf_counter()
        model.train()
        for xb, yb in loader:
            opt.zero_grad(set_to_none=True)
            lossf(model(xb), yb).backward()
            opt.step()
        times.append(time.perf_counter() - t)
    return times, _accuracy(model, Xte, yte)


def _accuracy(model: Any, Xte: Any, yte: Any) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return overhead.accuracy(model(torch.from_numpy(Xte)), yte)


def run_lightning(task: str, data: tuple, epochs: int, batch: int) -> tuple[list[float], float]:
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    Xtr, ytr, Xte, yte = data
    times: list[float] = []
    start, stop = _timer_times(times)

    class Lit(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.lossf = TASKS[task][1](), torch.nn.CrossEntropyLoss()

        def training_step(self, b: Any, _: int) -> Any:
            return self.lossf(self.net(b[0]), b[1])

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=LR)

    class Timer(pl.Callback):
        on_train_epoch_start, on_train_epoch_end = start, stop

    lit = Lit()
    loader = DataLoader(TensorDataset(torch.from_numpy(Xtr), torch.from_numpy(ytr).long()), batch, shuffle=True)
    pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, callbacks=[Timer()]).fit(lit, loader)  # fmt: skip
    return times, _accuracy(lit.net, Xte, yte)


def keras_model(task: str) -> Any:
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(0)
    if task == "mlp":
        stack = [keras.Input((32,)), layers.Dense(256, activation="relu"), layers.Dense(256, activation="relu"),
                 layers.Dense(2)]  # fmt: skip
    elif task == "cnn":
        stack = [keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
                 layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
                 layers.Dense(64, activation="relu"), layers.Dense(10)]  # fmt: skip
    else:
        stack = [keras.Input((50, 1)), layers.LSTM(64), layers.Dense(2)]
    return keras.Sequential(stack)


def run_keras(task: str, data: tuple, epochs: int, batch: int) -> tuple[list[float], float]:
    import keras

    Xtr, ytr, Xte, yte = data
    times: list[float] = []
    start, stop = _timer_times(times)

    class Timer(keras.callbacks.Callback):
        on_epoch_begin, on_epoch_end = start, stop

    if task == "cnn":  # Keras is channels-last
        Xtr, Xte = Xtr.transpose(0, 2, 3, 1), Xte.transpose(0, 2, 3, 1)
    model = keras_model(task)
    model.compile(optimizer=keras.optimizers.Adam(LR),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    model.fit(Xtr, ytr, batch_size=batch, epochs=epochs, verbose=0, callbacks=[Timer()])
    return times, float((model.predict(Xte, verbose=0).argmax(1) == yte).mean())


def run_skorch(task: str, data: tuple, epochs: int, batch: int) -> tuple[list[float], float]:
    import numpy as np
    import torch
    from skorch import NeuralNetClassifier
    from skorch.callbacks import Callback

    Xtr, ytr, Xte, yte = data
    times: list[float] = []
    start, stop = _timer_times(times)

    class Timer(Callback):
        on_epoch_begin, on_epoch_end = start, stop

    net = NeuralNetClassifier(TASKS[task][1](), criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
                              lr=LR, batch_size=batch, max_epochs=epochs, train_split=None, verbose=0,
                              iterator_train__shuffle=True, callbacks=[("timer", Timer())])  # fmt: skip
    net.fit(Xtr, ytr.astype(np.int64))
    return times, float((net.predict(Xte) == yte).mean())


PEER_RUNNERS = {"loader": run_loader, "lightning": run_lightning, "keras": run_keras, "skorch": run_skorch}


def task_with_peers(name: str) -> PeerTask:
    """The task of `name` with every tool's runner: strata's from its script, the peers' from here."""
    task, _ = TASKS[name]

    def peer(tool: str) -> Any:
        def run(data: tuple, epochs: int) -> tuple[list[float], float, dict[str, Any]]:
            times, acc = PEER_RUNNERS[tool](name, data, epochs, task.batch)
            return times, acc, {"train_rows": len(data[0])}

        return run

    runners = {**task.runners, "strata": task.runners["api"], **{t: peer(t) for t in PEER_RUNNERS}}
    return dataclasses.replace(task, runners=runners)


# ---------------------------------------------------------------------- fresh processes, rounds
def interpreter_for(tool: str, args: argparse.Namespace, cache: dict[str, str | None]) -> str | None:
    """The interpreter that can run `tool`: strata's for its own tools; for a peer, --peer-python or
    this one, whichever can import the peer's package (None: neither can)."""
    if tool in STRATA_TOOLS:
        return sys.executable
    if tool not in cache:
        candidates = [p for p in (args.peer_python, sys.executable) if p]
        module = PEER_TOOLS[tool]
        cache[tool] = next((p for p in candidates if _imports(p, module)), None)
    return cache[tool]


def _imports(python: str, module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, check=False, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_child(python: str, task: str, tool: str, args: argparse.Namespace) -> dict[str, Any] | None:
    cmd = [python, __file__, "--tool", tool, "--task", task, "--epochs", str(args.epochs)]
    if args.rows:
        cmd += ["--rows", str(args.rows)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        print(f"# {task}/{tool} failed (exit {out.returncode}): {out.stderr[-800:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def measure_quietly(python: str, task: str, tool: str, args: argparse.Namespace) -> dict[str, Any] | None:
    rec = None
    for _ in range(1 + args.retries):
        overhead.wait_for_quiet(args.busy, args.max_wait)
        rec = run_child(python, task, tool, args)
        if rec is None or not overhead.disturbed(rec, args.busy):
            return rec
        print(f"# {task}/{tool} disturbed (others used {rec['others_cpu']:.0%} of the CPUs)", file=sys.stderr)
    return rec


def run_task(task: str, args: argparse.Namespace, pythons: dict[str, str | None]) -> dict[str, list[dict]]:
    tools = [t for t in args.tools.split(",") if interpreter_for(t, args, pythons)]
    results: dict[str, list[dict]] = {t: [] for t in tools}
    for r in range(args.rounds):
        for tool in tools if r % 2 == 0 else tools[::-1]:
            rec = measure_quietly(interpreter_for(tool, args, pythons) or sys.executable, task, tool, args)
            if rec is not None:
                print(f"# {task} round {r + 1}: {json.dumps(rec)}", file=sys.stderr, flush=True)
                results[tool].append(rec)
    return results


# ---------------------------------------------------------------------- the tables
def _row(tool: str, records: list[dict], floor: float | None) -> str:
    sec = overhead.median_of(records, "sec_per_epoch")
    spread = f"{min(r['sec_per_epoch'] for r in records):.3f}-{max(r['sec_per_epoch'] for r in records):.3f}"
    ratio = f"{sec / floor:.2f}" if floor else "-"
    faults = f"{overhead.median_of(records, 'fit_minflt') / 1000:,.0f}k" if "fit_minflt" in records[0] else "?"
    rss = f"{overhead.median_of(records, 'peak_rss_mb'):,.0f}" if "peak_rss_mb" in records[0] else "?"
    others = [r["others_cpu"] for r in records if r.get("others_cpu") is not None]
    busy = f"{max(others):.0%}" if others else "?"
    acc = overhead.median_of(records, "test_acc")
    return f"| {LABELS[tool]} | {sec:.3f} | {spread} | {ratio} | {acc:.4f} | {faults} | {rss} | {busy} |"


def task_table(task: str, results: dict[str, list[dict]], args: argparse.Namespace) -> list[str]:
    spec = TASKS[task][0]
    floor = overhead.median_of(results["floor"], "sec_per_epoch") if results.get("floor") else None
    lines = [
        f"### {task}: {spec.network}, batch {spec.batch}, s/epoch per {spec.n_train:,} {spec.unit}",
        "",
        "| tool | s/epoch (median) | range | ratio to floor | test acc | page faults in training | peak RSS (MB) "
        "| others' CPU (max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(tool, recs, floor) for tool, recs in results.items() if recs]
    lines += ["", *verdicts(task, results, floor)]
    missing = [t for t in args.tools.split(",") if t in PEER_TOOLS and not results.get(t)]
    if missing:
        ref = REFERENCE[task]
        cells = ", ".join(f"{LABELS[t]} {ref[t]:.2f} ({ref[t] / ref['floor']:.2f})" for t in missing if t in ref)
        lines += [
            f"Not measured in this run (not installed; see --peer-python): {', '.join(missing)}. For reference "
            f"only, the harness's figures (/work/shared/bench/README.md, another run, default environment), s/epoch "
            f"(ratio to its floor {ref['floor']:.2f}): {cells}."
        ]
    return lines


def verdicts(task: str, results: dict[str, list[dict]], floor: float | None) -> list[str]:
    if not floor:
        return []
    med = {t: overhead.median_of(r, "sec_per_epoch") for t, r in results.items() if r}
    out = []
    for tool, limit in TARGET.items():
        if tool in med:
            ratio = med[tool] / floor
            out.append(
                f"- {LABELS[tool]} / floor <= {limit:.2f}: {'met' if ratio <= limit else 'NOT met'} ({ratio:.2f})."
            )
    if task == "cnn" and "strata" in med:
        ratio = med["strata"] / floor
        out.append(f"- {LABELS['strata']} / default-environment floor <= {CNN_TARGET:.2f}: "
                   f"{'met' if ratio <= CNN_TARGET else 'NOT met'} ({ratio:.2f}).")  # fmt: skip
    peers = {t: s for t, s in med.items() if t in PEER_TOOLS}
    if "strata" in med and peers:
        slower = [LABELS[t] for t, s in peers.items() if s <= med["strata"]]
        out.append(f"- {LABELS['strata']} faster than every peer measured: "
                   f"{'yes' if not slower else 'NO (not faster than ' + ', '.join(slower) + ')'}.")  # fmt: skip
    return out


def print_report(all_results: dict[str, dict[str, list[dict]]], args: argparse.Namespace) -> None:
    print(f"Seconds per epoch: median over {args.rounds} fresh processes (alternating order) of the median of "
          f"{args.epochs - 1} timed epochs after a warm-up epoch.")  # fmt: skip
    print()
    for task, results in all_results.items():
        print("\n".join(task_table(task, results, args)))
        print()
    print(overhead.machine_line())
    if args.peer_python:
        print(f"Peers ran in {args.peer_python} ({_versions(args.peer_python)}).")
    noisy = sum(overhead.disturbed(r, args.busy) for res in all_results.values() for rs in res.values() for r in rs)
    if noisy:
        print(f"WARNING: other processes used over {args.busy:.0%} of the CPUs during {noisy} measurement(s); "
              f"these figures are not reliable. Re-run on a quiet machine.")  # fmt: skip


def _versions(python: str) -> str:
    code = (
        "from importlib import metadata as m\nout=[]\n"
        "for p in ('torch','pytorch-lightning','keras','skorch'):\n"
        "    try: out.append(f'{p} {m.version(p)}')\n    except m.PackageNotFoundError: pass\n"
        "print(', '.join(out))"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "versions unknown"


# ---------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--tasks", default="mlp,cnn,lstm")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--peer-python", help="interpreter with pytorch-lightning, keras, skorch (a separate venv)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per process, the first one a warm-up")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per tool and task")
    ap.add_argument("--rows", type=int, help="training rows (fewer than the task's: a quick check only)")
    ap.add_argument("--busy", type=float, default=0.10, help="share of the CPUs used by others that disturbs")
    ap.add_argument("--retries", type=int, default=1, help="re-measurements of a disturbed process")
    ap.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for a quiet machine")
    ap.add_argument("--tool", choices=TOOLS, help="measure one tool on --task in this process, one JSON line")
    ap.add_argument("--task", choices=TASKS, default="mlp")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.tool:
        rec = measure(task_with_peers(args.task), args.tool, args.epochs, args.rows)
        print(json.dumps({"task": args.task, **rec}), flush=True)
        return
    pythons: dict[str, str | None] = {}
    results = {task: run_task(task, args, pythons) for task in args.tasks.split(",")}
    print_report(results, args)
    skipped = [t for t in PEER_TOOLS if t in args.tools.split(",") and pythons.get(t) is None]
    if skipped:
        print(f"Skipped (cannot be imported here or in --peer-python): {', '.join(skipped)}.")


if __name__ == "__main__":
    main()
