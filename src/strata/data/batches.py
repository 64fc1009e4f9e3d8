"""In-memory tensors and their batches: index slices of a seeded permutation, no DataLoader."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TensorSet:
    """Model inputs (one tensor per network argument) and the target, all with N rows."""

    inputs: tuple[torch.Tensor, ...]
    target: torch.Tensor

    def __len__(self) -> int:
        return len(self.target)

    def batches(self, size: int, generator: torch.Generator) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        """Shuffled batches for one epoch. A trailing batch of one row is left out (batch norm
        cannot normalise a single row); the permutation changes every epoch, so no row is lost."""
        n = len(self)
        order = torch.randperm(n, generator=generator)
        end = n - 1 if n % size == 1 and n > 1 else n
        for start in range(0, end, size):
            idx = order[start : start + size]
            yield tuple(x[idx] for x in self.inputs), self.target[idx]

    def chunks(self, size: int = 8192) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        """Batches in row order, for evaluation."""
        for start in range(0, len(self), size):
            yield tuple(x[start : start + size] for x in self.inputs), self.target[start : start + size]
