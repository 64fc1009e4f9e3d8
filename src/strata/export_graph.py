"""The raw-input ONNX graph of a table model: the preprocessing of numeric, categorical and binary
columns written as ONNX ops in front of the exported network, so a client with onnxruntime and
numpy alone can send the columns as they are.

    inputs       one per column, (N, 1): numbers as float32 with NaN for missing; categories and
                 two-level columns as strings spelled as Strata spells levels (`level_key`: '2007'
                 for 2007 or 2007.0, 'true'/'false' for booleans), '' for missing
    outputs      the network's raw outputs, as model.onnx gives them
    predictions  probabilities (N, classes) for classifiers, values in the target's units for regression

Each column is encoded as `Pipeline.transform` encodes it, into the same slots in the same order:
numbers imputed, scaled ((x - center) / scale, in float64 as numpy does) and flagged when missing;
categories looked up (ONNX-ML `LabelEncoder`) with 0 for unseen levels and the `<missing>` level
for '' (0 too when training had no missing values), one-hot or as an embedding index; two-level
columns as 0/1, with missing and unseen values taking the training mode. `export` checks the result
against PyTorch on raw rows, missing values and unseen levels included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strata.features._columns import as_levels, as_numbers
from strata.features.categorical import MISSING

RAW_KINDS = ("numeric", "categorical", "binary")
NETWORK = "net/"  # prefix of the network's names in the raw graph (the preprocessing's are raw/ and head/)
OUTPUTS = ("outputs", "predictions")
ML_OPSET = 3  # ai.onnx.ml: LabelEncoder-2 (string keys to int64 or float values, with a default)
UNSEEN_EXAMPLE = "<never seen in training>"
SPELLING = " ('2007' for 2007 or 2007.0, 'true' for True)"  # level_key


def blocker(pipeline: Any) -> str | None:
    """Why the pipeline cannot be written as ONNX ops in front of the network, or None when it can."""
    for col in pipeline.columns:
        name, kind = col["name"], col["kind"]
        if kind not in RAW_KINDS:
            return (f"column '{name}' is {kind}: its preprocessing (tokenising, image decoding, sequence padding) "
                    "has no ONNX form here, so it stays in pipeline.json; use model.onnx with Pipeline.transform "
                    "or strata.runtime.OnnxModel")  # fmt: skip
        if not isinstance(name, str) or name in OUTPUTS or name.startswith((NETWORK, "raw/", "head/")):
            return f"column {name!r} cannot name a graph input (it clashes with the graph's own names)"
        if kind != "numeric" and "" in _levels(col):
            return (f"column '{name}' has the empty string as a level, which the raw graph reads as a missing "
                    "value; use model.onnx with the JSON pipeline")  # fmt: skip
    return None


def _levels(col: dict[str, Any]) -> list[str]:
    return col["state"]["levels"] if col["kind"] == "binary" else col["state"]["vocab"][1:]


# --------------------------------------------------------------------------------------- inputs
def raw_inputs(pipeline: Any, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The raw graph's inputs for the rows of `frame`, read as `Pipeline.transform` reads them."""
    made = {}
    for col in pipeline.columns:
        column = frame[col["name"]]
        if col["kind"] == "numeric":
            made[col["name"]] = as_numbers(column).astype(np.float32)[:, None]
        else:
            keys, missing = as_levels(column)
            made[col["name"]] = np.where(missing, "", keys).astype(object)[:, None]
    return made


def random_rows(pipeline: Any, n: int, seed: int = 0) -> pd.DataFrame:
    """`n` made-up rows of raw values: numbers around each column's centre, known levels, and in about
    a quarter of the cells each a missing value or (categories and binary columns) an unseen level."""
    rng = np.random.default_rng(seed)
    columns = {}
    for col in pipeline.columns:
        state, odd = col["state"], rng.random(n)
        if col["kind"] == "numeric":
            values = state["center"] + state["scale"] * rng.normal(size=n)
            columns[col["name"]] = np.where(odd < 0.25, np.nan, values)
            continue
        levels = [v for v in _levels(col) if v != MISSING] or [UNSEEN_EXAMPLE]
        values = np.asarray(levels, dtype=object)[rng.integers(0, len(levels), n)]
        values[odd < 0.25] = UNSEEN_EXAMPLE
        values[odd < 0.125] = None
        columns[col["name"]] = values
    return pd.DataFrame(columns)


def describe_inputs(pipeline: Any) -> list[dict[str, Any]]:
    """export.json's account of each raw input: name, dtype, shape and what to send."""
    described = []
    for col in pipeline.columns:
        name, kind, state = col["name"], col["kind"], col["state"]
        entry: dict[str, Any] = {"name": name, "kind": kind, "shape": ["batch", 1]}
        if kind == "numeric":
            flag = ", flagged as missing" if state["missing_indicator"] else ""
            entry |= {"dtype": "float32", "meaning": f"the number; NaN if missing (imputed with {state['fill']:.6g}"
                                                     f"{flag}), scaled in the graph"}  # fmt: skip
        elif kind == "binary":
            entry |= {"dtype": "string", "levels": state["levels"],
                      "meaning": f"the level as text{SPELLING}; '' if missing; missing and unseen values take the "
                                 f"training mode, {state['mode']!r}"}  # fmt: skip
        else:
            missing = "the <missing> level" if MISSING in state["vocab"] else "unseen: training had no missing values"
            entry |= {"dtype": "string", "levels": [v for v in _levels(col) if v != MISSING],
                      "meaning": f"the level as text{SPELLING}; '' if missing ({missing}); any other text is "
                                 "unseen (index 0, as for levels dropped by min_frequency)"}  # fmt: skip
        described.append(entry)
    return described


# ---------------------------------------------------------------------------------------- graph
class _Builder:
    """Nodes and constants of the preprocessing, named raw/<column index>/..., gathered per slot."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.constants: list = []
        self.slots: dict[str, list[str]] = {"numeric": [], "categorical": []}

    def const(self, name: str, values: Any, dtype: Any) -> str:
        from onnx import numpy_helper

        self.constants.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        domain = "ai.onnx.ml" if op == "LabelEncoder" else ""
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs))
        return output

    def numeric(self, p: str, name: str, state: dict[str, Any]) -> None:
        from onnx import TensorProto

        x = self.node("Cast", [name], f"{p}x", to=TensorProto.DOUBLE)  # (N, 1), float64 as numpy computes it
        nan = self.node("IsNaN", [x], f"{p}nan")
        filled = self.node("Where", [nan, self.const(f"{p}fill", state["fill"], np.float64), x], f"{p}filled")
        centred = self.node("Sub", [filled, self.const(f"{p}center", state["center"], np.float64)], f"{p}centred")
        scaled = self.node("Div", [centred, self.const(f"{p}scale", state["scale"], np.float64)], f"{p}scaled")
        self.slots["numeric"].append(self.node("Cast", [scaled], f"{p}value", to=TensorProto.FLOAT))
        if state["missing_indicator"]:
            self.slots["numeric"].append(self.node("Cast", [nan], f"{p}missing", to=TensorProto.FLOAT))

    def categorical(self, p: str, name: str, state: dict[str, Any]) -> None:
        from onnx import TensorProto

        vocab = state["vocab"]  # vocab[0] is the reserved unseen level
        keys = [*vocab[1:], ""]  # '' is a missing value: the <missing> level, or unseen when training had none
        values = [*range(1, len(vocab)), vocab.index(MISSING) if MISSING in vocab else 0]
        lookup = {"keys_strings": keys, "values_int64s": values, "default_int64": 0}
        index = self.node("LabelEncoder", [name], f"{p}index", **lookup)  # (N, 1)
        if state["encoding"] == "embedding":
            self.slots["categorical"].append(index)
        elif len(vocab) > 1:  # one-hot without the reserved column: index == 1, ..., index == V - 1
            levels = self.const(f"{p}levels", np.arange(1, len(vocab))[None], np.int64)  # (1, V - 1)
            hot = self.node("Equal", [index, levels], f"{p}hot")
            self.slots["numeric"].append(self.node("Cast", [hot], f"{p}onehot", to=TensorProto.FLOAT))

    def binary(self, p: str, name: str, state: dict[str, Any]) -> None:
        levels = state["levels"]
        value = {level: float(len(levels) == 2 and level == levels[-1]) for level in levels}
        mode = value.get(state["mode"], 0.0)  # missing and unseen values take the training mode
        lookup = {"keys_strings": [*levels, ""], "values_floats": [*value.values(), mode], "default_float": mode}
        self.slots["numeric"].append(self.node("LabelEncoder", [name], f"{p}flag", **lookup))  # (N, 1)


def _head_nodes(b: _Builder, head: dict[str, Any], target: dict[str, Any]) -> None:
    """outputs (the network's) and predictions, as strata.runtime computes them from the outputs."""
    raw = b.node("Identity", [f"{NETWORK}outputs"], "outputs")
    if head["kind"] == "softmax":
        b.node("Softmax", [raw], "predictions", axis=1)
    elif head["kind"] == "sigmoid":  # [1 - p, p]
        p = b.node("Sigmoid", [raw], "head/p")
        b.node("Concat", [b.node("Sub", [b.const("head/one", 1.0, np.float32), p], "head/q"), p], "predictions", axis=1)
    else:  # regression: back to the target's units
        std = b.const("head/std", np.asarray(target["std"])[None], np.float32)
        scaled = b.node("Mul", [raw, std], "head/scaled")
        b.node("Add", [scaled, b.const("head/mean", np.asarray(target["mean"])[None], np.float32)], "predictions")


def build(pipeline: Any, network: Any, head: dict[str, Any]) -> Any:
    """The raw graph: `pipeline`'s preprocessing as ONNX ops, feeding `network` (model.onnx's
    ModelProto, whose names get the prefix net/), with `outputs` and `predictions`."""
    import onnx
    from onnx import TensorProto, helper

    net = onnx.compose.add_prefix(network, NETWORK)
    b = _Builder()
    inputs = []
    for i, col in enumerate(pipeline.columns):
        getattr(b, col["kind"])(f"raw/{i}/", col["name"], col["state"])
        dtype = TensorProto.FLOAT if col["kind"] == "numeric" else TensorProto.STRING
        inputs.append(helper.make_tensor_value_info(col["name"], dtype, ["batch", 1]))
    wanted = {i.name for i in net.graph.input}  # the exporter drops a slot the network never reads
    for slot, parts in b.slots.items():
        if f"{NETWORK}{slot}" in wanted:
            b.node("Concat", parts, f"{NETWORK}{slot}", axis=1)  # the slot's columns in pipeline order
    tail = _Builder()  # after the network's nodes: ONNX wants them in order
    _head_nodes(tail, head, pipeline.target)
    size = head["size"] if head["kind"] != "sigmoid" else 2
    outputs = [
        helper.make_tensor_value_info("outputs", TensorProto.FLOAT, ["batch", head["size"]]),
        helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["batch", size]),
    ]
    graph = helper.make_graph(
        [*b.nodes, *net.graph.node, *tail.nodes], "strata_raw", inputs, outputs,
        initializer=[*b.constants, *net.graph.initializer, *tail.constants], value_info=list(net.graph.value_info),
    )  # fmt: skip
    opsets = [*(o for o in net.opset_import if o.domain != "ai.onnx.ml"), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="strata", ir_version=net.ir_version)
    model.functions.extend(net.functions)  # none from today's exporter; kept should one appear
    onnx.checker.check_model(model)
    return model
