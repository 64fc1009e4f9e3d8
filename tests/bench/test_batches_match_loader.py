"""The fast path (index slices of a seeded permutation) and the DataLoader path give the same batches.

In-memory data trains on `TensorSet.batches`; image files too many to hold decoded train on
`StreamSet.batches`, which decodes each batch in DataLoader workers. A recipe must train alike on
both, so for the same seed they must yield the same rows in the same order, with the same values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from strata.data.batches import StreamSet, TensorSet, epoch_order
from strata.features import image


@pytest.fixture
def pictures(tmp_path):
    """41 small PNG files (41 % 8 == 1: the trailing batch of one row is left out on both paths)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(41):
        path = tmp_path / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths, torch.arange(41) % 3


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_equal_in_memory_batches_for_the_same_seed(pictures, workers):
    paths, target = pictures
    column = pd.Series(paths, name="image")
    column.attrs["streamed"] = {"size": [8, 8], "channels": 3}  # as the workflow marks image files it streams
    state = image.fit(column, {})
    in_memory = TensorSet({"image": torch.from_numpy(image.transform(column, state))}, target)
    streamed = StreamSet(paths, target, state, "image", workers=workers)
    assert streamed.n_batches(8) == in_memory.n_batches(8) == 5
    for epoch_seed in (0, 1):
        fast = list(in_memory.batches(8, torch.Generator().manual_seed(epoch_seed)))
        loader = list(streamed.batches(8, torch.Generator().manual_seed(epoch_seed)))
        assert len(fast) == len(loader)
        for (x_fast, y_fast), (x_loader, y_loader) in zip(fast, loader, strict=True):
            assert torch.equal(y_fast, y_loader)
            assert torch.equal(x_fast["image"], x_loader["image"])
    rows = [chunk["image"] for chunk in streamed.chunks(16)]
    assert torch.equal(torch.cat(rows), in_memory.inputs["image"])


def test_fast_path_equals_a_dataloader_over_the_same_permutation():
    """The in-memory path is a DataLoader(TensorDataset) whose batch sampler is the seeded
    permutation's slices, minus the per-sample collation."""
    x, y = torch.randn(1001, 5), torch.arange(1001)
    data = TensorSet({"numeric": x}, y)
    fast = list(data.batches(64, torch.Generator().manual_seed(7)))
    sampler = [idx.tolist() for idx in epoch_order(len(data), data._end(64), 64, torch.Generator().manual_seed(7))]
    loader = list(DataLoader(TensorDataset(x, y), batch_sampler=sampler))
    assert len(fast) == len(loader) == 16
    for (inputs, target), (xb, yb) in zip(fast, loader, strict=True):
        assert torch.equal(inputs["numeric"], xb) and torch.equal(target, yb)
