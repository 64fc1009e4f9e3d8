"""The HTTP app: request schema from the pipeline, status codes, API key, warnings, and a real server."""

from __future__ import annotations

import json
import socket
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from strata.bundle import load  # noqa: E402
from strata.serving import create_app  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
ROW = {"island": "Dream", "bill_length_mm": 40.6, "bill_depth_mm": 17.2, "flipper_length_mm": 187.0,
       "body_mass_g": 3475.0, "sex": "male"}  # fmt: skip


@pytest.fixture(scope="module")
def model():
    return load(FIXTURES / "bundle_v1")


@pytest.fixture(scope="module")
def client(model):
    return TestClient(create_app(model, name="penguins", version=3), raise_server_exceptions=False)


def test_one_record_is_predicted_with_probabilities(client, model):
    response = client.post("/predict", json=ROW)
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["version"], body["warnings"]) == ("penguins", 3, [])
    [one] = body["predictions"]
    assert one["prediction"] in model.classes
    assert sum(one["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


def test_a_list_of_records_matches_predict_frame(client, model):
    rows = pd.read_csv(FIXTURES / "bundle_v1_rows.csv").head(5)
    records = json.loads(rows.to_json(orient="records"))
    response = client.post("/predict", json=records)
    assert response.status_code == 200
    expected = model.predict_frame(rows)
    got = response.json()["predictions"]
    assert [p["prediction"] for p in got] == expected["prediction"].tolist()
    probas = np.array([[p["probabilities"][c] for c in model.classes] for p in got])
    np.testing.assert_allclose(probas, expected[[f"proba_{c}" for c in model.classes]].to_numpy(), rtol=1e-6)


def test_missing_fields_are_imputed(client):
    assert client.post("/predict", json={"island": "Biscoe"}).status_code == 200


def test_a_wrong_type_names_the_field(client):
    response = client.post("/predict", json=[ROW, {**ROW, "body_mass_g": "heavy"}])
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["record"], error["field"]) == (1, "body_mass_g")
    assert "valid number" in error["msg"] and "'heavy'" in error["msg"]


def test_an_unknown_field_is_refused_with_a_suggestion(client):
    response = client.post("/predict", json={**ROW, "body_mass": 3000})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["field"] == "body_mass"
    assert "unknown field" in error["msg"] and "body_mass_g" in error["msg"]


@pytest.mark.parametrize("body", [[], 3, "a record", [ROW, 5]])
def test_a_body_of_the_wrong_shape_is_a_422(client, body):
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    assert "expected a JSON object" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize("body", [b'{"island": ', b"", b"\xff\xfe{", b"[" * 100_000, b"1" * 5000])
def test_malformed_json_is_a_400(client, body):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(("malformed JSON", "empty body"))


def test_a_value_no_branch_accepts_is_one_error(client):
    response = client.post("/predict", content=b'{"island": NaN, "body_mass_g": Infinity}')
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [e["field"] for e in errors] == ["body_mass_g", "island"]
    assert "finite number" in errors[0]["msg"] and "a string, a finite number or a boolean" in errors[1]["msg"]


def test_an_oversized_body_is_a_413(model):
    small = TestClient(create_app(model, max_body_bytes=200))
    assert small.post("/predict", json=ROW).status_code == 200
    assert small.post("/predict", json=[ROW] * 10).status_code == 413  # by Content-Length

    def chunks():  # no Content-Length: the bytes actually read are counted
        yield b"["
        for _ in range(10):
            yield json.dumps(ROW).encode() + b","
        yield b"{}]"

    assert small.post("/predict", content=chunks()).status_code == 413


def test_the_api_key_is_required_when_set(model):
    guarded = TestClient(create_app(model, api_key="s3cret"))
    assert guarded.post("/predict", json=ROW).status_code == 401
    assert guarded.post("/predict", json=ROW, headers={"X-API-Key": "wrong"}).status_code == 401
    assert guarded.get("/metadata").status_code == 401
    assert guarded.post("/predict", json=ROW, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert guarded.get("/health").status_code == 200  # for load balancers


def test_health_metadata_and_docs(client, model):
    assert client.get("/health").json() == {"status": "ok"}
    meta = client.get("/metadata").json()
    assert (meta["name"], meta["version"], meta["task"], meta["classes"]) == (
        "penguins",
        3,
        "multiclass",
        model.classes,
    )
    assert set(meta["input_schema"]["properties"]) == set(ROW)
    assert meta["card"].startswith("# Model card")
    assert client.get("/docs").status_code == 200
    assert "requestBody" in client.get("/openapi.json").json()["paths"]["/predict"]["post"]


def test_unusual_values_are_predicted_with_warnings(client):
    response = client.post("/predict", json={**ROW, "island": "Atlantis", "body_mass_g": 90_000.0})
    assert response.status_code == 200
    warnings = " ".join(response.json()["warnings"])
    assert "'island' = 'Atlantis' was not seen in training" in warnings
    assert "'body_mass_g' = 90000.0 is outside the training range [2700, 6300]" in warnings


def test_monitor_sees_each_prediction(model, client):
    class Counter:
        def __init__(self):
            self.rows = 0

        def update(self, frame, predictions):
            assert predictions.shape == (len(frame), len(model.classes))
            self.rows += len(frame)

        def report(self):
            return {"rows": self.rows}

    watched = TestClient(create_app(model, monitor=Counter()))
    watched.post("/predict", json=[ROW, ROW])
    assert watched.get("/monitor").json() == {"rows": 2}
    assert client.get("/monitor").status_code == 404


def test_a_server_fault_is_a_short_500(model):
    class Broken:
        pipeline, task, classes, meta = model.pipeline, model.task, model.classes, {}

        def predict_frame(self, frame):
            raise RuntimeError("secret internals")

    response = TestClient(create_app(Broken()), raise_server_exceptions=False).post("/predict", json=ROW)
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text


values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))  # fmt: skip
keys = st.one_of(st.sampled_from(sorted(ROW)), st.text(max_size=8))
records = st.dictionaries(keys, values, max_size=8)
bodies = st.one_of(records, st.lists(records, max_size=4), values)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_no_request_body_makes_the_server_fail(client, body):
    text = json.dumps(body)  # NaN and Infinity too: Python's json reads them
    assert client.post("/predict", content=text).status_code < 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_server_answers(model):
    import httpx
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(model), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        response = httpx.post(f"{base}/predict", json=ROW)
        assert response.status_code == 200
        assert response.json()["predictions"][0]["prediction"] == model.predict_frame([ROW])["prediction"].iloc[0]
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_boolean_or_a_string_in_a_numeric_field_is_a_422():
    from fastapi.testclient import TestClient

    import strata
    from strata.serving import create_app

    model = strata.load(FIXTURES / "bundle_v1")
    numeric = next(c["name"] for c in model.pipeline.columns if c["kind"] == "numeric")
    client = TestClient(create_app(model))
    for value in (True, "3"):
        response = client.post("/predict", json={numeric: value})
        assert response.status_code == 422 and response.json()["detail"][0]["field"] == numeric


@pytest.fixture(scope="module")
def regressors():
    import strata

    frame = strata.load_dataset("penguins").dropna(subset=["body_mass_g", "flipper_length_mm"])
    base = {"model": {"hidden": [8]}, "train": {"epochs": 2}, "track": False, "evaluate": False}
    one = strata.train({**base, "data": {"target": "body_mass_g"}}, data=frame, quiet=True).model
    two = strata.train({**base, "data": {"target": ["body_mass_g", "flipper_length_mm"]}}, data=frame, quiet=True).model
    return frame, one, two


def test_regression_values_match_predict_frame_for_one_and_several_targets(regressors):
    frame, one, two = regressors
    rows = frame.drop(columns=["body_mass_g"]).head(6)
    rows.iloc[0, rows.columns.get_loc("bill_length_mm")] = np.nan  # a missing number is sent as null, imputed
    records = json.loads(rows.to_json(orient="records"))
    got = TestClient(create_app(one)).post("/predict", json=records).json()["predictions"]
    np.testing.assert_allclose([p["prediction"] for p in got], one.predict_frame(rows)["prediction"], rtol=1e-6)
    rows = rows.drop(columns="flipper_length_mm")
    records = json.loads(rows.to_json(orient="records"))
    got = TestClient(create_app(two)).post("/predict", json=records).json()["predictions"]
    expected = two.predict_frame(rows)
    assert set(got[0]["prediction"]) == {"body_mass_g", "flipper_length_mm"}
    for target in ("body_mass_g", "flipper_length_mm"):
        np.testing.assert_allclose([p["prediction"][target] for p in got], expected[f"prediction_{target}"], rtol=1e-6)


def test_a_large_batch_is_predicted_off_the_event_loop_with_the_same_results(client, model):
    from strata.serving import INLINE_ROWS

    rows = pd.read_csv(FIXTURES / "bundle_v1_rows.csv")
    rows = pd.concat([rows] * (INLINE_ROWS // len(rows) + 2), ignore_index=True)
    assert len(rows) > INLINE_ROWS
    response = client.post("/predict", json=json.loads(rows.to_json(orient="records")))
    assert response.status_code == 200
    assert [p["prediction"] for p in response.json()["predictions"]] == model.predict_frame(rows)["prediction"].tolist()


def test_several_worker_processes_serve_on_one_port(tmp_path):
    import os
    import subprocess
    import sys

    import httpx

    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "strata", "serve", str(FIXTURES / "bundle_v1"), "--port", str(port),
               "--workers", "2"]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        answers = [httpx.post(f"{base}/predict", json=ROW, timeout=10) for _ in range(8)]
        assert {a.status_code for a in answers} == {200}
        assert len({json.dumps(a.json()["predictions"]) for a in answers}) == 1  # every worker predicts alike
        assert httpx.get(f"{base}/metadata").json()["name"] == load(FIXTURES / "bundle_v1").meta.get("name", "penguins")
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "Started parent process" in output or "Uvicorn running" in output


def test_workers_must_be_a_positive_number():
    from strata.errors import DataError
    from strata.serving import serve

    with pytest.raises(DataError, match="workers must be at least 1, got 0"):
        serve(FIXTURES / "bundle_v1", workers=0)


@pytest.fixture(scope="module")
def digits_model():
    import strata

    frame = strata.load_dataset("digits_images").head(300)
    recipe = {"data": {"target": "digit"}, "model": {"type": "cnn", "channels": [4], "hidden": [16]},
              "train": {"epochs": 1}, "track": False, "evaluate": False}  # fmt: skip
    return frame, strata.train(recipe, data=frame, quiet=True).model


def _png(pixels: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0]).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_an_image_is_served_as_pixels_or_as_a_base64_file(digits_model):
    frame, model = digits_model
    client = TestClient(create_app(model), raise_server_exceptions=False)
    images = frame["image"].tail(3).tolist()
    expected = model.predict_frame(frame.tail(3).drop(columns="digit"))
    as_lists = client.post("/predict", json=[{"image": im.tolist()} for im in images])
    as_files = client.post("/predict", json=[{"image": _png(im)} for im in images])
    for response in (as_lists, as_files):
        assert response.status_code == 200, response.text
        got = response.json()["predictions"]
        assert [p["prediction"] for p in got] == expected["prediction"].tolist()
        probas = [[p["probabilities"][str(c)] for c in model.classes] for p in got]
        np.testing.assert_allclose(probas, expected[[f"proba_{c}" for c in model.classes]].to_numpy(), atol=1e-6)
    assert "base64" in client.get("/metadata").json()["inputs"][0]["description"]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("not base64!", "not base64"),
        ("aGVsbG8gd29ybGQ=", "not an image file"),  # base64 of "hello world"
        ([[1, 2], [3]], "field 'image'"),  # ragged rows
        ([[1.0] * 5] * 5, "field 'image'|5x5|size"),  # the wrong size: the model's own check, still a 422
    ],
)
def test_a_bad_image_is_a_422_naming_the_field(digits_model, image, message):
    _, model = digits_model
    response = TestClient(create_app(model), raise_server_exceptions=False).post("/predict", json={"image": image})
    assert response.status_code == 422, response.text
    import re

    assert re.search(message, json.dumps(response.json()["detail"]))


def test_an_image_or_a_sequence_must_be_sent(digits_model):
    _, model = digits_model
    response = TestClient(create_app(model), raise_server_exceptions=False).post("/predict", json={})
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "image"


def test_a_sequence_is_served_as_a_list_of_numbers():
    import strata

    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=rng.integers(3, 13)) for _ in range(200)]
    frame = pd.DataFrame({"signal": arrays, "label": ["up" if a.sum() > 0 else "down" for a in arrays]})
    recipe = {"data": {"target": "label"}, "model": {"type": "gru", "hidden_size": 8}, "train": {"epochs": 1},
              "track": False, "evaluate": False}  # fmt: skip
    model = strata.train(recipe, data=frame, quiet=True).model
    client = TestClient(create_app(model), raise_server_exceptions=False)
    rows = frame.head(4).drop(columns="label")
    response = client.post("/predict", json=[{"signal": a.tolist()} for a in rows["signal"]])
    assert response.status_code == 200, response.text
    got = response.json()["predictions"]
    expected = model.predict_frame(rows)
    np.testing.assert_allclose([p["probabilities"]["up"] for p in got], expected["proba_up"], atol=1e-6)
    for bad in ([], [1.0, "x"], [[1.0, 2.0]]):  # empty; a string step; two features per step (trained on one)
        response = client.post("/predict", json={"signal": bad})
        assert response.status_code == 422 and "signal" in json.dumps(response.json()["detail"]), bad


def test_forecasts_and_long_tables_of_steps_are_refused_at_start_with_the_way_to_predict():
    from types import SimpleNamespace

    from strata.errors import DataError
    from strata.serving import _check_servable

    with pytest.raises(DataError, match="forecasting model is not served over JSON"):
        _check_servable(SimpleNamespace(task="forecast"), [])
    grouped = SimpleNamespace(task="binary", recipe=SimpleNamespace(data=SimpleNamespace(sequences={"id": "user"})))
    with pytest.raises(DataError, match=r"long table of steps \(data.sequences\).*strata predict"):
        _check_servable(grouped, [])
    exported = SimpleNamespace(task="binary", info={"sequences": {"id": "user", "order": "t"}})
    with pytest.raises(DataError, match=r"data\.sequences"):
        _check_servable(exported, [])


def test_columns_transform_like_a_dataframe_for_every_served_kind(model):
    import strata
    from strata.data.text_data import make_reviews
    from strata.features.pipeline import Columns

    reviews = make_reviews(120)
    recipe = {"data": {"target": "sentiment"}, "model": {"type": "bag"}, "train": {"epochs": 1}, "track": False,
              "evaluate": False}  # fmt: skip
    text_model = strata.train(recipe, data=reviews, quiet=True).model
    penguins = pd.read_csv(FIXTURES / "bundle_v1_rows.csv").head(4)
    penguins.loc[0, "island"] = "Atlantis"  # unseen category
    penguins.loc[1, "bill_length_mm"] = np.nan  # missing number
    for fitted, frame in ((model, penguins), (text_model, reviews.drop(columns="sentiment").head(4))):
        columns = Columns({n: frame[n].to_numpy() for n in frame.columns}, len(frame))
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            expected = fitted.pipeline.transform(frame)
            got = fitted.pipeline.transform(columns)
        assert [str(w.message) for w in seen[: len(seen) // 2]] == [str(w.message) for w in seen[len(seen) // 2 :]]
        assert got.keys() == expected.keys()
        for slot in expected:
            np.testing.assert_array_equal(got[slot], expected[slot])


def test_a_busy_model_is_not_waited_for_on_the_event_loop(model):
    from strata.serving import Predictor, input_columns

    predictor = Predictor(model, input_columns(model))
    frame = predictor.frame([{**ROW}])
    with predictor.lock:  # another request's prediction holds the model
        assert predictor(frame, wait=False) is None  # the caller hands the request to a thread instead
    labels, _ = predictor(frame, wait=False)
    assert labels[0] == model.predict_frame([ROW])["prediction"].iloc[0]
