"""`make bench`: the benchmark suite, written to bench/results.md with the machine, versions and date.

Runs, each in its own processes:
  bench/peers.py     strata against the floor and the peers on the MLP, CNN and LSTM tasks
  bench/scaling.py   training time and memory at 10k, 100k, 1M rows; batch prediction of 1M rows
  bench/startup.py   `strata --help` and `import strata`

About 25 minutes on an idle 2-core machine with the peers installed (--peer-python), 12 without.
Timings are only as good as the machine is quiet: each table says what share of the CPUs other
processes used, and warns when that spoils a figure.

Usage:
  python bench/suite.py [--peer-python /tmp/peers-venv/bin/python] [--out bench/results.md] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from overhead import cpu_name  # noqa: E402


def versions() -> str:
    names = ("strata", "torch", "numpy", "pandas", "pyarrow", "scikit-learn", "typer")
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    libc = " ".join(platform.libc_ver()) or "unknown libc"
    return f"Python {platform.python_version()}, {', '.join(found)}, {libc}"


def section(title: str, argv: list[str]) -> tuple[str, float]:
    """Run one benchmark script; its stdout (Markdown) under a heading, and the minutes it took."""
    print(f"# running {' '.join(argv)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    # stdout is the section's Markdown; stderr (each measurement as it comes) goes to the terminal
    done = subprocess.run([sys.executable, *argv], stdout=subprocess.PIPE, text=True, check=False)
    minutes = (time.perf_counter() - start) / 60
    body = done.stdout.strip() or "(no output)"
    if done.returncode:
        body += f"\n\nFAILED (exit {done.returncode}); its error output went to the terminal."
    command = " ".join(["python", *(Path(a).relative_to(HERE.parent).as_posix() if a.startswith(str(HERE)) else a
                                     for a in argv)])  # fmt: skip
    return f"## {title}\n\n`{command}` ({minutes:.1f} min)\n\n{body}\n", minutes


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--peer-python", help="interpreter with pytorch-lightning, keras and skorch (bench/README.md)")
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a check that the suite runs, no figures")
    ap.add_argument("--max-wait", default="60", help="seconds each measurement waits for a quiet machine")
    args = ap.parse_args()
    peers = [str(HERE / "peers.py"), "--max-wait", args.max_wait]
    peers += ["--peer-python", args.peer_python] if args.peer_python else []
    peers += ["--rounds", "1", "--epochs", "2", "--rows", "2000", "--max-wait", "0"] if args.quick else []
    scaling = [str(HERE / "scaling.py")] + (["--quick"] if args.quick else [])
    startup = [str(HERE / "startup.py")] + (["--runs", "3"] if args.quick else [])
    started = datetime.now(UTC)
    parts, total = [], 0.0
    for title, argv in (("Training speed against the floor and the peers", peers),
                        ("Scaling with the rows", scaling), ("Start-up", startup)):  # fmt: skip
        text, minutes = section(title, argv)
        parts.append(text)
        total += minutes
    header = (
        "# Benchmark results\n\n"
        f"Written by `make bench` (bench/suite.py) on {started.strftime('%Y-%m-%d %H:%M UTC')}, "
        f"{total:.0f} minutes in all{' (--quick: sizes too small for figures)' if args.quick else ''}.\n\n"
        f"Machine: {platform.node() or 'unknown'}, {sys.platform}, {platform.machine()}, {cpu_name()}, "
        f"{os.cpu_count()} CPUs.\n\nVersions: {versions()}.\n"
    )
    args.out.write_text("\n".join([header, *parts]), encoding="utf-8")
    print(f"# wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
