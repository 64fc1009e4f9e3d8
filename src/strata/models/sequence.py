"""Networks for text and sequences: recurrent (`rnn`, `lstm`, `gru`), `transformer` and `bag`.

Every network has three parts: `encoder` (the steps to one vector per row), `embeddings` (one per
categorical column, when the table has some) and `head` (dropout, dense layers, the output
nn.Linear). The encoding, the numeric columns and the categorical embeddings are concatenated before
the head, so one network reads text or a sequence together with ordinary table columns.

Inputs come by name, as for every Strata network (`model(**inputs)`):

- `text` (N, L) int64 token ids, left-aligned: 0 is padding, 1 an unknown token; or
- `sequence` (N, T, F) float32, right-padded with zeros, and `lengths` (N,) int64, the real steps
  (all T when not given; with `text`, the non-zero ids are counted when not given);
- `numeric` (N, D) float32 and `categorical` (N, K) int64, optional table columns.

Padding never changes an output: recurrent layers run on packed sequences, attention masks the
padded keys, and every pooling looks at the real steps only.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from strata.models.blocks import dense_block, initialise
from strata.models.specs import BagConfig, SequenceModelConfig, TransformerConfig, _RecurrentConfig

_RECURRENT: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # weight blocks stacked in each recurrent weight matrix


# ------------------------------------------------------------------------------------------ steps
class _Steps(nn.Module):
    """Reads the input the source gives: token ids through an embedding (row 0, padding, stays zero),
    or float features through a Linear to `width` (or as they are, when `width` is None)."""

    def __init__(self, source: dict, width: int | None):
        super().__init__()
        self.kind = source["kind"]
        if self.kind == "text":
            self.embed: nn.Module = nn.Embedding(source["vocab_size"], width, padding_idx=0)
        else:
            self.embed = nn.Identity() if width is None else nn.Linear(source["features"], width)

    def forward(
        self, text: torch.Tensor | None, sequence: torch.Tensor | None, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The steps (N, T, width) and the real lengths (N,), clamped to [1, T]: an empty row reads as
        one padding step, so that every pooling has a step to look at and stays finite."""
        if self.kind == "text":
            if text is None:
                raise ValueError("this network reads token ids as `text` (N, L), but got none")
            if lengths is None:
                lengths = (text != 0).sum(dim=1)
            x = text
        else:
            if sequence is None:
                raise ValueError("this network reads `sequence` (N, T, F) and `lengths` (N,), but got no sequence")
            if lengths is None:
                lengths = torch.full((len(sequence),), sequence.shape[1], dtype=torch.int64, device=sequence.device)
            x = sequence
        return self.embed(x), lengths.clamp(1, max(x.shape[1], 1))


def _real(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(N, T) bool, True at the real steps."""
    return torch.arange(steps, device=lengths.device) < lengths[:, None]


def _pool(x: torch.Tensor, real: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean or max of (N, T, W) over the real steps -> (N, W)."""
    if kind == "max":  # padding at -inf, so a padded zero never beats a negative real value
        return x.masked_fill(~real[..., None], -math.inf).amax(dim=1)
    weights = real.to(x.dtype)[..., None]  # (N, T, 1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1)


class AttentionPool(nn.Module):
    """A learned query scores every step; the softmax over the real steps weighs them (N, T, W) -> (N, W)."""

    def __init__(self, width: int):
        super().__init__()
        self.score = nn.Linear(width, 1, bias=False)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        scores = self.score(x).squeeze(-1).masked_fill(~real, -math.inf)  # (N, T)
        return (torch.softmax(scores, dim=1)[..., None] * x).sum(dim=1)


# -------------------------------------------------------------------------------------- recurrent
class RecurrentEncoder(nn.Module):
    """`rnn`, `lstm`, `gru`: stacked recurrent layers over packed sequences, then pooling over time."""

    def __init__(self, cfg: _RecurrentConfig, source: dict):
        super().__init__()
        self.steps = _Steps(source, cfg.embedding_dim if source["kind"] == "text" else None)
        n_in = cfg.embedding_dim if source["kind"] == "text" else source["features"]
        options = {"nonlinearity": cfg.nonlinearity} if cfg.type == "rnn" else {}
        self.rnn = _RECURRENT[cfg.type](
            n_in,
            cfg.hidden_size,
            num_layers=cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,  # torch warns about dropout on a single layer
            bidirectional=cfg.bidirectional,
            **options,
        )
        self.directions = 2 if cfg.bidirectional else 1
        self.width = cfg.hidden_size * self.directions
        self.pooling = cfg.pooling
        self.attention = AttentionPool(self.width) if cfg.pooling == "attention" else None

    def _run(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor | PackedSequence, torch.Tensor | tuple]:
        """Packed, the recurrence stops at each row's last real step: padding never enters the state.
        A batch without padding skips the packing, which costs up to 4x the time on CPU (GRU, RNN)."""
        if bool((lengths == x.shape[1]).all()):
            return self.rnn(x)
        return self.rnn(pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False))

    def forward(
        self,
        text: torch.Tensor | None = None,
        sequence: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x, lengths = self.steps(text, sequence, lengths)  # (N, T, n_in)
        out, state = self._run(x, lengths)
        if self.pooling == "last":
            h = state[0] if isinstance(state, tuple) else state  # (layers x directions, N, H); LSTM: (h, c)
            # The last layer's final states: the forward one after the last real step, the backward
            # one after step 0. Packing returns them in the batch's own row order.
            return torch.cat(list(h[-self.directions :]), dim=1)  # (N, width)
        if isinstance(out, PackedSequence):
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (N, T, width)
        real = _real(lengths, x.shape[1])
        return self.attention(out, real) if self.attention is not None else _pool(out, real, self.pooling)


def _init_recurrent(rnn: nn.RNNBase, scheme: str, kind: str, nonlinearity: str, max_length: int) -> None:
    """`auto` keeps PyTorch's uniform(+-1/sqrt(hidden)) weights and biases, which train well for recurrent
    layers; `kaiming` and `xavier` set each gate's block of the stacked weight matrices on its own (the
    fans of one gate, not of four), biases at zero. Every scheme but `default` then sets the LSTM and
    GRU gate biases by `_chrono`."""
    if scheme == "default":
        return
    with torch.no_grad():
        for name, param in rnn.named_parameters() if scheme != "auto" else ():
            if name.startswith("bias"):
                nn.init.zeros_(param)
            elif scheme == "kaiming":
                for block in param.chunk(_GATES[kind], dim=0):
                    nn.init.kaiming_normal_(block, nonlinearity=nonlinearity)
            else:
                for block in param.chunk(_GATES[kind], dim=0):
                    nn.init.xavier_uniform_(block, gain=nn.init.calculate_gain(nonlinearity))
        if kind != "rnn":
            _chrono(rnn, kind, max_length)


def _chrono(rnn: nn.LSTM | nn.GRU, kind: str, max_length: int) -> None:
    """Gate biases that keep the state for about as long as the sequences last (chrono initialisation,
    Tallec & Ollivier 2018): per unit, u ~ U(1, max_length - 1), the LSTM's forget bias log(u) and input
    bias -log(u), the GRU's update bias log(u) (the gate that keeps the old state, in PyTorch's GRU).

    A forget bias of 1, the usual advice, keeps about sigmoid(1) = 0.73 of the cell per step, and
    0.73^99 = 3e-14: next to nothing of the gradient reaches back 100 steps. Measured on a 100-step
    dependency (Adam at 3e-3, 2000 sequences): with a forget bias of 1 the LSTM was still at chance
    after 40 epochs, and so was the GRU with PyTorch's own biases after 30; with these, the GRU learns
    it in under ten epochs and the LSTM in ten to twenty-five (tests/models/test_sequence.py,
    examples/vanishing_gradients.py)."""
    hidden = rnn.hidden_size
    timescale = torch.zeros(hidden)
    for name, param in rnn.named_parameters():  # bias_ih before bias_hh, layer by layer, direction by direction
        if not name.startswith("bias"):
            continue
        if name.startswith("bias_ih"):  # the two biases add up: this one carries the timescale, the other 0
            timescale = torch.log(torch.empty(hidden).uniform_(1.0, max(max_length - 1.0, 1.0)))
        keep = timescale if name.startswith("bias_ih") else torch.zeros(hidden)
        gates = param.view(_GATES[kind], hidden)  # LSTM: input, forget, cell, output; GRU: reset, update, new
        gates[1] = keep
        if kind == "lstm":
            gates[0] = -keep


# ------------------------------------------------------------------------------------ transformer
def sinusoidal(positions: int, width: int) -> torch.Tensor:
    """The fixed positional encoding of Vaswani et al. 2017: (positions, width), sines and cosines of
    geometrically spaced wavelengths."""
    position = torch.arange(positions, dtype=torch.float32)[:, None]  # (P, 1)
    rate = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))  # (W/2,)
    table = torch.zeros(positions, width)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: width // 2])
    return table


class TransformerEncoder(nn.Module):
    """`transformer`: steps to `d_model`, positions added, self-attention layers with the padded keys
    masked out, then the CLS token's state or the mean over the real steps."""

    def __init__(self, cfg: TransformerConfig, source: dict):
        super().__init__()
        self.steps = _Steps(source, cfg.d_model)
        self.cls = nn.Parameter(torch.randn(1, 1, cfg.d_model) * 0.02) if cfg.pooling == "cls" else None
        self.max_length = source["max_length"]
        positions = self.max_length + (self.cls is not None)
        if cfg.positional == "learned":
            self.positions: nn.Module | None = nn.Embedding(positions, cfg.d_model)
        else:
            self.positions = None
            # Not in the state dict: it is a function of the shape, rebuilt on load.
            self.register_buffer("table", sinusoidal(positions, cfg.d_model), persistent=False)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model,
            cfg.heads,
            cfg.feedforward,
            cfg.dropout,
            cfg.activation,
            batch_first=True,
            norm_first=cfg.norm_first,
        )
        # Pre-norm layers leave the residual stream unnormalised: one last layer norm, as in GPT-2.
        # No nested tensors: torch warns that pre-norm layers cannot use them and that they are a
        # prototype, and in eval mode only they would zero the outputs at padded steps (never read here).
        final = nn.LayerNorm(cfg.d_model) if cfg.norm_first else None
        self.layers = nn.TransformerEncoder(layer, cfg.layers, norm=final, enable_nested_tensor=False)
        self.width = cfg.d_model

    def _positions(self, steps: int) -> torch.Tensor:
        if self.positions is not None:
            return self.positions.weight[:steps]
        return self.table[:steps]

    def forward(
        self,
        text: torch.Tensor | None = None,
        sequence: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x, lengths = self.steps(text, sequence, lengths)  # (N, T, d_model)
        if x.shape[1] > self.max_length:
            raise ValueError(f"got {x.shape[1]} steps, but this network was built for at most {self.max_length}")
        real = _real(lengths, x.shape[1])  # (N, T)
        if self.cls is not None:  # never masked, so even an empty row attends to something
            # x.shape[0], not len(x): a Python int would freeze the batch size into an exported graph
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)  # (N, 1 + T, d_model)
            real = torch.cat([torch.ones_like(real[:, :1]), real], dim=1)
        x = self.dropout(x + self._positions(x.shape[1]))
        x = self.layers(x, src_key_padding_mask=~real)  # (N, T', d_model)
        return x[:, 0] if self.cls is not None else _pool(x, real, "mean")


def _init_transformer(encoder: TransformerEncoder, scheme: str, activation: str) -> None:
    """`auto` is Xavier on every nn.Linear, as torch's own nn.Transformer does; the attention's input
    projection is Xavier already. Layer norms stay at weight 1, bias 0."""
    if scheme == "default":
        return
    initialise(encoder, "xavier" if scheme == "auto" else scheme, activation)


# -------------------------------------------------------------------------------------------- bag
class BagEncoder(nn.Module):
    """`bag`: token embeddings (or each step projected to `embedding_dim`) pooled over the real steps,
    with no regard to their order."""

    def __init__(self, cfg: BagConfig, source: dict):
        super().__init__()
        self.steps = _Steps(source, cfg.embedding_dim)
        self.pooling = cfg.pooling
        self.width = cfg.embedding_dim

    def forward(
        self,
        text: torch.Tensor | None = None,
        sequence: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x, lengths = self.steps(text, sequence, lengths)  # (N, T, embedding_dim)
        return _pool(x, _real(lengths, x.shape[1]), self.pooling)


# -------------------------------------------------------------------------------------- the whole
class SequenceNet(nn.Module):
    """An encoder for the steps, optional table columns, and a dense head over all of them."""

    def __init__(
        self,
        encoder: RecurrentEncoder | TransformerEncoder | BagEncoder,
        numeric_width: int,
        embeddings: list[tuple[int, int]],
        out_features: int,
        cfg: SequenceModelConfig,
    ):
        super().__init__()
        self.encoder = encoder
        self.numeric_width = numeric_width
        # Index 0 of every vocabulary is "not seen in training": a fixed zero vector, never trained.
        self.embeddings = nn.ModuleList(nn.Embedding(n, d, padding_idx=0) for n, d in embeddings)
        width = encoder.width + numeric_width + sum(d for _, d in embeddings)
        # Always a module at index 0 (Dropout, or Identity without dropout), so the layer names do not
        # depend on the dropout.
        layers: list[nn.Module] = [nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity()]
        for size in cfg.hidden:
            layers.append(dense_block(width, size, cfg.activation, "none", cfg.dropout))
            width = size
        self.head = nn.Sequential(*layers, nn.Linear(width, out_features))
        initialise(self.head[:-1], cfg.init, cfg.activation)
        initialise(self.head[-1], "xavier" if cfg.init != "default" else "default", "linear")

    def _table(self, n: int, numeric: torch.Tensor | None, categorical: torch.Tensor | None) -> list[torch.Tensor]:
        """The table columns to concatenate with the encoding: numeric (N, D), then K x (N, d)."""
        parts = []
        if self.numeric_width:
            if numeric is None:
                raise ValueError(f"this network also reads `numeric` ({n}, {self.numeric_width}), but got none")
            parts.append(numeric)
        if len(self.embeddings):
            if categorical is None:
                raise ValueError(f"this network also reads `categorical` ({n}, {len(self.embeddings)}), but got none")
            parts += [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        return parts

    def forward(
        self,
        text: torch.Tensor | None = None,
        sequence: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        numeric: torch.Tensor | None = None,
        categorical: torch.Tensor | None = None,
    ) -> torch.Tensor:
        encoding = self.encoder(text=text, sequence=sequence, lengths=lengths)  # (N, encoder.width)
        parts = [encoding, *self._table(len(encoding), numeric, categorical)]
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return self.head(x)  # (N, out_features)


# ---------------------------------------------------------------------------------------- builder
def _check_source(source: dict) -> None:
    kind = source.get("kind")
    keys = {"text": ("vocab_size", "max_length"), "sequence": ("features", "max_length")}
    if kind not in keys:
        raise ValueError(f"source kind must be 'text' or 'sequence', got {kind!r}")
    for key in keys[kind]:
        if not isinstance(source.get(key), int) or source[key] < 1:
            raise ValueError(f"a {kind} source needs a positive integer {key!r}, got {source.get(key)!r}")
    if kind == "text" and source["vocab_size"] < 2:
        raise ValueError(
            f"a text vocabulary holds padding (0) and unknown (1) at least, got vocab_size {source['vocab_size']}"
        )


def build_sequence(
    cfg: SequenceModelConfig, source: dict, numeric_width: int, embeddings: list[tuple[int, int]], out_features: int
) -> nn.Module:
    """The network for `cfg.type` over `source`, plus `numeric_width` numeric columns and one
    embedding per categorical column (`(vocabulary, width)` each). Initialised from the global RNG;
    seed it first.

    >>> from strata.models.specs import GRUConfig
    >>> net = build_sequence(GRUConfig(hidden_size=8), {"kind": "text", "vocab_size": 50, "max_length": 12}, 0, [], 3)
    >>> net(text=torch.tensor([[5, 7, 2, 0], [9, 0, 0, 0]])).shape
    torch.Size([2, 3])
    """
    _check_source(source)
    if numeric_width < 0 or any(n < 1 or d < 1 for n, d in embeddings):
        raise ValueError(
            f"table inputs must have positive sizes, got numeric {numeric_width} and embeddings {embeddings}"
        )
    if cfg.type == "transformer":
        encoder: nn.Module = TransformerEncoder(cfg, source)
        _init_transformer(encoder, cfg.init, cfg.activation)
    elif cfg.type == "bag":
        encoder = BagEncoder(cfg, source)
        initialise(encoder, "xavier" if cfg.init == "auto" else cfg.init, "linear")  # a projection, no activation
    else:
        encoder = RecurrentEncoder(cfg, source)
        nonlinearity = cfg.nonlinearity if cfg.type == "rnn" else "sigmoid"  # the gates
        _init_recurrent(encoder.rnn, cfg.init, cfg.type, nonlinearity, source["max_length"])
    return SequenceNet(encoder, numeric_width, embeddings, out_features, cfg)
