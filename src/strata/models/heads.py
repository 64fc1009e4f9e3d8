"""Output heads: how raw network outputs become predictions, and running a network over inputs.

Used by training (loss choice), evaluation and inference alike, so it lives with the models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Head:
    """sigmoid (one logit, binary), softmax (one logit per class) or identity (one value per target)."""

    kind: str
    size: int


def to_predictions(head: Head, outputs: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N x C; a sigmoid head gives [1 - p, p]) or regression values (N x T)."""
    if head.kind == "sigmoid":
        p = torch.sigmoid(outputs[:, 0])
        return torch.stack([1 - p, p], dim=1)
    if head.kind == "softmax":
        return torch.softmax(outputs, dim=1)
    return outputs


@torch.inference_mode()
def run(network: nn.Module, inputs: dict[str, torch.Tensor], out_size: int, chunk: int = 8192) -> torch.Tensor:
    """Raw outputs for all rows, in eval mode, `chunk` rows at a time to bound memory."""
    network.eval()
    n = len(next(iter(inputs.values()))) if inputs else 0
    out = Rows(n)
    for i in range(0, n, chunk):
        out.put(i, network(**{k: v[i : i + chunk] for k, v in inputs.items()}))
    return out.result(torch.empty(0, out_size))


class Rows:
    """Chunk outputs copied into one tensor allocated at the first chunk, instead of a list joined at
    the end. Keeping each chunk's small output alive while the chunk's large activations are freed
    fragments glibc's heap: the process kept ~1 KB per predicted row (600 MB for 800k rows of a
    256-wide MLP, bench/scaling.py); with one output tensor it stays at a few chunks' activations."""

    def __init__(self, n: int):
        self.n, self.tensor = n, None

    def put(self, start: int, part: torch.Tensor) -> None:
        if self.tensor is None:
            self.tensor = part.new_empty((self.n, *part.shape[1:]))
        self.tensor[start : start + len(part)] = part

    def result(self, empty: torch.Tensor) -> torch.Tensor:
        return self.tensor if self.tensor is not None else empty
