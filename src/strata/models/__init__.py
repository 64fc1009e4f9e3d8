"""Model builders: small functions from a recipe section and the input shape to a plain nn.Module.

One builder for every modality: the feature pipeline says which inputs exist (`numeric`,
`categorical`, `image`), the recipe's `model.type` says which network reads them, and the output
head comes from the loss, as for tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.errors import RecipeError

if TYPE_CHECKING:
    from torch import nn

    from strata.features.pipeline import Pipeline
    from strata.recipe import ModelConfig

SEQUENCE_MODELS = ("rnn", "lstm", "gru", "transformer", "bag")


def build(cfg: ModelConfig, pipeline: Pipeline, out_features: int, seed: int) -> nn.Module:
    """Build the network for `cfg`, initialised from `seed` without touching the global RNG."""
    import torch

    check_inputs(cfg, pipeline)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _network(cfg, pipeline, out_features)


def _network(cfg: ModelConfig, pipeline: Pipeline, out_features: int) -> nn.Module:
    from strata.models.conv import build_conv

    source = sequence_source(pipeline)
    if cfg.type == "mlp":
        from strata.models.mlp import TabularMLP

        if source is not None:  # a fixed-length sequence, read as one row of steps x features
            from strata.models.adapters import FlatSequence

            width = pipeline.numeric_width + source["max_length"] * source["features"]
            return FlatSequence(TabularMLP(width, pipeline.embeddings, out_features, cfg))
        return TabularMLP(pipeline.numeric_width, pipeline.embeddings, out_features, cfg)
    try:  # ValueError: e.g. more pooling stages than the picture or signal has steps for
        if cfg.type == "minilm":
            from strata.models.minilm import MiniLMText
            from strata.models.sequence import SequenceNet

            return SequenceNet(MiniLMText(), pipeline.numeric_width, pipeline.embeddings, out_features, cfg)
        if cfg.type in SEQUENCE_MODELS:
            from strata.models.sequence import build_sequence

            return build_sequence(cfg, source, pipeline.numeric_width, pipeline.embeddings, out_features)
        if cfg.type == "cnn1d" and source is not None:
            from strata.models.adapters import StepsAsChannels

            return StepsAsChannels(build_conv(cfg, (source["features"], source["max_length"]), out_features))
        if cfg.type == "cnn1d":
            from strata.models.conv import SignalFromColumns

            return SignalFromColumns(build_conv(cfg, (1, pipeline.numeric_width), out_features))
        state = _image_column(pipeline)["state"]
        return build_conv(cfg, (state["channels"], *state["size"]), out_features)
    except ValueError as err:
        raise RecipeError(str(err)) from None


def sequence_source(pipeline: Pipeline) -> dict | None:
    """What the sequence input is, for the builders: token ids of a text column, or the steps of a
    sequence column (None when the data has neither)."""
    from strata.features import text

    column = pipeline.column_for("text")
    if column is not None:
        state = column["state"]
        return {"kind": "text", "vocab_size": text.vocab_size(state), "max_length": text.max_length(state)}
    column = pipeline.column_for("sequence")
    if column is not None:
        state = column["state"]
        return {"kind": "sequence", "features": state["features"], "max_length": state["max_length"]}
    return None


def check_inputs(cfg: ModelConfig, pipeline: Pipeline) -> None:
    """The network must read every input the data has: say which model fits instead."""
    slots = {c["name"]: _slot(c) for c in pipeline.columns}
    kinds = set(slots.values())
    if cfg.type in (*SEQUENCE_MODELS, "minilm"):
        _check_sequence_inputs(cfg, pipeline, slots)
        return
    if cfg.type == "mlp" and "image" in kinds:
        raise RecipeError(f"model.type: mlp reads tables, but column '{_image_column(pipeline)['name']}' holds "
                          "images; use cnn or resnet")  # fmt: skip
    if cfg.type == "mlp" and "text" in kinds:
        name = next(n for n, s in slots.items() if s == "text")
        raise RecipeError(f"model.type: mlp reads numbers, but column '{name}' holds text; use bag (a bag of "
                          "embeddings), lstm, gru or transformer, or give the column pretrained: minilm")  # fmt: skip
    if cfg.type in ("cnn", "resnet") and kinds != {"image"}:
        others = [c["name"] for c in pipeline.columns if _slot(c) != "image"]
        what = f"the other input columns ({', '.join(others[:3])}{'...' if len(others) > 3 else ''})"
        raise RecipeError(f"model.type: {cfg.type} reads one image column and nothing else; "
                          + (f"drop {what} (data.drop)" if "image" in kinds else "this data has no image column; "
                             "use mlp for tables or cnn1d for signals"))  # fmt: skip
    if cfg.type == "cnn1d" and kinds - {"numeric"} and kinds != {"sequence"}:
        odd = next(c for c in pipeline.columns if _slot(c) != "numeric")
        instead = "use cnn or resnet for images" if odd["kind"] == "image" else "drop it, or use mlp"
        raise RecipeError(f"model.type: cnn1d reads numeric columns as one signal, in column order, or one "
                          f"sequence column; column '{odd['name']}' is {odd['kind']} ({instead})")  # fmt: skip


def _check_sequence_inputs(cfg: ModelConfig, pipeline: Pipeline, slots: dict[str, str]) -> None:
    sequences = [n for n, s in slots.items() if s in ("text", "sequence")]
    if not sequences:
        raise RecipeError(f"model.type: {cfg.type} reads a text or sequence column, and this data has neither; "
                          "use mlp for tables (or set a column's type: text)")  # fmt: skip
    pictures = [n for n, s in slots.items() if s == "image"]
    if pictures:
        raise RecipeError(f"model.type: {cfg.type} cannot read the images in column '{pictures[0]}'; drop it")
    text = pipeline.column_for("text")
    if cfg.type == "minilm" and (text is None or text["state"].get("tokenizer") != "minilm"):
        where = f"column '{text['name']}'" if text else "a text column"
        raise RecipeError(f"model.type: minilm reads MiniLM's word pieces; give {where} tokenizer: minilm "
                          "in features.columns")  # fmt: skip


def _slot(column: dict) -> str:
    from strata.features.pipeline import kind_of

    return kind_of(column["kind"], column["state"]).slot(column["state"])


def _image_column(pipeline: Pipeline) -> dict:
    return next(c for c in pipeline.columns if c["kind"] == "image")
