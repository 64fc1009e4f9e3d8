"""Adapters that let a table or signal network read a sequence input, so every model type that
makes sense for fixed-length sequences (forecast windows, equal-length recordings) can be tried."""

from __future__ import annotations

import torch
from torch import nn


class FlatSequence(nn.Module):
    """An MLP over a sequence: the (N, L, F) steps flattened into (N, L * F) numbers, beside any
    numeric columns. Position matters to it (step 3 is its own input), which suits fixed windows."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(
        self,
        sequence: torch.Tensor,
        lengths: torch.Tensor | None = None,
        numeric: torch.Tensor | None = None,
        categorical: torch.Tensor | None = None,
    ) -> torch.Tensor:
        flat = sequence.flatten(1)  # (N, L * F); padded steps are zeros
        numbers = flat if numeric is None else torch.cat([flat, numeric], dim=1)
        return self.network(numeric=numbers, categorical=categorical)


class StepsAsChannels(nn.Module):
    """A 1-D conv network over a sequence: (N, L, F) steps become a signal of F channels, (N, F, L)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, sequence: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.network(signal=sequence.transpose(1, 2))
