"""A trained model behind HTTP: a FastAPI app whose request schema is generated from the model's
feature pipeline, and `serve` to run it with uvicorn.

    POST /predict    one record (a JSON object) or a list of records (a JSON array of objects)
    GET  /health     {"status": "ok"}, never behind the API key (for load balancers)
    GET  /metadata   name, version, task, classes, input schema, metrics and the model card
    GET  /monitor    the drift monitor's report (404 when the server runs without one)
    GET  /docs       OpenAPI documentation, with the generated request schema

Status codes: 200 a prediction (with `warnings` for values outside the training range and categories
never seen in training: they are predicted, not refused); 400 a body that is not JSON; 401 a missing
or wrong `X-API-Key`; 413 a body over `max_body_bytes`; 422 a body of the wrong shape, a field of the
wrong type, an unknown field, or data the model refuses (each error names the record and the field);
500 a fault of the server, with a short message and no traceback (which goes to the log).

Numeric, categorical, binary and text fields take JSON values; a sequence field takes a list of numbers
(or of steps, lists of numbers); an image field takes a base64-encoded image file (PNG, JPEG, ...) or
the pixels as nested lists. Never a path: the server reads no files for a client. `create_app` refuses
forecasting models and models trained on long tables of steps (`data.sequences`) at startup.
"""

import hmac
import logging
import math
import os
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import Field

from strata._labels import level_key
from strata.errors import DataError, StrataError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel

    from strata.features.pipeline import Columns

log = logging.getLogger("strata.serving")

INLINE_ROWS = 64  # requests up to this many records are predicted on the event loop, larger ones in a thread


class ClientError(Exception):
    """A request the server refuses: its status code and what to tell the client."""

    def __init__(self, status: int, detail: Any):
        super().__init__(detail)
        self.status, self.detail = status, detail


# ---- the input schema, from the pipeline's columns


def input_columns(model: Any) -> list[dict[str, Any]]:
    """The pipeline's input columns ({"name", "kind", "state"}); an ensemble's are its first member's."""
    if getattr(model, "pipeline", None) is None and not getattr(model, "members", None):
        raise DataError(f"cannot serve a {type(model).__name__}: it has no feature pipeline (`.pipeline.columns`)")
    return list(_pipeline(model).columns)


def _check_servable(model: Any, columns: list[dict[str, Any]]) -> None:
    if getattr(model, "task", None) == "forecast":
        raise DataError("a forecasting model is not served over JSON yet: forecast from a table with `strata.load`")
    recipe = getattr(model, "recipe", None)
    grouped = getattr(getattr(recipe, "data", None), "sequences", None) or getattr(model, "info", {}).get("sequences")
    if grouped:
        raise DataError("a model trained on a long table of steps (data.sequences) is not served over JSON yet; "
                        "predict with `strata predict`, which groups the steps by id")  # fmt: skip


NUMBER = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # a JSON number: true or "3" are refused
STEPS = Annotated[list[NUMBER], Field(min_length=1)]
IMAGE = str | Annotated[list[Annotated[list[NUMBER | list[NUMBER]], Field(min_length=1)]], Field(min_length=1)]


def _field_type(kind: str) -> Any:
    if kind == "numeric":  # missing values are imputed
        return NUMBER | None
    if kind == "text":
        return str | None
    if kind == "sequence":  # (T,) numbers or (T, features) steps; no imputation, so required
        return STEPS | Annotated[list[STEPS], Field(min_length=1)]
    if kind == "image":  # a base64-encoded image file, or pixels as (H, W) or (H, W, C) nested lists; required
        return IMAGE
    number = Annotated[float, Field(allow_inf_nan=False)]
    return str | bool | int | number | None  # categorical and binary: a level as the training data spelled it


def record_model(columns: list[dict[str, Any]]) -> "type[BaseModel]":
    """A pydantic model of one record: a field per input column, all optional (missing values are
    imputed as in training), unknown fields refused. Fields are aliased, so any column name works."""
    from pydantic import ConfigDict, Field, create_model

    fields = {
        f"f{i}": (_field_type(c["kind"]), Field(*_default(c["kind"]), alias=c["name"], description=_describe(c)))
        for i, c in enumerate(columns)
    }
    config = ConfigDict(extra="forbid", populate_by_name=False)
    return create_model("Record", __config__=config, **fields)


def _default(kind: str) -> tuple[Any, ...]:
    """Fields a model can impute default to None; a sequence or an image must be sent."""
    return () if kind in ("sequence", "image") else (None,)


def _describe(column: dict[str, Any]) -> str:
    state, kind = column["state"], column["kind"]
    if kind == "numeric":
        low, high = _numeric_range(state)
        return f"number; trained on [{low:g}, {high:g}]; missing -> {state.get('fill', 0):g}"
    if kind == "categorical":
        return "category: " + ", ".join(_levels(column))
    if kind == "binary":
        return "one of: " + ", ".join(state.get("levels", []))
    if kind == "image":
        (h, w), c = state["size"], state["channels"]
        return (f"image {h}x{w}, {c} channel{'s' if c > 1 else ''}: a base64-encoded image file (PNG, JPEG, ...) "
                f"or pixels as nested lists ({h} rows of {w} {'values' if c == 1 else f'[{c} values]'})")  # fmt: skip
    if kind == "sequence":
        features = state.get("features", 1)
        steps = "numbers (steps)" if features == 1 else f"steps, each a list of {features} numbers"
        return f"sequence: a list of {steps}"
    return kind


def _numeric_range(state: dict[str, Any]) -> tuple[float, float]:
    """The training range: the stored min/max, else center ± 6 scale."""
    if state.get("range"):
        return float(state["range"][0]), float(state["range"][1])
    center, scale = float(state.get("center", 0.0)), float(state.get("scale", 1.0))
    return center - 6 * scale, center + 6 * scale


def _levels(column: dict[str, Any]) -> list[str]:
    from strata.features.categorical import MISSING, UNSEEN

    return [v for v in column["state"].get("vocab", []) if v not in (UNSEEN, MISSING)]


# ---- reading a request


async def read_body(request: "Request", limit: int) -> bytes:
    """The body, refused with 413 when the declared length or the bytes actually sent exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ClientError(400, f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > limit:
            raise ClientError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ClientError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    import json

    if not body.strip():
        raise ClientError(400, "empty body: send a JSON object (one record) or a JSON array of records")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:  # ValueError: bad JSON, bad UTF-8, an over-long integer
        detail = str(err) if isinstance(err, ValueError) else "nested too deeply"
        raise ClientError(400, f"malformed JSON: {detail[:200]}") from None


def validate_records(payload: Any, record: "type[BaseModel]", names: list[str]) -> list[dict[str, Any]]:
    """One record or a list of records, each validated; all field errors are reported together."""
    from pydantic import ValidationError

    if isinstance(payload, dict):
        payload, single = [payload], True
    elif isinstance(payload, list) and payload:
        single = False
    else:
        got = "an empty array" if payload == [] else f"JSON {_json_kind(payload)}"
        expected = f"expected a JSON object (one record) or an array of records, got {got}"
        raise ClientError(422, [_error(None, None, expected)])
    rows, errors = [], []
    for i, item in enumerate(payload):
        where = None if single else i
        if not isinstance(item, dict):
            errors.append(_error(where, None, f"expected a JSON object (a record), got JSON {_json_kind(item)}"))
            continue
        try:
            rows.append(record.model_validate(item).model_dump(by_alias=True))
        except ValidationError as err:
            errors += _field_errors(where, err.errors(include_url=False), names)
    if errors:
        raise ClientError(422, errors[:50])
    return rows


def _json_kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _error(record: int | None, field: str | None, message: str) -> dict[str, Any]:
    loc = ["body", *([record] if record is not None else []), *([field] if field is not None else [])]
    return {"loc": loc, "record": record, "field": field, "msg": message}


def _field_errors(record: int | None, errors: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """One error per field: a value a union refuses fails each of its branches, said once here."""
    by_field: dict[str | None, list[dict[str, Any]]] = {}
    for error in errors:
        by_field.setdefault(str(error["loc"][0]) if error["loc"] else None, []).append(error)
    return [_field_error(record, field, found, names) for field, found in by_field.items()]


def _field_error(record: int | None, field: str | None, errors: list[dict[str, Any]], names: list[str]) -> dict:
    first = errors[0]
    if first["type"] == "extra_forbidden":
        message = f"unknown field '{field}'{did_you_mean(field, names)}; the model's inputs are {', '.join(names)}"
    else:
        expected = first["msg"] if len(errors) == 1 else "Input should be a string, a finite number or a boolean"
        message = f"field '{field}': {expected} (got {_shown(first.get('input'))})"
    return _error(record, field, message)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- warnings: predicted, but outside what the model saw


def input_warnings(rows: list[dict[str, Any]], columns: list[dict[str, Any]]) -> list[str]:
    """Values outside the training range and categories not seen in training, one line each."""
    found = []
    for i, row in enumerate(rows):
        for column in columns:
            value = row.get(column["name"])
            if value is not None:
                message = _unusual(column, value)
                if message:
                    where = f"record {i}: " if len(rows) > 1 else ""
                    found.append(f"{where}'{column['name']}' = {_shown(value)} {message}")
    return found[:100]


def _unusual(column: dict[str, Any], value: Any) -> str | None:
    kind, state = column["kind"], column["state"]
    if kind == "numeric":
        low, high = _numeric_range(state)
        if isinstance(value, int | float) and not low <= value <= high:
            return f"is outside the training range [{low:g}, {high:g}]; the prediction extrapolates"
    elif kind == "categorical" and level_key(value) not in state.get("vocab", []):
        return f"was not seen in training{did_you_mean(value, _levels(column))}; encoded as unknown"
    elif kind == "binary" and level_key(value) not in state.get("levels", []):
        return f"is not one of {', '.join(state.get('levels', []))}; treated as missing ('{state.get('mode')}')"
    return None


# ---- predicting


class Predictor:
    """Runs the model on validated rows without building DataFrames: the rows become named columns
    (`Columns`; numbers as float64 arrays) and `predict_arrays` gives labels and probabilities or
    values, from which the response is built. Inference is serialized: warnings are captured per call (the `warnings`
    module is process-wide) and a backend need not be thread-safe."""

    def __init__(self, model: Any, columns: list[dict[str, Any]]):
        self.model, self.names = model, [c["name"] for c in columns]
        self.numeric = {c["name"] for c in columns if c["kind"] == "numeric"}
        self.arrays = {c["name"]: c for c in columns if c["kind"] in ("image", "sequence")}
        self.classes = [level_key(c) for c in getattr(model, "classes", []) or []]
        self.targets = list(_pipeline(model).target["columns"])
        self.lock = threading.Lock()

    def frame(self, rows: list[dict[str, Any]]) -> "Columns":
        from strata.features.pipeline import Columns

        return Columns({name: self._column(name, rows) for name in self.names}, len(rows))

    def _column(self, name: str, rows: list[dict[str, Any]]) -> Any:
        values = [row[name] for row in rows]
        if name in self.numeric:  # validated numbers or None: float64 with NaN for missing, as read from a file
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        if name in self.arrays:  # one array per row, in an object column
            column = np.empty(len(values), dtype=object)
            for i, value in enumerate(values):
                column[i] = _array(value, self.arrays[name], None if len(rows) == 1 else i)
            return column
        return values

    def __call__(self, frame: "Columns", wait: bool = True) -> tuple[np.ndarray | None, np.ndarray] | None:
        """(labels, probabilities) for classifiers, (None, values (N, targets)) for regression; None
        when `wait` is False and another prediction holds the model."""
        if not self.lock.acquire(blocking=wait):
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the response says the same in `warnings`, per record and field
                return self.model.predict_arrays(frame)
        finally:
            self.lock.release()

    def shaped(self, labels: np.ndarray | None, outputs: np.ndarray) -> list[dict[str, Any]]:
        """[{"prediction", "probabilities"}] for classifiers, [{"prediction"}] for regression (a dict
        of target -> value when the model has several targets)."""
        if labels is not None:
            return [
                {"prediction": _plain(label), "probabilities": dict(zip(self.classes, map(_plain, row), strict=True))}
                for label, row in zip(labels.tolist(), outputs.tolist(), strict=True)
            ]
        if len(self.targets) == 1:
            return [{"prediction": _plain(v)} for v in outputs[:, 0].tolist()]
        return [{"prediction": dict(zip(self.targets, map(_plain, row), strict=True))} for row in outputs.tolist()]

    @staticmethod
    def array(labels: np.ndarray | None, outputs: np.ndarray) -> np.ndarray:
        """What a monitor sees: class probabilities (N, classes) for classifiers, else the predicted values."""
        outputs = np.asarray(outputs, dtype=np.float64)
        return outputs if labels is not None or outputs.shape[1] > 1 else outputs[:, 0]


def _array(value: Any, column: dict[str, Any], record: int | None) -> np.ndarray:
    """A sequence's steps or an image's pixels as an array. A base64-encoded image file is decoded as
    `strata predict` reads an image file: upright, converted and resized to the model's input."""
    field = column["name"]
    try:
        if column["kind"] == "image" and isinstance(value, str):
            return _decoded_image(value, column["state"])
        return np.asarray(value, dtype=np.float64)
    except ValueError as err:  # ragged nested lists, bad base64, data that is not an image file
        raise ClientError(422, [_error(record, field, f"field '{field}': {err}")]) from None


def _decoded_image(text: str, state: dict[str, Any]) -> np.ndarray:
    import base64
    import binascii

    from strata.data.images import decode_bytes

    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("expected a base64-encoded image file or nested lists of pixels, got a string that is "
                         "not base64") from None  # fmt: skip
    return decode_bytes(data, tuple(state["size"]), state["channels"])


def _pipeline(model: Any) -> Any:
    pipeline = getattr(model, "pipeline", None)
    return pipeline if pipeline is not None else model.members[0].pipeline


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars unwrapped, NaN and infinity as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Watch:
    """Feeds a monitor after each response; a monitor's fault is logged, never the client's problem."""

    def __init__(self, monitor: Any):
        self.monitor, self.lock = monitor, threading.Lock()

    def update(self, frame: "pd.DataFrame", predictions: np.ndarray) -> None:
        try:
            with self.lock:
                self.monitor.update(frame, predictions)
        except Exception:
            log.exception("monitor update failed")

    def report(self) -> dict[str, Any]:
        with self.lock:
            return self.monitor.report()


# ---- the app


def describe(model: Any, columns: list[dict[str, Any]], record: "type[BaseModel]", name: str, version: Any) -> dict:
    """What GET /metadata returns."""
    meta = getattr(model, "meta", {}) or {}
    return {
        "name": name,
        "version": version,
        "task": getattr(model, "task", None),
        "classes": [_plain(c) for c in getattr(model, "classes", []) or []],
        "inputs": [{"name": c["name"], "kind": c["kind"], "description": _describe(c)} for c in columns],
        "input_schema": record.model_json_schema(by_alias=True),
        "metrics": meta.get("metrics", {}),
        "fingerprint": meta.get("fingerprint"),
        "card": _card(model),
    }


def _card(model: Any) -> str | None:
    from strata import card

    try:
        return card.render(model)
    except Exception:  # an ensemble or an exported model may lack what the card reads
        log.debug("no model card for %s", type(model).__name__, exc_info=True)
        return None


def _identity(model: Any, name: str | None, version: Any) -> tuple[str, Any]:
    """The served name and version: given, else the registered ones, else the bundle's name."""
    meta = getattr(model, "meta", {}) or {}
    registered = meta.get("registered") or {}
    recipe = getattr(model, "recipe", None)
    fallback = meta.get("name") or getattr(recipe, "display_name", None) or "model"
    return name or registered.get("name") or fallback, version if version is not None else registered.get("version")


def create_app(
    model: Any,
    *,
    name: str | None = None,
    version: str | int | None = None,
    api_key: str | None = None,
    max_body_bytes: int = 1_000_000,
    monitor: Any = None,
    backend: str = "torch",
) -> "FastAPI":
    """The app serving `model`: anything with `predict_frame(frame)` and a feature pipeline (a
    TrainedModel, an Ensemble, an exported ONNX model). `backend` is recorded in /metadata only."""
    from fastapi import FastAPI

    columns = input_columns(model)
    _check_servable(model, columns)
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be a positive number of bytes, got {max_body_bytes}")
    name, version = _identity(model, name, version)
    record = record_model(columns)
    predictor = Predictor(model, columns)
    watch = Watch(monitor) if monitor is not None else None
    about = f"Predictions of the {getattr(model, 'task', '')} model '{name}' ({backend} backend)."
    app = FastAPI(title=f"Strata: {name}", version=str(version or "unversioned"), description=about)
    app.state.metadata = {**describe(model, columns, record, name, version), "backend": backend}
    _routes(app, predictor, record, api_key, max_body_bytes, watch)
    _error_handlers(app)
    return app


def _body_schema(record: "type[BaseModel]") -> dict[str, Any]:
    schema = record.model_json_schema(by_alias=True)
    return {"anyOf": [schema, {"type": "array", "items": schema, "minItems": 1}]}


def _routes(
    app: "FastAPI", predictor: Predictor, record: "type[BaseModel]", key: str | None, limit: int, watch
) -> None:
    from fastapi import BackgroundTasks, Depends, Request
    from fastapi.concurrency import run_in_threadpool

    names, columns = predictor.names, input_columns(predictor.model)
    meta = app.state.metadata
    guarded = [Depends(_key_check(key))]
    body = {"requestBody": {"required": True, "content": {"application/json": {"schema": _body_schema(record)}}}}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metadata", dependencies=guarded)
    async def metadata() -> dict[str, Any]:
        return meta

    @app.get("/monitor", dependencies=guarded)
    def monitor_report() -> Any:
        if watch is None:
            raise ClientError(
                404,
                "this server has no drift monitor: the model carries no training reference "
                "(forecasts and image models have none)",
            )
        return watch.report()

    @app.post("/predict", dependencies=guarded, openapi_extra=body)
    async def predict(request: Request, background: BackgroundTasks) -> dict[str, Any]:
        rows = validate_records(parse_json(await read_body(request, limit)), record, names)
        # A few table rows are predicted on the event loop (a thread hop costs more than the model) when
        # the model is free; a large batch, images to decode, or a busy model go to a thread, so the loop
        # never waits (health checks, other clients' I/O).
        inline = len(rows) <= INLINE_ROWS and not predictor.arrays
        frame = predictor.frame(rows) if inline else await run_in_threadpool(predictor.frame, rows)
        answer = _predicted(predictor, frame, wait=False) if inline else None
        labels, outputs = answer or await run_in_threadpool(_predicted, predictor, frame)
        if watch is not None:
            background.add_task(watch.update, frame, predictor.array(labels, outputs))
        return {"model": meta["name"], "version": meta["version"], "predictions": predictor.shaped(labels, outputs),
                "warnings": input_warnings(rows, columns)}  # fmt: skip


def _predicted(
    predictor: Predictor, frame: "Columns", wait: bool = True
) -> tuple[np.ndarray | None, np.ndarray] | None:
    try:
        return predictor(frame, wait)
    except StrataError as err:  # the data, not the server: say what the model refused
        raise ClientError(422, [_error(None, None, str(err))]) from None


def _key_check(key: str | None):
    from fastapi import Request

    async def check(request: Request) -> None:  # async: FastAPI would run a plain function in a thread
        if key is None:
            return
        given = request.headers.get("x-api-key")
        if given is None or not hmac.compare_digest(given.encode(), key.encode()):
            raise ClientError(401, "missing or wrong API key: send it in the X-API-Key header")

    return check


def _error_handlers(app: "FastAPI") -> None:
    from fastapi.responses import JSONResponse

    async def refused(request: "Request", err: ClientError) -> "JSONResponse":
        headers = {"WWW-Authenticate": "X-API-Key"} if err.status == 401 else None
        return JSONResponse({"detail": err.detail}, status_code=err.status, headers=headers)

    async def failed(request: "Request", err: Exception) -> "JSONResponse":
        log.error("error serving %s %s", request.method, request.url.path, exc_info=err)
        return JSONResponse({"detail": "internal server error (the server log has the details)"}, status_code=500)

    app.add_exception_handler(ClientError, refused)
    app.add_exception_handler(Exception, failed)


# ---- running it


def serve(
    model_or_uri: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key_env: str | None = None,
    max_body_bytes: int = 1_000_000,
    backend: str = "torch",
    monitor: Any = True,
    *,
    log_level: str = "info",
    workers: int = 1,
) -> None:
    """Serve a model (a bundle folder, a `models:/NAME@ALIAS` URI, or a loaded model) with uvicorn,
    on loopback unless `host` says otherwise. `api_key_env` names the environment variable holding
    the API key. `monitor`: True for strata's drift monitor (when installed), a monitor object, or
    False. `backend="onnx"` exports the bundle to ONNX and serves it with onnxruntime. `workers` > 1
    runs that many server processes on the port (each loads the model and keeps its own monitor)."""
    import uvicorn

    key = _api_key(api_key_env)
    if workers < 1:
        raise DataError(f"workers must be at least 1, got {workers}")
    if workers > 1:
        _serve_workers(model_or_uri, host, port, api_key_env, max_body_bytes, backend, monitor, log_level, workers)
        return
    model = _loaded(model_or_uri, backend)
    watch = _monitor(model) if monitor is True else (monitor or None)
    app = create_app(model, api_key=key, max_body_bytes=max_body_bytes, monitor=watch, backend=backend)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


SPEC_VARIABLE = "STRATA_SERVE_SPEC"  # what each worker process serves (JSON), set by the parent


def _serve_workers(source, host, port, api_key_env, max_body_bytes, backend, monitor, log_level, workers) -> None:
    """Several uvicorn worker processes: the model is resolved once here (an ONNX export written
    once), and each worker builds the same app from the JSON spec in the environment."""
    import json

    import uvicorn

    if not isinstance(source, str | os.PathLike) or monitor not in (True, False):
        raise DataError("workers > 1 needs the model as a folder or models:/ URI (each worker loads it) "
                        "and monitor True or False")  # fmt: skip
    model = _loaded(source, backend)
    name, version = _identity(model, None, None)
    folder = getattr(model, "path", None) if hasattr(model, "session") else None
    spec = {
        "source": str(folder or source),
        "backend": "onnx" if folder else backend,
        "name": name,
        "version": version,
        "api_key_env": api_key_env,
        "max_body_bytes": max_body_bytes,
        "monitor": monitor,
    }
    os.environ[SPEC_VARIABLE] = json.dumps(spec)
    del model
    uvicorn.run("strata.serving:app_from_environment", factory=True, workers=workers, host=host, port=port,
                log_level=log_level)  # fmt: skip


def app_from_environment() -> "FastAPI":
    """A worker's app, from the spec `serve(..., workers=N)` left in the environment."""
    import json

    if SPEC_VARIABLE not in os.environ:
        raise DataError(f"${SPEC_VARIABLE} is not set: start workers with `strata serve MODEL --workers N`")
    spec = json.loads(os.environ[SPEC_VARIABLE])
    model = _loaded(spec["source"], spec["backend"])
    watch = _monitor(model) if spec["monitor"] else None
    return create_app(model, name=spec["name"], version=spec["version"], api_key=_api_key(spec["api_key_env"]),
                      max_body_bytes=spec["max_body_bytes"], monitor=watch, backend=spec["backend"])  # fmt: skip


def _api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise DataError(f"API key variable ${variable} is not set (or empty): export {variable}=<key> first")
    return key


def _loaded(source: Any, backend: str) -> Any:
    """The model to serve: loaded with strata.load; for the onnx backend an export folder (model.onnx)
    as it is, or a bundle exported to a temporary folder first (the export checks its parity)."""
    import strata

    if backend not in ("torch", "onnx"):
        raise DataError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    path = source if isinstance(source, str | os.PathLike) else None
    if path is not None and (Path(path) / "model.onnx").is_file():
        backend = "onnx"  # an exported folder is served by onnxruntime, whatever --backend says
    if backend == "onnx":
        from strata.runtime import OnnxModel

        if path is not None and (Path(path) / "model.onnx").is_file():
            return OnnxModel(path)
        if hasattr(source, "session"):  # an OnnxModel already
            return source
    model = strata.load(path) if path is not None else source
    return model if backend == "torch" else _exported(model)


def _exported(model: Any) -> Any:
    import tempfile

    from strata.export import export
    from strata.runtime import OnnxModel

    folder = Path(tempfile.mkdtemp(prefix="strata-serve-onnx-")) / "export"
    export(model, "onnx", folder)
    served = OnnxModel(folder)
    served.meta = model.meta  # name, metrics, registration: what /metadata shows
    served.reference = model.reference  # the training data, for /monitor
    return served


def _monitor(model: Any) -> Any:
    """Drift of the recent requests against the training reference the bundle keeps (None without one)."""
    from strata.monitoring import Monitor

    reference = getattr(model, "reference", None)
    if reference is None:
        log.info("no drift monitor: this model has no training reference (reference.json)")
        return None
    return Monitor(reference)
