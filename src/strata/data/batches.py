"""In-memory tensors and their batches: index slices of a seeded permutation, no DataLoader."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TensorSet:
    """Model inputs by name (the network's keyword arguments) and the target, all with N rows."""

    inputs: dict[str, torch.Tensor]
    target: torch.Tensor

    def __len__(self) -> int:
        return len(self.target)

    def _end(self, size: int) -> int:
        # A trailing batch of one row is left out: batch norm cannot normalise a single row, and
        # the permutation changes every epoch, so no row is left out for good.
        n = len(self)
        return n - 1 if n % size == 1 and n > 1 else n

    def n_batches(self, size: int) -> int:
        return -(-self._end(size) // size)

    def batches(self, size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Shuffled batches for one epoch."""
        order = torch.randperm(len(self), generator=generator)
        for start in range(0, self._end(size), size):
            idx = order[start : start + size]
            yield {name: x[idx] for name, x in self.inputs.items()}, self.target[idx]
