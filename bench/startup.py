"""Start-up time: `strata --help` and `import strata` in fresh interpreters, and what they import.

Targets: `strata --help` within 0.3 s; `import strata` imports none of MLflow, Optuna, FastAPI,
matplotlib (nor torch, pandas, scikit-learn: they load when first needed). Each command runs
`--runs` times in a fresh process; the table gives the median and the range of the wall times, with
a bare `python -c pass` and `import torch` for context.

Usage:
  python bench/startup.py              # a Markdown table
  python bench/startup.py --runs 21
  python -X importtime -c "import strata.cli" 2> imports.txt   # where the time goes
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import machine_line

HEAVY = ("torch", "mlflow", "optuna", "fastapi", "matplotlib", "pandas", "sklearn", "numpy", "pydantic", "rich")
HELP_TARGET = 0.3


def commands() -> dict[str, list[str]]:
    python = sys.executable
    cli = str(Path(python).parent / "strata")
    return {
        "python -c pass": [python, "-c", "pass"],
        "import strata": [python, "-c", "import strata"],
        "strata --help": [cli, "--help"] if Path(cli).exists() else [python, "-m", "strata", "--help"],
        "import torch (context)": [python, "-c", "import torch"],
    }


def wall_times(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint('MODULES:', *(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line.startswith("MODULES:")][-1].split()[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=11, help="fresh processes per command")
    args = ap.parse_args()
    print(f"Wall time of a fresh process, median of {args.runs} (range):")
    print()
    print("| command | median (s) | range (s) |")
    print("|---|---|---|")
    medians = {}
    for name, cmd in commands().items():
        times = wall_times(cmd, args.runs)
        medians[name] = statistics.median(times)
        print(f"| `{name}` | {medians[name]:.3f} | {min(times):.3f}-{max(times):.3f} |")
    print()
    help_code = "from strata.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass"
    for label, code in (("import strata", "import strata"), ("strata --help", help_code)):
        found = imported_after(code)
        print(f"- after `{label}`, of {', '.join(HEAVY)}: {', '.join(found) if found else 'none'} imported.")
    verdict = "met" if medians["strata --help"] <= HELP_TARGET else "NOT met"
    print(f"- `strata --help` <= {HELP_TARGET} s: {verdict} ({medians['strata --help']:.3f} s).")
    print()
    print(machine_line())


if __name__ == "__main__":
    main()
