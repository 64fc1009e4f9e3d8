"""Serve an exported model (`strata.export`) with onnxruntime and numpy: no torch is imported.

`OnnxModel(folder).predict_frame(data)` gives the same table as `TrainedModel.predict_frame`: the
pipeline in `pipeline.json` prepares the inputs exactly as in training, the ONNX graph maps them to
raw outputs, and the head in `export.json` (softmax, sigmoid or identity) turns those into
probabilities or values, which the target's state decodes to labels or the target's units.

>>> from strata.runtime import OnnxModel     # doctest: +SKIP
>>> OnnxModel("serving/").predict(rows)      # doctest: +SKIP
array(['Adelie', 'Gentoo', ...], dtype=object)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strata.errors import BundleError, DataError

CHUNK = 8192  # rows per run, to bound memory


class OnnxModel:
    """An exported model folder (model.onnx, pipeline.json, export.json), ready to predict."""

    def __init__(self, folder: str | Path):
        import onnxruntime

        from strata.features.pipeline import Pipeline

        self.path = Path(folder)
        for name in ("model.onnx", "pipeline.json", "export.json"):
            if not (self.path / name).is_file():
                raise BundleError(f"'{self.path}' is not an ONNX export: missing {name} (write one with strata export)")
        self.info: dict[str, Any] = json.loads((self.path / "export.json").read_text(encoding="utf-8"))
        self.pipeline = Pipeline.from_json(json.loads((self.path / "pipeline.json").read_text(encoding="utf-8")))
        self.session = onnxruntime.InferenceSession(str(self.path / "model.onnx"), providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in self.info["inputs"]]
        self.meta = {"name": self.info.get("name", self.info["model"]), "metrics": self.info.get("metrics", {})}
        reference = self.path / "reference.json"  # for a server's /monitor
        self.reference = json.loads(reference.read_text(encoding="utf-8")) if reference.is_file() else None

    def __repr__(self) -> str:
        return f"<OnnxModel {self.info['model']!r}: {self.task} at '{self.path}'>"

    @property
    def task(self) -> str:
        return self.info["task"]

    @property
    def classes(self) -> list:
        return list(self.info["classes"])

    # ---- predictions
    def read(self, data: Any) -> pd.DataFrame:
        """`data` as a table: a DataFrame, records or a CSV/Parquet file (grouped into sequences by
        id when the model was trained with `data.sequences`)."""
        from strata.bundle import as_frame

        frame = as_frame(data)
        grouped = self.info.get("sequences")
        if grouped is None or frame.attrs.get("sequences"):
            return frame
        from strata.features.sequence import group

        names = self.pipeline.column_for("sequence")["state"].get("names")
        return group(frame, grouped["id"], grouped["order"], self.pipeline.target["columns"], [], names)

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The graph's outputs (logits or scaled values), float32 (N, outputs)."""
        inputs = self.pipeline.transform(frame)
        n = len(frame)
        parts = [
            self.session.run(None, {k: inputs[k][i : i + CHUNK] for k in self.inputs})[0] for i in range(0, n, CHUNK)
        ]
        return np.concatenate(parts) if parts else np.empty((0, self.info["head"]["size"]), np.float32)

    def _predictions(self, frame: pd.DataFrame) -> np.ndarray:
        return to_predictions(self.info["head"]["kind"], self.raw(frame)).astype(np.float64)

    def _labels(self, predictions: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[predictions.argmax(1)] if len(predictions) else np.array([])

    def _values(self, predictions: np.ndarray) -> np.ndarray:
        from strata.features import target

        return target.decode(predictions, self.info["target"])

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, (N, classes), columns in the order of `classes`."""
        if self.task == "regression":
            raise DataError("predict_proba needs a classifier; this model does regression (use predict)")
        return self._predictions(self.read(data))

    def predict(self, data: Any) -> np.ndarray:
        """Class labels, or values in the target's units ((N,) for one target, (N, targets) for several)."""
        labels, values = self.predict_arrays(data)
        if labels is not None:
            return labels
        return values[:, 0] if values.shape[1] == 1 else values

    def predict_frame(self, data: Any) -> pd.DataFrame:
        """The table `TrainedModel.predict_frame` gives: `prediction` and `proba_<class>` columns for
        classifiers; `prediction` or `prediction_<target>` for regression; the input's index."""
        from strata._labels import prediction_table

        frame = self.read(data)
        return prediction_table(frame.index, self.classes, self.info["target"]["columns"], *self.predict_arrays(frame))

    def predict_arrays(self, data: Any) -> tuple[np.ndarray | None, np.ndarray]:
        """(labels, probabilities) for classifiers, (None, values (N, targets)) for regression: what
        `predict_frame` tabulates, without the table."""
        predictions = self._predictions(self.read(data))
        if self.task != "regression":
            return self._labels(predictions), predictions
        return None, self._values(predictions)


def to_predictions(kind: str, outputs: np.ndarray) -> np.ndarray:
    """numpy's `strata.models.heads.to_predictions`: probabilities (N, C) or values (N, T), float32."""
    outputs = outputs.astype(np.float32, copy=False)
    if kind == "sigmoid":
        p = 1 / (1 + np.exp(-outputs[:, 0]))
        return np.stack([1 - p, p], axis=1)
    if kind == "softmax":
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return outputs
