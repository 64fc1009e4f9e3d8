"""Exported networks (ONNX, TorchScript) give the torch network's outputs, for any batch size, and the
torch-free runtime gives TrainedModel's predictions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import strata
from strata.bundle import TrainedModel
from strata.data.text_data import make_reviews
from strata.errors import DataError, StrataError
from strata.export import export
from strata.features.pipeline import Pipeline


def _train(frame: pd.DataFrame, target: str, model: dict, epochs: int = 2) -> TrainedModel:
    recipe = {"data": {"target": target}, "model": model, "track": False, "evaluate": False,
              "train": {"epochs": epochs, "batch_size": 32, "optimizer": {"lr": 3e-3}}}  # fmt: skip
    return strata.train(recipe, data=frame, quiet=True).model


def _signals(n: int = 240) -> pd.DataFrame:
    """1-D arrays of 3 to 12 steps: padding in every batch. The label is the sign of the sum."""
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=rng.integers(3, 13)) for _ in range(n)]
    return pd.DataFrame({"signal": arrays, "label": ["up" if a.sum() > 0 else "down" for a in arrays]})


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    frame = strata.load_dataset("penguins")
    assert frame.drop(columns="species").isna().any().any()  # missing values go through the pipeline
    return frame


@pytest.fixture(scope="module")
def tabular(penguins) -> TrainedModel:
    return _train(penguins, "species", {"type": "mlp", "hidden": [16]}, epochs=3)


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return make_reviews(300)


def _digits() -> pd.DataFrame:
    return strata.load_dataset("digits_images").head(300)


def _penguins() -> pd.DataFrame:
    return strata.load_dataset("penguins")


def _reviews() -> pd.DataFrame:
    return make_reviews(300)


GRU = {"type": "gru", "hidden_size": 8, "bidirectional": True, "layers": 2}  # the `last` state, both directions
TRANSFORMER = {"type": "transformer", "d_model": 16, "heads": 2, "pooling": "cls"}
# name: (data, target, model, epochs)
CASES = {
    "mlp": (_penguins, "species", {"type": "mlp", "hidden": [16]}, 2),
    "cnn": (_digits, "digit", {"type": "cnn", "channels": [8, 16], "hidden": [32]}, 1),
    "resnet": (_digits, "digit", {"type": "resnet", "widths": [8, 16], "blocks": 1}, 1),
    "gru_bidirectional_sequence": (_signals, "label", GRU, 2),
    "lstm_attention_text": (_reviews, "sentiment", {"type": "lstm", "hidden_size": 8, "pooling": "attention"}, 1),
    "transformer_cls_text": (_reviews, "sentiment", TRANSFORMER, 1),
    "bag_max_text": (_reviews, "sentiment", {"type": "bag", "pooling": "max"}, 1),
    "cnn1d_sequence": (_signals, "label", {"type": "cnn1d", "channels": [4], "hidden": [8]}, 2),
}


def _exported(name: str, format: str, folder) -> tuple[TrainedModel, pd.DataFrame, dict]:
    """A CASES model trained and exported, its parity checked on 24 rows; rows it was not traced on."""
    data, target, spec, epochs = CASES[name]
    model = _train(data(), target, spec, epochs)
    frame = (strata.load_dataset("digits_images").tail(40) if target == "digit" else data()).drop(columns=target)
    info = export(model, format, folder, rows=frame.head(24))
    assert info["parity"]["max_abs_diff"] <= 1e-5 and info["parity"]["rows"] == 24
    return model, frame, info


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_export_matches_torch_for_any_batch_size(name, tmp_path):
    model, frame, info = _exported(name, "onnx", tmp_path)
    print(f"{name}: max |torch - onnx| = {info['parity']['max_abs_diff']:.2g}")
    assert json.loads((tmp_path / "export.json").read_text())["inputs"][0]["shape"][0] == "batch"
    runtime = strata_runtime().OnnxModel(tmp_path)
    new = frame.tail(37)  # another batch size than the one traced
    np.testing.assert_allclose(runtime.predict_proba(new), model.predict_proba(new), atol=1e-5, rtol=0)
    assert (runtime.predict(new) == model.predict(new)).all()
    pd.testing.assert_frame_equal(runtime.predict_frame(new), model.predict_frame(new), atol=1e-5)


def strata_runtime():
    import strata.runtime

    return strata.runtime


def test_the_runtime_imports_no_torch_and_regression_values_match(penguins, tmp_path):
    model = _train(penguins.dropna(subset=["body_mass_g"]), "body_mass_g", {"type": "mlp", "hidden": [8]})
    info = export(model, "onnx", tmp_path, rows=None)  # random valid inputs for the parity check
    assert info["head"]["kind"] == "identity" and info["parity"]["max_abs_diff"] <= 1e-5
    new = penguins.drop(columns="body_mass_g").head(9)
    new.to_csv(tmp_path / "new.csv", index=False)
    code = (
        "import json, sys; from strata.runtime import OnnxModel; "
        f"m = OnnxModel({str(tmp_path)!r}); print(json.dumps(m.predict({str(tmp_path / 'new.csv')!r}).tolist())); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[1] == "False"
    np.testing.assert_allclose(json.loads(out[0]), model.predict(tmp_path / "new.csv"), rtol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_round_trip(tabular, penguins, tmp_path):
    import torch

    info = export(tabular, "torchscript", tmp_path, rows=penguins.head(16))
    assert info["file"] == "model.pt" and info["parity"]["max_abs_diff"] <= 1e-5
    inputs = tabular.pipeline.transform(penguins.tail(5))
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    raw = loaded(*(torch.from_numpy(inputs[i["name"]]) for i in info["inputs"])).detach().numpy()
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(raw), 1).numpy(), tabular.predict_proba(penguins.tail(5)),
                               atol=1e-5)  # fmt: skip


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
@pytest.mark.parametrize("name", ["cnn", "gru_bidirectional_sequence", "transformer_cls_text", "lstm_attention_text"])
def test_torchscript_export_of_image_and_sequence_models_matches_torch_for_another_batch(name, tmp_path):
    import torch

    from strata.features.pipeline import as_tensors
    from strata.models.heads import run

    model, frame, info = _exported(name, "torchscript", tmp_path)
    inputs = model.pipeline.transform(model.read(frame.tail(37)))  # another batch size (and lengths) than traced
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    with torch.inference_mode():
        raw = loaded(*(torch.from_numpy(inputs[i["name"]]) for i in info["inputs"]))
    expected = run(model.network, as_tensors(inputs), model.head.size)
    np.testing.assert_allclose(raw.numpy(), expected.numpy(), atol=1e-5, rtol=0)


def test_unsupported_exports_fail_with_a_clear_error(tabular, tmp_path, monkeypatch):
    with pytest.raises(StrataError, match="export format must be one of onnx, torchscript, got 'tflite'"):
        export(tabular, "tflite", tmp_path)
    forecast = Pipeline(tabular.pipeline.columns, {**tabular.pipeline.target, "task": "forecast"})
    with pytest.raises(DataError, match=r"forecasting models .* cannot be exported"):
        export(TrainedModel(tabular.network, forecast, tabular.recipe, tabular.meta), "onnx", tmp_path)
    monkeypatch.setattr("strata.export.TOLERANCE", -1.0)  # any difference is too much: the check must say so
    with pytest.raises(StrataError, match=r"failed the parity check: max \|torch - onnx\| = .* above -1"):
        export(tabular, "onnx", tmp_path / "x")
    assert not (tmp_path / "x" / "model.onnx").exists()


def test_cli_export_reports_the_parity_check(tmp_path, capsys):
    from tests.test_cli import strata as cli

    strata.train({"data": {"dataset": "iris", "target": "species"}, "train": {"epochs": 2}, "track": False},
                 out=tmp_path / "m", quiet=True)  # fmt: skip
    strata.load_dataset("iris").to_csv(tmp_path / "rows.csv", index=False)
    code, out, err = cli(capsys, "export", tmp_path / "m", "--out", tmp_path / "onnx", "--data", tmp_path / "rows.csv")
    assert code == 0, err
    assert "of PyTorch's on 150 rows" in out and (tmp_path / "onnx" / "model.onnx").exists()


# ------------------------------------------------------------------------------ the raw-input graph
def _raw_feeds(frame: pd.DataFrame, inputs: list[dict]) -> dict[str, np.ndarray]:
    """What a client without Strata sends: numbers as float32 with NaN, levels as text with '' for missing."""
    feeds = {}
    for i in inputs:
        column = frame[i["name"]]
        if i["dtype"] == "float32":
            feeds[i["name"]] = column.to_numpy(dtype=np.float32, na_value=np.nan)[:, None]
        else:
            text = ["" if pd.isna(v) else str(v).lower() if isinstance(v, bool) else str(v) for v in column]
            feeds[i["name"]] = np.array(text, dtype=object)[:, None]
    return feeds


@pytest.fixture(scope="module")
def mixed(penguins) -> tuple[TrainedModel, pd.DataFrame]:
    """Every table encoding: embedded and one-hot categories (`sex` with a <missing> level, `island` without
    missing values), a boolean binary column, numbers with a missing indicator and with robust scaling."""
    frame = penguins.assign(late=penguins["year"] == 2009)
    columns = [{"name": "island", "encoding": "embedding"}, {"name": "bill_length_mm", "missing_indicator": True},
               {"name": "bill_depth_mm", "scale": "robust"}, {"name": "flipper_length_mm"}, {"name": "body_mass_g"},
               {"name": "sex", "type": "categorical", "encoding": "onehot"}, {"name": "late"}, {"name": "year"}]  # fmt: skip
    recipe = {"data": {"target": "species"}, "model": {"type": "mlp", "hidden": [16]}, "track": False,
              "evaluate": False, "features": {"columns": columns}, "train": {"epochs": 2, "batch_size": 32}}  # fmt: skip
    model = strata.train(recipe, data=frame, quiet=True).model
    kinds = {c["name"]: (c["kind"], c["state"].get("encoding")) for c in model.pipeline.columns}
    assert kinds["island"] == ("categorical", "embedding") and kinds["sex"] == ("categorical", "onehot")
    assert kinds["late"][0] == "binary" and kinds["year"] == ("categorical", "onehot")
    return model, frame.drop(columns="species")


def _odd_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Known rows, then rows with missing numbers, an unseen and a missing category, a missing flag."""
    odd = frame.iloc[[0, 100, 200, 300, 5, 6, 7]].copy()
    odd.iloc[4:, odd.columns.get_loc("bill_length_mm")] = np.nan
    odd.iloc[4, odd.columns.get_loc("body_mass_g")] = np.nan
    odd["island"] = odd["island"].astype(object)
    odd.iloc[5, odd.columns.get_loc("island")] = "Atlantis"  # unseen: the reserved index
    odd.iloc[6, odd.columns.get_loc("island")] = None  # missing, and never missing in training: also unseen
    odd["sex"] = odd["sex"].astype(object)
    odd.iloc[4, odd.columns.get_loc("sex")] = None  # the <missing> level
    odd.iloc[6, odd.columns.get_loc("sex")] = "unknown"
    odd["late"] = odd["late"].astype(object)
    odd.iloc[5, odd.columns.get_loc("late")] = None  # the training mode
    return odd


@pytest.mark.filterwarnings("ignore::strata.errors.StrataWarning")
def test_the_raw_graph_does_the_preprocessing_and_matches_predict_proba(mixed, tmp_path):
    import onnx
    import onnxruntime

    model, frame = mixed
    info = export(model, "onnx", tmp_path, rows=frame.head(30))
    raw = json.loads((tmp_path / "export.json").read_text())["raw_graph"]
    assert raw["file"] == "model_raw.onnx" and raw["parity"]["max_abs_diff"] <= 1e-5 == raw["parity"]["tolerance"]
    assert raw["parity"]["rows"] == 30 + 32 and info["raw_graph"] == raw
    assert [i["name"] for i in raw["inputs"]] == model.pipeline.input_names
    assert {i["name"]: i["dtype"] for i in raw["inputs"]}["year"] == "string"
    print(f"raw graph: max |torch - onnx| = {raw['parity']['max_abs_diff']:.2g}")

    odd = _odd_rows(frame)
    # The slots the graph builds equal Pipeline.transform's, column for column: scaling and lookups included.
    graph = onnx.load(str(tmp_path / "model_raw.onnx"))
    graph.graph.output.extend(onnx.helper.make_tensor_value_info(f"net/{s}", t, None)
                              for s, t in [("numeric", onnx.TensorProto.FLOAT), ("categorical", onnx.TensorProto.INT64)])  # fmt: skip
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs, predictions, numeric, categorical = session.run(None, _raw_feeds(odd, raw["inputs"]))
    expected = model.pipeline.transform(odd)
    np.testing.assert_array_equal(categorical, expected["categorical"])
    assert categorical[5:, 0].tolist() == [0, 0]  # unseen and missing island: the reserved index
    np.testing.assert_allclose(numeric, expected["numeric"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(predictions, model.predict_proba(odd), atol=1e-5, rtol=0)
    assert predictions.shape == (7, 3) and np.isfinite(outputs).all()


def test_a_text_model_gets_no_raw_graph_and_export_json_says_why(reviews, tmp_path):
    model = _train(reviews, "sentiment", {"type": "bag"}, epochs=1)
    info = export(model, "onnx", tmp_path, rows=reviews.drop(columns="sentiment").head(8))
    raw = json.loads((tmp_path / "export.json").read_text())["raw_graph"]
    assert raw["file"] is None and "is text" in raw["reason"] and info["raw_graph"] == raw
    assert not (tmp_path / "model_raw.onnx").exists() and (tmp_path / "model.onnx").exists()


def test_a_raw_graph_that_scales_wrongly_fails_the_parity_check(tabular, tmp_path, monkeypatch):
    from strata import export_graph

    const = export_graph._Builder.const

    def shifted(self, name, values, dtype):  # every centre off by half a unit
        return const(self, name, values + 0.5 if name.endswith("center") else values, dtype)

    monkeypatch.setattr(export_graph._Builder, "const", shifted)
    with pytest.raises(StrataError, match=r"parity check of model_raw.onnx .* max \|torch - onnx\| = "):
        export(tabular, "onnx", tmp_path)
    assert not (tmp_path / "model_raw.onnx").exists() and not (tmp_path / "model.onnx").exists()


def test_the_raw_graphs_predictions_are_checked_too(penguins, tmp_path, monkeypatch):
    from strata import export_graph

    model = _train(penguins.dropna(subset=["body_mass_g"]), "body_mass_g", {"type": "mlp", "hidden": [8]})
    const = export_graph._Builder.const

    def shifted(self, name, values, dtype):  # the regression head's mean one gram off: outputs stay right
        return const(self, name, values + 1.0 if name == "head/mean" else values, dtype)

    monkeypatch.setattr(export_graph._Builder, "const", shifted)
    with pytest.raises(StrataError, match=r"parity check of model_raw.onnx .* on raw outputs and predictions"):
        export(model, "onnx", tmp_path)
