"""Model builders: small functions from a recipe section and the input shape to a plain nn.Module."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from strata.features.pipeline import Pipeline
    from strata.recipe import MLPConfig


def build(cfg: MLPConfig, pipeline: Pipeline, out_features: int, seed: int) -> nn.Module:
    """Build the network for `cfg`, initialised from `seed` without touching the global RNG."""
    import torch

    from strata.models.mlp import TabularMLP

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TabularMLP(pipeline.numeric_width, pipeline.embeddings, out_features, cfg)
