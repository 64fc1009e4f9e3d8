"""Every tracked run can be read back with MLflow's own client: params, metric history, artifacts, tags."""

from __future__ import annotations

import os

import numpy as np
import pytest

import strata
from strata.fingerprint import weights_hash
from strata.track.store import DEFAULT_URI, ENV, Store, resolve_uri


def test_a_run_is_readable_through_mlflow(tracked, client, mixed_frame, tmp_path):
    recipe = tracked("readback", card={"intended_use": "tests"}, evaluate={"bootstrap": 100})
    result = strata.train(recipe, data=mixed_frame, out=tmp_path / "m", quiet=True)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "readback"
    # params: the whole resolved recipe, by dotted key
    assert run.data.params["train.epochs"] == "5"
    assert run.data.params["model.hidden"] == "[16]"
    assert set(run.data.params) == set(strata.Recipe.from_dict(recipe).flat())
    # per-epoch metrics as steps, equal to the history
    history = client.get_metric_history(result.run_id, "val_loss")
    assert [m.step for m in history] == [h["epoch"] for h in result.history]
    np.testing.assert_allclose([m.value for m in history], [h["val_loss"] for h in result.history])
    # final metrics
    test = result.metrics["test"]
    assert run.data.metrics["test_accuracy"] == pytest.approx(test["accuracy"])
    # their bootstrap intervals beside them
    assert run.data.metrics["test_accuracy_ci_low"] == pytest.approx(test["ci"]["accuracy"][0])
    assert run.data.metrics["test_accuracy_ci_high"] == pytest.approx(test["ci"]["accuracy"][1])
    # fingerprint tags, the same as the bundle's
    meta = result.model.meta
    assert run.data.tags["strata.data_hash"] == meta["fingerprint"]["data"]
    assert run.data.tags["strata.weights_hash"] == weights_hash(result.model.network.state_dict())
    assert run.data.tags["strata.recipe_hash"] == meta["fingerprint"]["recipe"]
    assert run.data.tags["strata.seed.model"] == str(meta["seeds"]["model"])
    assert run.data.tags["strata.env.torch"] == meta["versions"]["torch"]
    assert run.data.tags["strata.data_source"] == "dataframe"
    assert meta["run"] == {"id": result.run_id, "experiment": "readback", "tracking_uri": recipe["track"]["uri"]}
    # artifacts: the bundle, and its card, recipe, report and plots at the top
    top = {a.path for a in client.list_artifacts(result.run_id)}
    plots = {p.name for p in (tmp_path / "m").glob("*.png")}
    assert {"learning_curve.png", "confusion_matrix.png", "roc.png", "reliability.png"} <= plots
    assert top == {"bundle", "model_card.md", "recipe.yaml", "report.html", *plots}
    bundle = {a.path for a in client.list_artifacts(result.run_id, "bundle")}
    assert {"bundle/weights.safetensors", "bundle/meta.json", "bundle/model_card.md"} <= bundle


def test_a_run_without_a_bundle_folder_still_logs_the_bundle(tracked, client, mixed_frame):
    result = strata.train(tracked("no-out"), data=mixed_frame, quiet=True)
    assert result.path is None
    assert "bundle/weights.safetensors" in {a.path for a in client.list_artifacts(result.run_id, "bundle")}


def test_track_false_writes_nothing(mixed_frame, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV, raising=False)
    from tests.conftest import tiny_recipe

    result = strata.train(tiny_recipe(), data=mixed_frame, quiet=True)
    assert result.run_id is None and "run" not in result.model.meta
    assert not (tmp_path / "strata-runs").exists()


def test_default_store_is_sqlite_under_strata_runs(mixed_frame, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV, raising=False)
    from tests.conftest import tiny_recipe

    recipe = {**tiny_recipe(), "track": True, "name": "local"}
    result = strata.train(recipe, data=mixed_frame, quiet=True)
    assert (tmp_path / "strata-runs" / "mlflow.db").is_file()
    assert (tmp_path / "strata-runs" / "artifacts" / "local").is_dir()  # artifacts beside the database
    assert Store.open(DEFAULT_URI).client.get_run(result.run_id).info.status == "FINISHED"


def test_uri_precedence(monkeypatch):
    monkeypatch.setenv(ENV, "sqlite:///from-env.db")
    assert resolve_uri("sqlite:///from-recipe.db") == "sqlite:///from-recipe.db"
    assert resolve_uri(None) == "sqlite:///from-env.db"
    monkeypatch.delenv(ENV)
    assert resolve_uri(None) == DEFAULT_URI == "sqlite:///strata-runs/mlflow.db"


def test_env_variable_points_training_at_another_store(store_uri, mixed_frame, monkeypatch, client):
    monkeypatch.setenv(ENV, store_uri)
    from tests.conftest import tiny_recipe

    result = strata.train({**tiny_recipe(), "track": {"experiment": "via-env"}}, data=mixed_frame, quiet=True)
    assert client.get_run(result.run_id).info.status == "FINISHED"


def test_unreachable_server_fails_before_training(mixed_frame, monkeypatch):
    import strata.workflow

    def too_late(*args, **kwargs):
        raise AssertionError("training started before the tracking server was checked")

    monkeypatch.setattr(strata.workflow, "prepare", too_late)
    from tests.conftest import tiny_recipe

    recipe = {**tiny_recipe(), "track": {"uri": "http://127.0.0.1:9"}}
    with pytest.raises(
        strata.TrackingError, match=r"^tracking server 'http://127.0.0.1:9' is unreachable .*track: false$"
    ):
        strata.train(recipe, data=mixed_frame, quiet=True)


def test_unwritable_store_is_one_line(mixed_frame, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    from tests.conftest import tiny_recipe

    recipe = {**tiny_recipe(), "track": {"uri": f"sqlite:///{tmp_path}/file/mlflow.db"}}
    with pytest.raises(strata.TrackingError, match="cannot create the tracking store"):
        strata.train(recipe, data=mixed_frame, quiet=True)


def test_a_failed_training_is_recorded_as_failed(tracked, client, mixed_frame):
    recipe = tracked("diverges", train={"epochs": 3, "optimizer": {"name": "sgd", "lr": 1e6, "momentum": 0.9}})
    with pytest.raises(strata.TrainingError):
        strata.train(recipe, data=mixed_frame, quiet=True)
    runs = client.search_runs([client.get_experiment_by_name("diverges").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


@pytest.mark.parametrize(
    ("make", "uri", "why"),
    [
        (
            lambda d: (d / "junk.db").write_text("junk, not a database"),
            "sqlite:///{d}/junk.db",
            "file is not a database",
        ),
        (lambda d: (d / "db").mkdir(), "sqlite:///{d}/db", "unable to open database file"),
    ],
)
def test_a_broken_sqlite_store_is_one_line(tmp_path, capsys, make, uri, why):
    from tests.test_cli import strata as cli

    make(tmp_path)
    uri = uri.format(d=tmp_path)
    code, _, err = cli(capsys, "runs", "list", "--tracking-uri", uri)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"cannot open the tracking store '{uri}': {why}" in err


def test_a_missing_database_driver_names_the_package(tmp_path):
    import importlib.util

    from strata.track.store import Store

    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg is installed")
    with pytest.raises(
        strata.TrackingError,
        match=r"^cannot open the tracking store 'postgresql://u:\*\*\*@127.0.0.1:9/db': Python package 'psycopg' "
        r"is not installed \(pip install 'psycopg\[binary\]'\)$",
    ):
        Store.open("postgresql://u:secret@127.0.0.1:9/db")


def test_closing_a_run_keeps_mlflow_from_printing_links(monkeypatch):
    """MLflow prints "🏃 View run ..." when a run on a server ends, unless told not to."""
    from strata.track.run import LINKS_ENV, TrackedRun

    seen = []

    class Client:
        def set_terminated(self, run_id, status):
            seen.append(os.environ.get(LINKS_ENV))

    monkeypatch.delenv(LINKS_ENV, raising=False)
    run = TrackedRun(type("S", (), {"client": Client(), "uri": "http://x"})(), "0" * 32, "e")
    run.finish()
    assert seen == ["true"] and LINKS_ENV not in os.environ  # set for the call only
    monkeypatch.setenv(LINKS_ENV, "false")  # a user's own choice stands
    run.finish()
    assert seen[-1] == "false"


def test_opening_a_store_prints_no_warnings_of_mlflows_own(tmp_path):
    import subprocess
    import sys

    code = f"from strata.track.store import Store; Store.open('sqlite:///{tmp_path}/m.db')"
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
