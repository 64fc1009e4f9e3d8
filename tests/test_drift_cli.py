"""strata drift: new rows against the training reference a bundle keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import strata
from strata.errors import BundleError
from tests.test_cli import strata as cli

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "penguins"
    strata.train({"data": {"dataset": "penguins", "target": "species"}, "train": {"epochs": 5}, "track": False},
                 out=path, quiet=True)  # fmt: skip
    return path


def test_training_rows_are_stable_and_shifted_rows_drift(penguins, tmp_path, capsys):
    rows = strata.load_dataset("penguins")
    ref = strata.load(penguins).reference
    assert ref["rows"] > 200 and "bill_length_mm" in ref["features"]
    rows.to_csv(tmp_path / "same.csv", index=False)
    code, out, err = cli(capsys, "drift", penguins, tmp_path / "same.csv", "--json")
    assert code == 0, err
    assert json.loads(out)["verdict"] == "stable"
    shifted = rows.assign(bill_length_mm=rows["bill_length_mm"] + 3 * rows["bill_length_mm"].std())
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    code, out, err = cli(capsys, "drift", penguins, tmp_path / "shifted.csv", "--out", tmp_path / "drift.png")
    assert code == 0, err
    assert "major drift" in out and "bill_length_mm" in out
    assert (tmp_path / "drift.png").read_bytes().startswith(b"\x89PNG")


def test_a_bundle_without_a_reference_says_so():
    with pytest.raises(BundleError, match="no training reference"):
        from strata.drift import offline_drift

        offline_drift(strata.load(FIXTURES / "bundle_v1"), FIXTURES / "bundle_v1_rows.csv")


def test_the_server_monitors_drift_of_its_requests(penguins):
    from fastapi.testclient import TestClient

    from strata.serving import _monitor, create_app

    model = strata.load(penguins)
    client = TestClient(create_app(model, monitor=_monitor(model)))
    rows = strata.load_dataset("penguins").drop(columns="species").head(60)
    shifted = rows.assign(bill_length_mm=rows["bill_length_mm"] + 40)
    records = [{k: (None if v != v else v) for k, v in r.items()} for r in shifted.to_dict("records")]
    assert client.post("/predict", json=records).status_code == 200
    report = client.get("/monitor").json()
    assert report["rows_seen"] == 60 and "bill_length_mm" in report["drifted"]


def test_an_exported_folder_serves_with_its_name_and_monitor(penguins, tmp_path):
    from fastapi.testclient import TestClient

    from strata.export import export
    from strata.runtime import OnnxModel
    from strata.serving import _loaded, _monitor, create_app

    export(strata.load(penguins), "onnx", tmp_path / "onnx")
    served = _loaded(str(tmp_path / "onnx"), "torch")  # a folder with model.onnx is served by onnxruntime
    assert isinstance(served, OnnxModel) and served.reference is not None
    client = TestClient(create_app(served, monitor=_monitor(served)))
    assert client.get("/metadata").json()["name"] == strata.load(penguins).meta["name"]
    row = strata.load_dataset("penguins").drop(columns="species").iloc[[0]]
    record = {k: (None if v != v else v) for k, v in row.to_dict("records")[0].items()}
    assert client.post("/predict", json=record).status_code == 200
    assert client.get("/monitor").json()["rows_seen"] == 1
