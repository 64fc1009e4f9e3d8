"""A feed-forward network for tables: numeric inputs and categorical embeddings, then dense blocks."""

from __future__ import annotations

import torch
from torch import nn

from strata.models.blocks import dense_block, initialise
from strata.recipe import MLPConfig


class TabularMLP(nn.Module):
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

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        if self.embeddings:  # x_cat: (N, K) int64 -> K x (N, d)
            x_num = torch.cat([x_num, *(emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings))], dim=1)
        return self.head(self.body(x_num))  # (N, out_features)
