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
    outs = [network(**{k: v[i : i + chunk] for k, v in inputs.items()}) for i in range(0, n, chunk)]
    return torch.cat(outs) if outs else torch.empty(0, out_size)
