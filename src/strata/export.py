"""Export a trained network to ONNX or TorchScript, for serving without Strata's trainer.

    model.onnx | model.pt   the network: named model inputs in, raw outputs (logits or scaled values) out
    model_raw.onnx          ONNX, table models only: one input per raw column, the preprocessing in the graph
    pipeline.json           the bundle's fitted feature pipeline, unchanged
    export.json             inputs (names, dtypes, shapes), head, classes, target decoding, parity, raw_graph

model.onnx is the network alone, with a dynamic batch axis. Scaling, vocabularies and tokenizers stay
in `pipeline.json`, applied by `Pipeline.transform` (numpy) before the graph runs: one implementation
of the preprocessing, shared by training, torch serving and ONNX serving (tokenizers have no ONNX form
anyway). `strata.runtime.OnnxModel` does the rest without torch. When every column is numeric,
categorical or binary, the preprocessing is arithmetic and lookups, and model_raw.onnx has it as ONNX
ops in front of the network (`strata.export_graph`), for clients with onnxruntime and nothing else;
export.json's `raw_graph` describes its inputs, or says why there is none.

Each export is checked when it is written: the torch network and the exported one run on the same
rows, and their raw outputs must agree within 1e-5, or the export fails, naming the difference.
model_raw.onnx is checked the same way on raw rows (with generated missing values and unseen levels)
against the torch network on `Pipeline.transform` of them.

>>> from strata.export import export                          # doctest: +SKIP
>>> export(model, "onnx", "serving/", rows=frame.head(64))     # doctest: +SKIP
{'format': 'onnx', ..., 'parity': {'rows': 64, 'max_abs_diff': 4.7e-07, 'tolerance': 1e-05}}
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from strata.errors import DataError, StrataError
from strata.models.sequence import RecurrentEncoder, _pool, _real

if TYPE_CHECKING:
    import pandas as pd

    from strata.bundle import TrainedModel
    from strata.features.pipeline import Pipeline

TOLERANCE = 1e-5  # max |torch - exported| on raw outputs
OPSET = 17
FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
RAW_FILE = "model_raw.onnx"  # ONNX exports of table models: the preprocessing in the graph (strata.export_graph)
FORMAT = 1  # of export.json


def export(
    model: TrainedModel, fmt: Literal["onnx", "torchscript"], out: str | Path, rows: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Write `model`'s network as `fmt` to the folder `out`, with pipeline.json and export.json, and
    return export.json's content. The parity check runs on `rows` (a table with the model's input
    columns; the first 256 are used), or on random valid inputs when `rows` is None."""
    if fmt not in FILES:
        raise StrataError(f"export format must be one of {', '.join(FILES)}, got {fmt!r}")
    _check_exportable(model)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StrataError(f"cannot export to '{out}': it is a file, not a folder")
    inputs = _parity_inputs(model, rows)
    names = list(inputs)
    network = _Positional(traceable(model.network), names).eval()
    expected = _torch_outputs(model, inputs)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILES[fmt]
    tensors = tuple(torch.from_numpy(inputs[n]) for n in names)
    if fmt == "onnx":
        _to_onnx(network, tensors, names, path)
        got = _run_onnx(path, inputs)
        inputs = {i.name: inputs[i.name] for i in _onnx_inputs(path)}
    else:
        _to_torchscript(network, tensors, path)
        got = _run_torchscript(path, tensors)
    diff = _max_diff(expected, got)
    if not diff <= TOLERANCE:  # NaN fails too
        path.unlink(missing_ok=True)
        raise StrataError(
            f"{fmt} export of {model.recipe.model.type} failed the parity check: max |torch - {fmt}| = {diff:.3g} "
            f"on raw outputs, above {TOLERANCE:g}"
        )
    raw = _write_raw_graph(model, path, rows) if fmt == "onnx" else {"file": None, "reason": "ONNX exports only"}
    info = _describe(model, fmt, inputs, {"rows": len(expected), "max_abs_diff": diff, "tolerance": TOLERANCE})
    info["raw_graph"] = raw
    (out / "pipeline.json").write_text(json.dumps(model.pipeline.to_json(), indent=1))
    (out / "export.json").write_text(json.dumps(info, indent=1))
    if model.reference is not None:  # the training data, so a server of the export can watch drift
        (out / "reference.json").write_text(json.dumps(model.reference))
    return info


# ------------------------------------------------------------------------------------------ checks
def _check_exportable(model: TrainedModel) -> None:
    if model.task == "forecast":
        raise DataError("export takes a classifier or a regressor; forecasting models (their windowing plan "
                        "and horizon loop run in Python) cannot be exported yet")  # fmt: skip
    pretrained = [c["name"] for c in model.pipeline.columns if c["kind"] == "text" and c["state"].get("pretrained")]
    if pretrained:
        raise DataError(f"column '{pretrained[0]}' is read by a pretrained sentence model, which runs in torch "
                        "inside the pipeline, so a torch-free runtime cannot prepare it; export a model that "
                        "tokenizes the text (a text column without pretrained:)")  # fmt: skip


def _parity_inputs(model: TrainedModel, rows: pd.DataFrame | None) -> dict[str, np.ndarray]:
    if rows is None:
        return random_inputs(model.pipeline, 16)
    from strata.bundle import as_frame
    from strata.features.pipeline import transform_quietly

    frame = model.read(as_frame(rows)).head(256)
    if len(frame) == 0:
        raise DataError("export: `rows` is empty; give some rows with the model's input columns, or None")
    return transform_quietly(model.pipeline, frame)


def random_inputs(pipeline: Pipeline, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Valid model inputs for `n` made-up rows, shaped as `pipeline.transform` shapes them: numbers
    from a normal, indices within each vocabulary, random real lengths with zero padding after them."""
    from strata.features import text
    from strata.features.pipeline import SLOTS, kind_of

    rng = np.random.default_rng(seed)
    slots = {kind_of(c["kind"], c["state"]).slot(c["state"]): c["state"] for c in pipeline.columns}
    made: dict[str, np.ndarray] = {}
    if pipeline.numeric_width:
        made["numeric"] = rng.normal(size=(n, pipeline.numeric_width))
    if pipeline.embeddings:
        made["categorical"] = np.stack([rng.integers(0, size, n) for size, _ in pipeline.embeddings], 1)
    if "image" in slots:
        made["image"] = rng.normal(size=(n, slots["image"]["channels"], *slots["image"]["size"]))
    if "text" in slots:
        state = slots["text"]
        ids = rng.integers(1, text.vocab_size(state), (n, text.max_length(state)))
        made["text"] = ids * (np.arange(ids.shape[1]) < rng.integers(0, ids.shape[1] + 1, (n, 1)))
    if "sequence" in slots:
        state = slots["sequence"]
        made["lengths"] = rng.integers(1, state["max_length"] + 1, n)
        steps = rng.normal(size=(n, state["max_length"], state["features"]))
        made["sequence"] = steps * (np.arange(state["max_length"]) < made["lengths"][:, None])[..., None]
    return {k: np.ascontiguousarray(made[k], dtype=v) for k, v in SLOTS.items() if k in made}


# ------------------------------------------------------------------------------------ exportable
def traceable(network: nn.Module) -> nn.Module:
    """A copy of `network` whose forward traces to a graph that holds for any batch: recurrent encoders
    run without packing (packing is data-dependent control flow); the transformer traces as it is."""
    network = copy.deepcopy(network).eval()
    for name, module in list(network.named_modules()):
        swap = {RecurrentEncoder: UnpackedRecurrent}.get(type(module))
        if swap is not None:
            parent_name, _, attr = name.rpartition(".")
            setattr(network.get_submodule(parent_name) if parent_name else network, attr, swap(module))
    return network


class _Positional(nn.Module):
    """The network's named inputs as positional arguments, in `names` order (how ONNX and trace take them)."""

    def __init__(self, network: nn.Module, names: list[str]):
        super().__init__()
        self.network, self.names = network, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.network(**dict(zip(self.names, inputs, strict=True)))


def _one_direction(rnn: nn.RNNBase, layer: int, suffix: str) -> nn.RNNBase:
    """One layer and direction of `rnn` as a one-layer, one-direction module with the same weights."""
    n_in = rnn.input_size if layer == 0 else rnn.hidden_size * (2 if rnn.bidirectional else 1)
    options = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
    single = type(rnn)(n_in, rnn.hidden_size, batch_first=True, bias=rnn.bias, **options)
    with torch.no_grad():
        for name, param in single.named_parameters():  # weight_ih_l0 <- weight_ih_l{layer}{suffix}
            param.copy_(getattr(rnn, name.replace("_l0", f"_l{layer}{suffix}")))
    return single


def _gather_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (N, T, W) reordered along T by index (N, T)."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[2]))


class UnpackedRecurrent(nn.Module):
    """`RecurrentEncoder` without packing, same outputs. Each direction of each layer runs over all T
    steps: forward, the padding comes after the real steps, so it never reaches them, and pooling
    masks it; backward, each row's real steps are reversed in place (padding stays at the end) and
    the result reversed back. The `last` state is read at each row's last real step (forward) and at
    step 0 (backward), where packing stops them."""

    def __init__(self, encoder: RecurrentEncoder):
        super().__init__()
        rnn = encoder.rnn
        self.steps, self.pooling, self.attention = encoder.steps, encoder.pooling, encoder.attention
        self.directions, self.width, self.hidden = encoder.directions, encoder.width, rnn.hidden_size
        suffixes = ["", "_reverse"][: self.directions]
        self.layers = nn.ModuleList(
            nn.ModuleList(_one_direction(rnn, layer, s) for s in suffixes) for layer in range(rnn.num_layers)
        )

    def forward(
        self,
        text: torch.Tensor | None = None,
        sequence: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x, lengths = self.steps(text, sequence, lengths)  # (N, T, n_in)
        t = torch.arange(x.shape[1], device=x.device)[None]  # (1, T)
        last = lengths[:, None] - 1  # (N, 1)
        back = torch.where(t <= last, last - t, t)  # (N, T): real steps reversed, padding in place
        for directions in self.layers:
            outs = [directions[0](x)[0]]  # (N, T, H)
            if self.directions == 2:
                outs.append(_gather_steps(directions[1](_gather_steps(x, back))[0], back))
            x = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]  # (N, T, width)
        if self.pooling == "last":
            ahead = _gather_steps(x[:, :, : self.hidden], last)[:, 0]  # (N, H), after the last real step
            return ahead if self.directions == 1 else torch.cat([ahead, x[:, 0, self.hidden :]], dim=1)
        real = _real(lengths, x.shape[1])
        x = x * real[..., None].to(x.dtype)  # zeros at padding, as pad_packed_sequence gives
        return self.attention(x, real) if self.attention is not None else _pool(x, real, self.pooling)


# --------------------------------------------------------------------------------- write and run
def _to_onnx(network: nn.Module, tensors: tuple[torch.Tensor, ...], names: list[str], path: Path) -> None:
    # The TorchScript-based exporter (dynamo=False): it maps nn.GRU/LSTM/RNN to ONNX's own recurrent
    # ops and takes dynamic_axes; every network here traces without data-dependent control flow.
    import warnings

    axes = {name: {0: "batch"} for name in [*names, "outputs"]}
    # Traced with gradients on: nn.TransformerEncoderLayer's fused inference kernel, which ONNX has no
    # op for, runs only without them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: parity is the check that counts
        torch.onnx.export(network, tensors, str(path), input_names=names, output_names=["outputs"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)  # fmt: skip


def _to_torchscript(network: nn.Module, tensors: tuple[torch.Tensor, ...], path: Path) -> None:
    import warnings

    with warnings.catch_warnings():  # gradients on, as for ONNX: the plain transformer ops, not the fused kernel
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network, tensors, check_trace=False)
    traced.save(str(path))


def _torch_outputs(model: TrainedModel, inputs: dict[str, np.ndarray]) -> np.ndarray:
    from strata.features.pipeline import as_tensors
    from strata.models.heads import run

    return run(model.network, as_tensors(inputs), model.head.size).numpy()


def _write_raw_graph(model: TrainedModel, network: Path, rows: pd.DataFrame | None) -> dict[str, Any]:
    """Write model_raw.onnx beside `network` (model.onnx) when the preprocessing is all arithmetic and
    lookups, check it on raw rows against PyTorch on `Pipeline.transform` of them, and describe it."""
    import onnx

    from strata import export_graph
    from strata.features.pipeline import transform_quietly

    reason = export_graph.blocker(model.pipeline)
    if reason is not None:
        return {"file": None, "reason": reason}
    head = {"kind": model.head.kind, "size": model.head.size}
    path = network.with_name(RAW_FILE)
    onnx.save(export_graph.build(model.pipeline, onnx.load(str(network)), head), str(path))
    frame = _raw_rows(model, rows)
    expected = _torch_outputs(model, transform_quietly(model.pipeline, frame))
    outputs, predicted = _run_onnx(path, export_graph.raw_inputs(model.pipeline, frame), every=True)
    diff = max(_max_diff(expected, outputs), _relative_diff(_predictions(model, expected), predicted))
    if not diff <= TOLERANCE:
        path.unlink(missing_ok=True)
        network.unlink(missing_ok=True)
        raise StrataError(
            f"onnx export of {model.recipe.model.type} failed the parity check of {RAW_FILE} (the preprocessing in "
            f"the graph): max |torch - onnx| = {diff:.3g} on raw outputs and predictions, above {TOLERANCE:g}"
        )
    predictions = model.head.size if model.head.kind != "sigmoid" else 2
    return {
        "file": RAW_FILE,
        "inputs": export_graph.describe_inputs(model.pipeline),
        "outputs": [
            {"name": "outputs", "dtype": "float32", "shape": ["batch", model.head.size]},
            {"name": "predictions", "dtype": "float32", "shape": ["batch", predictions]},
        ],
        "parity": {"rows": len(frame), "max_abs_diff": diff, "tolerance": TOLERANCE},
    }


def _raw_rows(model: TrainedModel, rows: pd.DataFrame | None) -> pd.DataFrame:
    """The rows checked through the raw graph: the first 256 of `rows`, if given, and 32 generated ones
    with missing values and unseen levels."""
    import pandas as pd

    from strata import export_graph
    from strata.bundle import as_frame

    made = export_graph.random_rows(model.pipeline, 32)
    if rows is None:
        return made
    given = model.read(as_frame(rows)).head(256)[model.pipeline.input_names]
    return pd.concat([given, made], ignore_index=True)


def _run_onnx(path: Path, inputs: dict[str, np.ndarray], every: bool = False) -> Any:
    """The graph's first output, or all of them."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = session.run(None, graph_inputs(session, inputs))
    return results if every else results[0]


def _predictions(model: TrainedModel, outputs: np.ndarray) -> np.ndarray:
    """What the raw graph's `predictions` should be: probabilities, or values in the target's units."""
    from strata.features import target
    from strata.runtime import to_predictions

    predictions = to_predictions(model.head.kind, outputs)
    return target.decode(predictions, model.pipeline.target) if model.task == "regression" else predictions


def _relative_diff(expected: np.ndarray, got: np.ndarray) -> float:
    """The largest difference relative to the value (absolute below 1): values in a target's units
    (grams, dollars) carry float32's relative rounding, not an absolute one."""
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(expected - got) / np.maximum(1.0, np.abs(expected)), initial=0.0))


def graph_inputs(session: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs the graph takes: the exporter drops one the network never reads (`lengths` for cnn1d)."""
    return {i.name: inputs[i.name] for i in session.get_inputs()}


def _onnx_inputs(path: Path) -> list:
    import onnx

    return list(onnx.load(str(path), load_external_data=False).graph.input)


def _run_torchscript(path: Path, tensors: tuple[torch.Tensor, ...]) -> np.ndarray:
    import warnings

    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export, but still loads
        return torch.jit.load(str(path)).eval()(*tensors).numpy()


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return math.inf
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def _describe(model: TrainedModel, fmt: str, inputs: dict[str, np.ndarray], parity: dict) -> dict[str, Any]:
    import strata

    grouped = model.recipe.data.sequences
    return {
        "format": FORMAT,
        "export": fmt,
        "file": FILES[fmt],
        "inputs": [{"name": k, "dtype": str(v.dtype), "shape": ["batch", *v.shape[1:]]} for k, v in inputs.items()],
        "outputs": [{"name": "outputs", "dtype": "float32", "shape": ["batch", model.head.size]}],
        "head": {"kind": model.head.kind, "size": model.head.size},
        "task": model.task,
        "classes": model.classes,
        "target": model.pipeline.target,
        "sequences": grouped.model_dump() if grouped is not None else None,
        "model": model.recipe.model.type,
        "name": model.meta.get("name", model.recipe.display_name),
        "metrics": model.meta.get("metrics", {}),
        "opset": OPSET if fmt == "onnx" else None,
        "strata": strata.__version__,
        "torch": torch.__version__,
        "parity": parity,
    }
