"""Against a real MLflow tracking server (HTTP): Strata's output stays its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on a free port (skipped where it does not start in 60 seconds)."""
    root = tmp_path_factory.mktemp("server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
              "--backend-store-uri", f"sqlite:///{root}/mlflow.db", "--artifacts-destination", str(root / "artifacts")]  # fmt: skip
    process = subprocess.Popen(mlflow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.skip("mlflow server did not start")
        yield uri
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_quiet_train_and_register_print_no_mlflow_chatter(server, tmp_path):
    from tests.conftest import make_mixed_frame

    make_mixed_frame().to_csv(tmp_path / "table.csv", index=False)
    (tmp_path / "recipe.yaml").write_text(
        f"data: {{path: {tmp_path / 'table.csv'}, target: label}}\nmodel: {{hidden: [8]}}\n"
        f"train: {{epochs: 2, batch_size: 32}}\nevaluate: false\ntrack: {{uri: '{server}', experiment: http}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"OMP_NUM_THREADS": "1"}

    def strata(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "strata", *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-1500:]
        return done

    trained = strata("train", "recipe.yaml", "-q")
    assert (trained.stdout, trained.stderr) == ("", "")  # no "🏃 View run ..." nor "🧪 View experiment ..."
    from strata.track.store import Store

    run = Store.open(server).all_runs("http")[0].info.run_id
    registered = strata("register", run[:8], "--name", "served", "--tracking-uri", server)
    assert registered.stdout.startswith("registered served version 1 (semver 1.0.0")
    assert "Waiting up to" not in registered.stdout + registered.stderr and registered.stderr == ""
