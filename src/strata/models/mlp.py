"""A feed-forward network for tables: numeric inputs and categorical embeddings, then dense blocks."""

from __future__ import annotations

import torch
from torch import nn

from strata.models.blocks import dense_block, initialise
from strata.recipe import MLPConfig


class TabularMLP(nn.Module):
    """Inputs by name, as the feature pipeline makes them: `numeric` (N, D) and `categorical` (N, K)."""

    def __init__(self, n_numeric: int, embeddings: list[tuple[int, int]], out_features: int, cfg: MLPConfig):
        super().__init__()
        # Index 0 of every vocabulary is "not seen in training": a fixed zero vector, never trained.
        self.embeddings = nn.ModuleList(nn.Embedding(n, d, padding_idx=0) for n, d in embeddings)
        width = n_numeric + sum(d for _, d in embeddings)
        blocks = []
        for size in cfg.hidden:
            blocks.append(dense_block(width, size, cfg.activation, cfg.norm, cfg.dropout))
            width = size
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, out_features)
        initialise(self.body, cfg.init, cfg.activation)
        initialise(self.head, "xavier" if cfg.init != "default" else "default", "linear")

    def forward(self, numeric: torch.Tensor | None = None, categorical: torch.Tensor | None = None) -> torch.Tensor:
        parts = [] if numeric is None else [numeric]
        if categorical is not None:  # (N, K) int64 -> K x (N, d)
            parts += [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return self.head(self.body(x))  # (N, out_features)
