"""Start-up stays light: `import strata` loads none of the heavy engines (bench/startup.py times it)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("mlflow", "optuna", "fastapi", "matplotlib", "torch", "pandas", "sklearn")


def test_import_strata_loads_no_heavy_engine():
    code = f"import sys, strata\nprint([m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_help_loads_no_heavy_engine():
    code = (
        "import sys\nfrom strata.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stdout
