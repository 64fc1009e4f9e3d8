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


def build(cfg: ModelConfig, pipeline: Pipeline, out_features: int, seed: int) -> nn.Module:
    """Build the network for `cfg`, initialised from `seed` without touching the global RNG."""
    import torch

    check_inputs(cfg, pipeline)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _network(cfg, pipeline, out_features)


def _network(cfg: ModelConfig, pipeline: Pipeline, out_features: int) -> nn.Module:
    from strata.models.conv import build_conv

    if cfg.type == "mlp":
        from strata.models.mlp import TabularMLP

        return TabularMLP(pipeline.numeric_width, pipeline.embeddings, out_features, cfg)
    try:  # ValueError: e.g. more pooling stages than the picture or signal has steps for
        if cfg.type == "cnn1d":
            from strata.models.conv import SignalFromColumns

            return SignalFromColumns(build_conv(cfg, (1, pipeline.numeric_width), out_features))
        state = _image_column(pipeline)["state"]
        return build_conv(cfg, (state["channels"], *state["size"]), out_features)
    except ValueError as err:
        raise RecipeError(str(err)) from None


def check_inputs(cfg: ModelConfig, pipeline: Pipeline) -> None:
    """The network must read every input the data has: say which model fits instead."""
    kinds = {c["kind"] for c in pipeline.columns}
    if cfg.type == "mlp" and "image" in kinds:
        raise RecipeError(f"model.type: mlp reads tables, but column '{_image_column(pipeline)['name']}' holds "
                          "images; use cnn or resnet")  # fmt: skip
    if cfg.type in ("cnn", "resnet") and kinds != {"image"}:
        others = [c["name"] for c in pipeline.columns if c["kind"] != "image"]
        what = f"the other input columns ({', '.join(others[:3])}{'...' if len(others) > 3 else ''})"
        raise RecipeError(f"model.type: {cfg.type} reads one image column and nothing else; "
                          + (f"drop {what} (data.drop)" if "image" in kinds else "this data has no image column; "
                             "use mlp for tables or cnn1d for signals"))  # fmt: skip
    if cfg.type == "cnn1d" and kinds - {"numeric"}:
        odd = next(c for c in pipeline.columns if c["kind"] != "numeric")
        instead = "use cnn or resnet for images" if odd["kind"] == "image" else "drop it, or use mlp"
        raise RecipeError(f"model.type: cnn1d reads numeric columns as one signal, in column order; column "
                          f"'{odd['name']}' is {odd['kind']} ({instead})")  # fmt: skip


def _image_column(pipeline: Pipeline) -> dict:
    return next(c for c in pipeline.columns if c["kind"] == "image")
