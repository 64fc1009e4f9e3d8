r"""Text columns: each value is a piece of text, read as a sequence of token ids (the `text` model input).

Fitting learns a vocabulary from the training rows only and records the sequence length; transforming
gives int64 (N, max_length): the ids of each row's first `max_length` tokens, left-aligned, padded with
0 on the right. Id 0 is padding, 1 an unknown token (one not in the vocabulary), real tokens start at 2.

Values: missing ones (None, NaN) are empty text, so all padding; anything else that is not a string
(a number) is converted with `str()`, so 3.5 reads as the text "3.5".

Options (missing or None: the default):

    tokenizer      word (default): `lowercase`, then the regex `\w+|[^\w\s]`, i.e. runs of letters,
                   digits and underscores, and every other non-space character on its own
                   ("Don't!" -> don ' t !)
                   char: every character, spaces included
                   bpe: byte-pair encoding learnt on the training rows with the `tokenizers` package
                   (the text extra): words split as by `word`, then into the learnt sub-word pieces
                   minilm: the fixed wordpiece vocabulary of all-MiniLM-L6-v2 (30,522 ids; [PAD] = 0,
                   [UNK] = 100, each row starts with [CLS] and ends with [SEP]) for models that
                   fine-tune it (`strata.models.minilm`)
    vocab_size     ids kept, the two reserved ones included: the most frequent tokens, ties broken
                   alphabetically. Default 20,000 (word), 8,000 (bpe), every character seen (char)
    min_frequency  fewest training occurrences a token needs to be kept: 2 (word, bpe), 1 (char)
    max_length     tokens kept per row; default the 95th percentile of the training rows' token
                   counts (at least 1, at most 512), recorded in the state
    lowercase      true (default): lowercase before tokenizing
    pretrained     minilm: not token ids but frozen sentence embeddings (`strata.features.sentence`)

A transformed column whose tokens are mostly (over half) unknown warns once, naming the share.

>>> import pandas as pd
>>> state = fit(pd.Series(["Not good.", "good, not bad"], name="review"), {"min_frequency": 1})
>>> state["vocab"], state["max_length"]
(['<pad>', '<unk>', 'good', 'not', ',', '.', 'bad'], 4)
>>> transform(pd.Series(["not bad at all"], name="review"), state).tolist()
[[3, 6, 1, 1]]
"""

from __future__ import annotations

import functools
import re
import warnings
from collections import Counter
from itertools import chain, repeat
from typing import Any

import numpy as np
import pandas as pd

from strata.errors import DataError, RecipeError, StrataWarning

PAD, UNK = 0, 1
RESERVED = ["<pad>", "<unk>"]
TOKENIZERS = ("word", "char", "bpe", "minilm")
WORD = re.compile(r"\w+|[^\w\s]")
LONGEST = 512  # the cap on max_length (and MiniLM's position limit)
PERCENTILE = 95  # of training token counts: the default max_length
UNKNOWN_SHARE = 0.5  # more unknown tokens than this in a transformed column warns
DEFAULTS = {
    "word": {"vocab_size": 20_000, "min_frequency": 2},
    "char": {"vocab_size": None, "min_frequency": 1},
    "bpe": {"vocab_size": 8_000, "min_frequency": 2},
    "minilm": {"vocab_size": None, "min_frequency": None},
}


def as_texts(column: pd.Series, lowercase: bool = False) -> list[str]:
    """The column as strings: missing values are empty text, other non-strings go through str()."""
    missing = column.isna().to_numpy()
    values = zip(column, missing, strict=True)
    texts = ["" if gone else value if isinstance(value, str) else str(value) for value, gone in values]
    return [t.lower() for t in texts] if lowercase else texts


def fit(column: pd.Series, options: dict[str, Any]) -> dict[str, Any]:
    if options.get("pretrained") is not None:
        return _sentence().fit(column, options)
    name = column.name
    settings = _settings(name, options)
    texts = as_texts(column, settings["lowercase"])
    tokenizer = settings["tokenizer"]
    if tokenizer in ("word", "char"):
        tokens = _tokens(texts, tokenizer)
        state = _fit_vocab(name, tokens, settings)
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    else:
        state = _fit_bpe(name, texts, settings) if tokenizer == "bpe" else _sentence().wordpiece_state(name)
        _, lengths = _encode(texts, state, name)
    state["lowercase"] = settings["lowercase"]
    state["max_length"] = settings["max_length"] or default_max_length(lengths)
    return state


def _settings(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options with their defaults filled in, checked (the recipe checks them too; this is the API's guard)."""
    tokenizer = options.get("tokenizer") or "word"
    if tokenizer not in TOKENIZERS:
        raise RecipeError(f"features.columns: column '{name}': tokenizer {tokenizer!r} is not one of {TOKENIZERS}")
    given = {k: v for k, v in options.items() if v is not None}
    settings = {**DEFAULTS[tokenizer], "max_length": None, "lowercase": True, **given, "tokenizer": tokenizer}
    if tokenizer == "minilm" and (given.keys() & {"vocab_size", "min_frequency", "lowercase"}):
        raise RecipeError(f"features.columns: column '{name}': tokenizer minilm has a fixed, lowercased "
                          f"vocabulary; remove vocab_size, min_frequency and lowercase")  # fmt: skip
    for key, least in (("vocab_size", 3), ("min_frequency", 1), ("max_length", 1)):
        value = settings[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise RecipeError(f"features.columns: column '{name}': {key} should be a whole number >= {least}, "
                              f"got {value!r}")  # fmt: skip
    if settings["max_length"] is not None and settings["max_length"] > LONGEST:
        raise RecipeError(f"features.columns: column '{name}': max_length is at most {LONGEST}, "
                          f"got {settings['max_length']}")  # fmt: skip
    return settings


def default_max_length(lengths: np.ndarray) -> int:
    """The 95th percentile of the token counts, rounded up, kept within [1, 512]."""
    if len(lengths) == 0:
        return 1
    return int(min(LONGEST, max(1, np.ceil(np.percentile(lengths, PERCENTILE)))))


def _tokens(texts: list[str], tokenizer: str) -> list[list[str]]:
    return [list(t) for t in texts] if tokenizer == "char" else [WORD.findall(t) for t in texts]


def _fit_vocab(name: str, tokens: list[list[str]], settings: dict[str, Any]) -> dict[str, Any]:
    counts = Counter(chain.from_iterable(tokens))
    ranked = sorted((-n, token) for token, n in counts.items() if n >= settings["min_frequency"])
    cap = settings["vocab_size"]
    kept = [token for _, token in ranked[: None if cap is None else cap - len(RESERVED)]]
    if not kept:
        _nothing_to_learn(name, counts, settings)
    return {"tokenizer": settings["tokenizer"], "vocab": [*RESERVED, *kept]}


def _nothing_to_learn(name: str, counts: Counter, settings: dict[str, Any]) -> None:
    if not counts:
        raise DataError(f"column '{name}': no text to learn a vocabulary from (every training row is empty "
                        f"or missing)")  # fmt: skip
    raise DataError(f"column '{name}': no token occurs min_frequency={settings['min_frequency']} times in "
                    f"the training rows; lower min_frequency")  # fmt: skip


def _fit_bpe(name: str, texts: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """A BPE tokenizer trained on `texts` (already lowercased when asked). Whitespace pre-tokenizing
    (not ByteLevel) so words split as the `word` tokenizer splits them, and a character never seen in
    training is <unk> (id 1) as with the other tokenizers; ByteLevel would spend 256 ids on bytes and
    never produce <unk>. Training is deterministic: the same rows give the same merges, whatever the
    thread count (checked in tests/features/test_text.py)."""
    tokenizers = _require_tokenizers(name, "tokenizer: bpe")
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=RESERVED[UNK]))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    bpe.encode_special_tokens = True  # "<pad>" written in a text is text, not padding
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=settings["vocab_size"],
        min_frequency=settings["min_frequency"],
        special_tokens=RESERVED,  # in this order: <pad> = 0, <unk> = 1
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    if bpe.get_vocab_size() <= len(RESERVED):
        _nothing_to_learn(name, Counter(chain.from_iterable(texts)), settings)
    return {"tokenizer": "bpe", "bpe": bpe.to_str(), "vocab_size": bpe.get_vocab_size()}


def serial_tokenizers() -> None:
    """Keep `tokenizers` from starting its own thread pool: its idle threads spin beside torch's, and
    on a 2-core machine that made batches of MiniLM 5-20x slower. Strata tokenises in one call per
    column, which is fast enough serially (50,000 reviews in well under a second)."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _require_tokenizers(name: str, what: str) -> Any:
    serial_tokenizers()
    try:
        import tokenizers
    except ImportError:
        raise DataError(f"column '{name}': {what} needs the text extra: pip install 'strata[text]'") from None
    return tokenizers


def _sentence() -> Any:
    from strata.features import sentence

    return sentence


def slot(state: dict[str, Any]) -> str:
    """Token ids feed the `text` input; pretrained embeddings join the `numeric` block."""
    return _sentence().slot(state) if "pretrained" in state else "text"


def width(state: dict[str, Any]) -> int:
    return _sentence().width(state) if "pretrained" in state else 0


def vocab_size(state: dict[str, Any]) -> int:
    """The number of ids, the reserved ones included: the rows of an embedding table for this column."""
    return len(state["vocab"]) if "vocab" in state else int(state["vocab_size"])


def max_length(state: dict[str, Any]) -> int:
    """The columns of the `text` input: tokens kept per row."""
    return int(state["max_length"])


def describe(state: dict[str, Any]) -> str:
    if "pretrained" in state:
        return _sentence().describe(state)
    return f"text ({state['tokenizer']}, {vocab_size(state):,} tokens, up to {state['max_length']})"


def transform(column: pd.Series, state: dict[str, Any]) -> np.ndarray:
    """Token ids, int64 (N, max_length), padded with 0."""
    if "pretrained" in state:
        return _sentence().transform(column, state)
    texts = as_texts(column, state["lowercase"])
    if state["tokenizer"] == "minilm":
        _sentence().check_wordpiece(column.name, state)
    ids, lengths = _encode(texts, state, column.name)
    unknown, total = int(np.count_nonzero(ids == _unknown_id(state))), len(ids)
    if total and unknown / total > UNKNOWN_SHARE:
        warnings.warn(
            f"column '{column.name}': {unknown / total:.0%} of its tokens ({unknown:,} of {total:,}) are not in "
            f"the training vocabulary and read as unknown; is this the text the model was trained on?",
            StrataWarning,
            stacklevel=2,
        )
    return pad(ids, lengths, state["max_length"], keep_last=state["tokenizer"] == "minilm")


def _encode(texts: list[str], state: dict[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every token id of every text, one after the other (int64), and each text's token count."""
    if state["tokenizer"] in ("bpe", "minilm"):
        rows = _sentence().wordpiece_ids(texts) if state["tokenizer"] == "minilm" else _bpe_ids(name, texts, state)
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        return np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum())), lengths
    tokens = _tokens(texts, state["tokenizer"])
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    index = {token: i for i, token in enumerate(state["vocab"]) if i >= len(RESERVED)}
    ids = map(index.get, chain.from_iterable(tokens), repeat(UNK))  # the fastest lookup in plain Python
    return np.fromiter(ids, dtype=np.int64, count=int(lengths.sum())), lengths


def _bpe_ids(name: str, texts: list[str], state: dict[str, Any]) -> list[list[int]]:
    _require_tokenizers(name, "tokenizer: bpe")
    return [encoding.ids for encoding in _restore_bpe(state["bpe"]).encode_batch(texts)]


@functools.lru_cache(maxsize=2)
def _restore_bpe(saved: str) -> Any:
    """The tokenizer saved in a state: restored once, as transform is called again and again with one state."""
    from tokenizers import Tokenizer

    serial_tokenizers()
    bpe = Tokenizer.from_str(saved)
    bpe.encode_special_tokens = True  # not saved in the JSON: "<pad>" written in a text is text, not padding
    return bpe


def _unknown_id(state: dict[str, Any]) -> int:
    return 100 if state["tokenizer"] == "minilm" else UNK  # MiniLM's [UNK]


def pad(ids: np.ndarray, lengths: np.ndarray, length: int, keep_last: bool = False) -> np.ndarray:
    """int64 (N, length) from the rows' ids one after the other: each row's first `length` ids, then
    zeros. `keep_last` puts a truncated row's final id (MiniLM's [SEP]) in its last place."""
    rows = np.repeat(np.arange(len(lengths)), lengths)
    places = np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # position within its row
    kept = places < length
    out = np.zeros((len(lengths), length), dtype=np.int64)
    out[rows[kept], places[kept]] = ids[kept]
    if keep_last:
        cut = np.flatnonzero(lengths > length)
        out[cut, length - 1] = ids[np.cumsum(lengths)[cut] - 1]
    return out
