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

    @property
    def slots(self) -> list[str]:
        return list(self.inputs)

    def batches(self, size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Shuffled batches for one epoch."""
        for idx in epoch_order(len(self), self._end(size), size, generator):
            yield {name: x[idx] for name, x in self.inputs.items()}, self.target[idx]

    def chunks(self, size: int) -> Iterator[dict[str, torch.Tensor]]:
        """The inputs in row order, `size` rows at a time (for predictions)."""
        for start in range(0, len(self), size):
            yield {name: x[start : start + size] for name, x in self.inputs.items()}


def epoch_order(n: int, end: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's batches of row indices: a seeded permutation, cut every `size` rows up to `end`."""
    order = torch.randperm(n, generator=generator)
    return [order[start : start + size] for start in range(0, end, size)]


class ShardedSet:
    """One process's part of a TensorSet in data-parallel training (strata.distributed).

    Every process draws the same permutation from the same seeded generator and takes the
    `rank`-th of `world` contiguous slices of each global batch of `size` rows, so the processes
    together see exactly the batches of a single process, and all take the same number of steps.
    `share` is the current step's rows over the global batch's: the gradient hook weights each
    process's mean-loss gradient by it, which makes an uneven last batch exact too.
    """

    def __init__(self, data: TensorSet, rank: int, world: int):
        self.data, self.rank, self.world = data, rank, world
        self.share = 1.0 / world

    def __len__(self) -> int:
        return len(self.data)

    @property
    def inputs(self) -> dict[str, torch.Tensor]:
        return self.data.inputs

    @property
    def target(self) -> torch.Tensor:
        return self.data.target

    @property
    def slots(self) -> list[str]:
        return self.data.slots

    def _end(self, size: int) -> int:
        # A trailing batch too small to give every process a row is left out, as a trailing batch of
        # one row is in one process (the permutation changes every epoch: no row is left out for good).
        end = self.data._end(size)
        tail = end % size
        return end - tail if 0 < tail < self.world else end

    def n_batches(self, size: int) -> int:
        return -(-self._end(size) // size)

    def rows(self, size: int) -> int:
        """Rows this process trains on in one epoch."""
        end, world = self._end(size), self.world
        batch_rows = (min(size, end - start) for start in range(0, end, size))
        return sum(rows // world + (self.rank < rows % world) for rows in batch_rows)  # as shard() cuts

    def batches(self, size: int, generator: torch.Generator) -> Iterator[Batch]:
        """This process's part of each of the epoch's shuffled batches."""
        for idx in epoch_order(len(self.data), self._end(size), size, generator):
            part = shard(idx, self.rank, self.world)
            self.share = len(part) / len(idx)
            yield {name: x[part] for name, x in self.data.inputs.items()}, self.data.target[part]

    def chunks(self, size: int) -> Iterator[dict[str, torch.Tensor]]:
        return self.data.chunks(size)


def shard(idx: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Process `rank`'s contiguous slice of a global batch; the first `len(idx) % world` get a row more."""
    return idx.tensor_split(world)[rank]


class StreamSet:
    """Image files too many to hold decoded, with the TensorSet interface: each batch is decoded and
    normalised when it is needed, by DataLoader workers, in the same seeded order a TensorSet uses
    (so a streamed run trains like an in-memory one)."""

    def __init__(self, paths: list[str], target: torch.Tensor, state: dict, name: str, workers: int | None = None):
        import os

        self.paths, self.target, self.state, self.name = paths, target, state, name
        self.workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if workers is None else workers

    def __len__(self) -> int:
        return len(self.target)

    _end = TensorSet._end
    n_batches = TensorSet.n_batches

    @property
    def slots(self) -> list[str]:
        return [self.name]

    def _load(self, index_lists: list) -> Iterator[torch.Tensor]:
        from torch.utils.data import DataLoader

        loader = DataLoader(_Decoded(self.paths, self.state), batch_sampler=[i.tolist() for i in index_lists],
                            num_workers=self.workers)  # fmt: skip
        yield from loader

    def batches(self, size: int, generator: torch.Generator) -> Iterator[Batch]:
        order = epoch_order(len(self), self._end(size), size, generator)
        for idx, x in zip(order, self._load(order), strict=True):
            yield {self.name: x}, self.target[idx]

    def chunks(self, size: int) -> Iterator[dict[str, torch.Tensor]]:
        order = [torch.arange(s, min(s + size, len(self))) for s in range(0, len(self), size)]
        for x in self._load(order):
            yield {self.name: x}


class _Decoded:
    """Map-style dataset: row i's image file, decoded and normalised as the pipeline does."""

    def __init__(self, paths: list[str], state: dict):
        self.paths, self.state = paths, state

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        import pandas as pd

        from strata.features import image

        return torch.from_numpy(image.transform(pd.Series([self.paths[i]], name="image"), self.state)[0])
