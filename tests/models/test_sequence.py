"""Sequence networks: shapes, padding, packing, table inputs, recipe checks, seeding, and two classic
lessons shown on real training runs: gradients vanish in a plain RNN, and clipping stops them exploding."""

from __future__ import annotations

import doctest
import inspect
import math
import warnings

import pytest
import torch
from pydantic import ValidationError
from torch import nn

import strata.models.sequence
from strata.data.batches import TensorSet
from strata.models.sequence import RecurrentEncoder, build_sequence
from strata.models.specs import BagConfig, GRUConfig, LSTMConfig, RNNConfig, TransformerConfig
from strata.recipe import Seeds, TrainConfig
from strata.training.trainer import Trainer

TEXT = {"kind": "text", "vocab_size": 30, "max_length": 9}
SEQUENCE = {"kind": "sequence", "features": 3, "max_length": 9}
TABLE = (2, [(4, 3), (6, 2)])  # numeric width, (vocabulary, width) of each categorical embedding
NONE = (0, [])
RECURRENT = {"rnn": RNNConfig, "lstm": LSTMConfig, "gru": GRUConfig}

# Every type with every pooling, tiny.
CONFIGS = [
    *(
        cls(hidden_size=4, embedding_dim=5, pooling=p)
        for cls in RECURRENT.values()
        for p in ("last", "mean", "max", "attention")
    ),
    TransformerConfig(d_model=8, heads=2, layers=1, feedforward=16, pooling="cls", positional="learned"),
    TransformerConfig(
        d_model=8, heads=2, layers=2, feedforward=16, pooling="mean", norm_first=False, activation="relu"
    ),
    BagConfig(embedding_dim=5, pooling="mean", hidden=[6]),
    BagConfig(embedding_dim=5, pooling="max", hidden=[]),
]
# One of each type, with the options that change the layout: both directions, stacked layers.
ONE_EACH = [
    RNNConfig(hidden_size=4, embedding_dim=5, layers=2, nonlinearity="relu"),
    LSTMConfig(hidden_size=4, embedding_dim=5, bidirectional=True),
    LSTMConfig(hidden_size=4, embedding_dim=5, bidirectional=True, layers=2, pooling="max"),
    GRUConfig(hidden_size=4, embedding_dim=5, bidirectional=True, pooling="attention"),
    GRUConfig(hidden_size=4, embedding_dim=5, pooling="mean"),
    TransformerConfig(d_model=8, heads=2, layers=2, feedforward=16, pooling="cls"),
    TransformerConfig(d_model=8, heads=2, layers=2, feedforward=16, pooling="mean", positional="learned"),
    BagConfig(embedding_dim=5, pooling="max"),
    BagConfig(embedding_dim=5, pooling="mean"),
]


def _id(cfg) -> str:
    return f"{cfg.type}-{cfg.pooling}" + ("-bi" if getattr(cfg, "bidirectional", False) else "")


def make_inputs(source: dict, lengths: list[int], table: tuple = NONE, seed: int = 0) -> dict[str, torch.Tensor]:
    """Rows of the given real lengths, right-padded to the longest: token ids (1 is the unknown token,
    0 the padding) or float steps, plus the table columns when `table` has some."""
    g = torch.Generator().manual_seed(seed)
    n, steps = len(lengths), max(max(lengths), 1)
    real = torch.arange(steps) < torch.tensor(lengths)[:, None]  # (N, T)
    if source["kind"] == "text":
        ids = torch.randint(1, source["vocab_size"], (n, steps), generator=g)
        inputs = {"text": ids * real}
    else:
        x = torch.randn(n, steps, source["features"], generator=g)
        inputs = {"sequence": x * real[..., None], "lengths": torch.tensor(lengths)}
    numeric, embeddings = table
    if numeric:
        inputs["numeric"] = torch.randn(n, numeric, generator=g)
    if embeddings:
        inputs["categorical"] = torch.stack([torch.randint(0, v, (n,), generator=g) for v, _ in embeddings], dim=1)
    return inputs


def build(cfg, source: dict = SEQUENCE, table: tuple = NONE, out_features: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_sequence(cfg, source, table[0], table[1], out_features)


# ------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
@pytest.mark.parametrize("source", [TEXT, SEQUENCE], ids=["text", "sequence"])
@pytest.mark.parametrize("table", [NONE, TABLE], ids=["alone", "with-table"])
def test_outputs_are_n_by_out_features(cfg, source, table):
    model = build(cfg, source, table)
    out = model(**make_inputs(source, [5, 2, 7], table))
    assert out.shape == (3, 3)
    model.eval()
    assert model(**make_inputs(source, [1], table)).shape == (1, 3)


def test_the_network_takes_its_inputs_by_name_and_has_encoder_embeddings_and_head():
    model = build(LSTMConfig(hidden_size=4, hidden=[7, 5]), TEXT, TABLE, out_features=2)
    assert list(inspect.signature(model.forward).parameters) == [
        "text",
        "sequence",
        "lengths",
        "numeric",
        "categorical",
    ]
    assert isinstance(model.encoder, RecurrentEncoder)
    assert [(e.num_embeddings, e.embedding_dim) for e in model.embeddings] == TABLE[1]
    assert isinstance(model.head, nn.Sequential)
    assert isinstance(model.head[-1], nn.Linear) and model.head[-1].out_features == 2
    widths = [m.in_features for m in model.head.modules() if isinstance(m, nn.Linear)]
    assert widths == [4 + 2 + 3 + 2, 7, 5]  # encoding, numeric, the two embeddings; then the dense layers


def test_the_docstring_example_runs():
    assert doctest.testmod(strata.models.sequence).failed == 0


# ----------------------------------------------------------------------------------------- padding
@pytest.mark.parametrize("cfg", ONE_EACH, ids=_id)
@pytest.mark.parametrize("source", [TEXT, SEQUENCE], ids=["text", "sequence"])
def test_what_lies_in_the_padding_never_changes_the_output(cfg, source):
    model = build(cfg, source).eval()
    inputs = make_inputs(source, [6, 2, 4, 1])
    with torch.no_grad():
        before = model(**inputs)
        # More padding, then random values in it: token ids (with the real lengths given, so they
        # stay padding), or random floats. The padding embedding itself is scrambled too.
        lengths = torch.tensor([6, 2, 4, 1])
        name = "text" if source["kind"] == "text" else "sequence"
        x = torch.cat([inputs[name], torch.zeros_like(inputs[name][:, :3])], dim=1)
        pad = torch.arange(x.shape[1]) >= lengths[:, None]  # (N, T)
        if name == "text":
            x = torch.where(pad, torch.randint(2, source["vocab_size"], x.shape), x)
            model.encoder.steps.embed.weight[0] = torch.randn(model.encoder.steps.embed.embedding_dim)
        else:
            x = torch.where(pad[..., None], torch.randn(x.shape) * 100, x)
        after = model(**{name: x, "lengths": lengths})
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_the_transformer_masks_padding_and_would_change_without_the_mask(pooling):
    cfg = TransformerConfig(d_model=8, heads=2, layers=2, feedforward=16, pooling=pooling)
    model = build(cfg, SEQUENCE).eval()
    inputs = make_inputs(SEQUENCE, [7, 3])
    noisy = inputs["sequence"].clone()
    noisy[1, 3:] = torch.randn(4, 3) * 10
    with torch.no_grad():
        masked = model(**inputs), model(sequence=noisy, lengths=inputs["lengths"])
        unmasked = model(sequence=inputs["sequence"]), model(sequence=noisy)  # every step taken as real
    torch.testing.assert_close(masked[1], masked[0])
    assert not torch.allclose(unmasked[1][1], unmasked[0][1], atol=1e-3)  # so the test above can fail
    torch.testing.assert_close(unmasked[1][0], unmasked[0][0])  # row 0 has no padding: same either way


@pytest.mark.parametrize("cfg", ONE_EACH, ids=_id)
@pytest.mark.parametrize("source", [TEXT, SEQUENCE], ids=["text", "sequence"])
def test_a_row_in_a_padded_batch_gives_what_it_gives_alone(cfg, source):
    model = build(cfg, source).eval()
    lengths = [3, 7, 1, 5]
    inputs = make_inputs(source, lengths)
    with torch.no_grad():
        batch = model(**inputs)
        for i, n in enumerate(lengths):
            alone = {k: v[i : i + 1, :n] if k in ("text", "sequence") else v[i : i + 1] for k, v in inputs.items()}
            torch.testing.assert_close(model(**alone)[0], batch[i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cfg", ONE_EACH, ids=_id)
def test_an_empty_text_gives_finite_outputs_and_gradients(cfg):
    model = build(cfg, TEXT).train()
    text = torch.tensor([[4, 9, 3, 0], [0, 0, 0, 0], [7, 0, 0, 0]])
    out = model(text=text)
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(text=torch.zeros(2, 5, dtype=torch.int64))).all()


def test_max_pooling_ignores_padded_zeros_when_every_real_value_is_negative():
    cfg = BagConfig(embedding_dim=3, pooling="max", hidden=[])
    model = build(cfg, {"kind": "sequence", "features": 3, "max_length": 4}).eval()
    x = -torch.ones(1, 4, 3)
    x[:, 2:] = 0
    encoding = model.encoder(sequence=x, lengths=torch.tensor([2]))
    expected = model.encoder.steps.embed(-torch.ones(1, 3))  # both real steps are the same
    torch.testing.assert_close(encoding, expected)


# -------------------------------------------------------------------------------- recurrent layout
def test_both_directions_double_the_encoding():
    one, two = (build(GRUConfig(hidden_size=6, bidirectional=b, hidden=[]), SEQUENCE) for b in (False, True))
    assert (one.encoder.width, two.encoder.width) == (6, 12)
    assert two.head[-1].in_features == 12
    assert two.encoder(**make_inputs(SEQUENCE, [4, 2])).shape == (2, 12)


def test_the_last_state_reads_each_direction_at_its_own_end():
    """Forward: after the row's last real step; backward: after step 0, having read the row from its end."""
    model = build(LSTMConfig(hidden_size=4, bidirectional=True), SEQUENCE).eval()
    inputs = make_inputs(SEQUENCE, [5, 3])
    with torch.no_grad():
        encoding = model.encoder(**inputs)  # (N, 2 x 4)
        for i, n in enumerate([5, 3]):
            out, _ = model.encoder.rnn(inputs["sequence"][i : i + 1, :n])  # (1, n, 2 x 4): the row alone
            torch.testing.assert_close(encoding[i, :4], out[0, -1, :4])
            torch.testing.assert_close(encoding[i, 4:], out[0, 0, 4:])


def test_stacked_layers_have_dropout_between_them_and_a_single_layer_none():
    stacked = build(LSTMConfig(hidden_size=8, layers=3, dropout=0.5), SEQUENCE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns of dropout on a single recurrent layer
        single = build(LSTMConfig(hidden_size=8, layers=1, dropout=0.5), SEQUENCE)
    assert (stacked.encoder.rnn.num_layers, stacked.encoder.rnn.dropout) == (3, 0.5)
    assert single.encoder.rnn.dropout == 0.0 and isinstance(single.head[0], nn.Dropout)
    inputs = make_inputs(SEQUENCE, [6, 3, 5])
    torch.manual_seed(1)
    assert not torch.equal(stacked(**inputs), stacked(**inputs))  # dropout is on in training
    stacked.eval()
    assert torch.equal(stacked(**inputs), stacked(**inputs))


# ------------------------------------------------------------------------------------ table inputs
def test_numeric_and_categorical_columns_reach_the_head():
    model = build(GRUConfig(hidden_size=4), TEXT, TABLE).eval()
    inputs = make_inputs(TEXT, [3, 5], TABLE)
    with torch.no_grad():
        base = model(**inputs)
        numeric = model(**{**inputs, "numeric": inputs["numeric"] + 1})
        categorical = model(**{**inputs, "categorical": (inputs["categorical"] + 1) % 4})
    assert not torch.allclose(numeric, base) and not torch.allclose(categorical, base)
    assert all(e.padding_idx == 0 and not e.weight[0].any() for e in model.embeddings)  # unseen level: zeros


def test_a_missing_table_input_is_a_clear_error():
    model = build(BagConfig(), TEXT, TABLE)
    inputs = make_inputs(TEXT, [3, 5], TABLE)
    with pytest.raises(ValueError, match=r"also reads `numeric` \(2, 2\), but got none"):
        model(text=inputs["text"], categorical=inputs["categorical"])
    with pytest.raises(ValueError, match=r"also reads `categorical` \(2, 2\), but got none"):
        model(text=inputs["text"], numeric=inputs["numeric"])
    with pytest.raises(ValueError, match=r"reads token ids as `text` \(N, L\), but got none"):
        model(sequence=torch.zeros(2, 3, 1), numeric=inputs["numeric"])


# ----------------------------------------------------------------------------------- recipe checks
def test_heads_must_divide_d_model_and_the_message_says_what_would():
    with pytest.raises(
        ValidationError, match=r"d_model \(64\) must be divisible by heads \(5\); e.g. heads: 4, or d_model: 65"
    ):
        TransformerConfig(heads=5)
    assert TransformerConfig(d_model=60, heads=5).heads == 5


@pytest.mark.parametrize(
    ("cls", "values", "field"),
    [
        (LSTMConfig, {"hidden_size": 0}, "hidden_size"),
        (GRUConfig, {"layers": -1}, "layers"),
        (RNNConfig, {"hidden": [8, -2]}, "hidden"),
        (RNNConfig, {"dropout": 1.0}, "dropout"),
        (RNNConfig, {"nonlinearity": "sigmoid"}, "nonlinearity"),
        (LSTMConfig, {"pooling": "cls"}, "pooling"),
        (TransformerConfig, {"d_model": -8}, "d_model"),
        (TransformerConfig, {"positional": "rotary"}, "positional"),
        (BagConfig, {"embedding_dim": 0}, "embedding_dim"),
        (GRUConfig, {"hiden_size": 8}, "hiden_size"),  # unknown keys are errors, never ignored
        (TransformerConfig, {"num_heads": 4}, "num_heads"),
    ],
)
def test_bad_settings_are_errors_naming_the_field(cls, values, field):
    with pytest.raises(ValidationError) as caught:
        cls(**values)
    assert [e["loc"][0] for e in caught.value.errors()] == [field]


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        GRUConfig().hidden_size = 3


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"kind": "image"}, "source kind must be 'text' or 'sequence', got 'image'"),
        ({"kind": "text", "max_length": 5}, "a text source needs a positive integer 'vocab_size', got None"),
        (
            {"kind": "sequence", "features": 0, "max_length": 5},
            "a sequence source needs a positive integer 'features', got 0",
        ),
        (
            {"kind": "text", "vocab_size": 1, "max_length": 5},
            r"padding \(0\) and unknown \(1\) at least, got vocab_size 1",
        ),
    ],
)
def test_an_impossible_source_is_a_one_line_error(source, message):
    with pytest.raises(ValueError, match=message):
        build(GRUConfig(), source)


def test_a_transformer_refuses_more_steps_than_it_has_positions_for():
    model = build(TransformerConfig(d_model=8, heads=2), SEQUENCE)
    with pytest.raises(ValueError, match="got 12 steps, but this network was built for at most 9"):
        model(sequence=torch.zeros(1, 12, 3))


# ------------------------------------------------------------------------ initialisation and seeds
@pytest.mark.parametrize("cfg", ONE_EACH, ids=_id)
def test_the_same_seed_gives_the_same_weights_and_another_seed_others(cfg):
    a, b, c = build(cfg, TEXT, TABLE, seed=3), build(cfg, TEXT, TABLE, seed=3), build(cfg, TEXT, TABLE, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True))


def test_gated_layers_start_with_gates_that_keep_their_state_for_up_to_the_sequence_length():
    source = {"kind": "sequence", "features": 1, "max_length": 100}
    lstm = build(LSTMConfig(hidden_size=16, layers=2), source).encoder.rnn
    input_gate, forget, *_ = lstm.bias_ih_l1.detach().chunk(4)
    assert ((forget >= 0) & (forget <= math.log(99))).all() and forget.std() > 0.5
    torch.testing.assert_close(input_gate, -forget)
    assert not lstm.bias_hh_l1.detach().chunk(4)[1].any()  # the biases add up: one carries the timescale
    gru = build(GRUConfig(hidden_size=16), source).encoder.rnn
    assert (gru.bias_ih_l0.detach().chunk(3)[1] >= 0).all() and not gru.bias_hh_l0.detach().chunk(3)[1].any()
    torch.manual_seed(0)
    plain = nn.LSTM(1, 16)  # `default` is exactly PyTorch's own
    default = build(LSTMConfig(hidden_size=16, init="default"), source, seed=0).encoder.rnn
    assert torch.equal(default.bias_ih_l0, plain.bias_ih_l0)


@pytest.mark.parametrize("init", ["kaiming", "xavier"])
def test_named_schemes_set_each_gate_block_and_zero_the_other_biases(init):
    rnn = build(GRUConfig(hidden_size=32, init=init), SEQUENCE).encoder.rnn
    reset, update, new = rnn.bias_ih_l0.detach().chunk(3)
    assert not reset.any() and not new.any() and update.min() >= 0
    for block in rnn.weight_hh_l0.detach().chunk(3):  # 32 x 32 each: std of Kaiming or Xavier, gain 1
        assert block.std() == pytest.approx(math.sqrt(1 / 32) if init == "kaiming" else math.sqrt(2 / 64), rel=0.15)


# ------------------------------------------------------------------------------ vanishing gradients
def first_sign_task(n: int, steps: int, seed: int) -> TensorSet:
    """Is the first of `steps` N(0, 1) numbers positive? The other steps are noise to remember across."""
    x = torch.randn(n, steps, 1, generator=torch.Generator().manual_seed(seed))
    return TensorSet({"sequence": x, "lengths": torch.full((n,), steps)}, (x[:, 0, 0] > 0).long())


def accuracy(outputs: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    return {"accuracy": float((outputs.argmax(dim=1) == target).float().mean())}


def train_on_first_sign(kind: str, steps: int, n: int, epochs: int, lr: float) -> float:
    """Held-out accuracy of a 32-unit network (final state) trained with Adam, batches of 32."""
    source = {"kind": "sequence", "features": 1, "max_length": steps}
    model = build(RECURRENT[kind](hidden_size=32), source, out_features=2)
    cfg = TrainConfig(epochs=epochs, batch_size=32, optimizer={"name": "adam", "lr": lr})
    trainer = Trainer(model, nn.CrossEntropyLoss(), cfg, Seeds(0, 0, 0), score=accuracy)
    history = trainer.fit(first_sign_task(n, steps, seed=1), first_sign_task(1000, steps, seed=2))
    return history[-1]["val_accuracy"]


def test_the_gradient_reaching_early_steps_vanishes_in_a_plain_rnn_and_not_in_gated_ones():
    """At initialisation, on 100 steps: d loss / d x_t at step 0 against the last step. A plain tanh
    RNN passes back ~1e-20 of it (measured 1e-19 to 1e-28 over four seeds); the LSTM and GRU, with
    their gates set to keep the state (chrono initialisation), 2e-2 to 3e-1."""
    task = first_sign_task(256, 100, seed=0)
    ratios = {}
    for kind, cls in RECURRENT.items():
        model = build(cls(hidden_size=32), {"kind": "sequence", "features": 1, "max_length": 100}, out_features=2)
        x = task.inputs["sequence"].clone().requires_grad_(True)
        nn.functional.cross_entropy(model(sequence=x), task.target).backward()
        size = x.grad.abs().mean(dim=0)[:, 0]  # (T,)
        ratios[kind] = float(size[0] / size[-1])
    assert ratios["rnn"] < 1e-12, ratios
    assert ratios["lstm"] > 1e-3 and ratios["gru"] > 1e-3, ratios


def test_a_gru_learns_a_dependency_over_50_steps_that_a_plain_rnn_does_not():
    """1000 sequences of 50 steps, 8 epochs of Adam at 5e-3 (~3 s; the 100-step version below is slow).
    Over seeds 0-11 the GRU reached 0.94-0.98 and the RNN 0.49-0.53."""
    gru = train_on_first_sign("gru", steps=50, n=1000, epochs=8, lr=5e-3)
    rnn = train_on_first_sign("rnn", steps=50, n=1000, epochs=8, lr=5e-3)
    assert gru >= 0.9 and rnn <= 0.6, (gru, rnn)


@pytest.mark.slow
def test_a_gru_learns_a_dependency_over_100_steps_that_a_plain_rnn_does_not():
    """2000 sequences of 100 steps, 9 epochs of Adam at 3e-3 (~10 s). Over seeds 0-11 the GRU reached
    0.98-0.99 and the RNN, over seeds 0-23, 0.47-0.54. Not that the RNN never learns it: trained on,
    Adam can carry its weights to where memory lasts (one seed in twelve reached 0.90 by epoch 12)."""
    gru = train_on_first_sign("gru", steps=100, n=2000, epochs=9, lr=3e-3)
    rnn = train_on_first_sign("rnn", steps=100, n=2000, epochs=9, lr=3e-3)
    assert gru >= 0.95 and rnn <= 0.65, (gru, rnn)


# ------------------------------------------------------------------------------- exploding gradients
def test_clipping_keeps_an_exploding_relu_rnn_finite():
    """A ReLU RNN with Kaiming weights grows its state over 100 steps; one SGD step on its gradient
    then overflows. Clipping the gradient norm to 1 bounds every step, and training goes on."""
    source = {"kind": "sequence", "features": 1, "max_length": 100}
    cfg = RNNConfig(hidden_size=32, nonlinearity="relu", init="kaiming")
    data = first_sign_task(500, 100, seed=0)
    results = {}
    for clip in (None, {"norm": 1.0}):
        model = build(cfg, source, out_features=2)
        train = TrainConfig(epochs=3, batch_size=32, optimizer={"name": "sgd", "lr": 0.1}, clip=clip)
        trainer = Trainer(model, nn.CrossEntropyLoss(), train, Seeds(0, 0, 0))
        losses = [row["train_loss"] for row in trainer.fit(data)]
        weights = all(torch.isfinite(p).all() for p in model.parameters())
        results[clip is not None] = (losses, weights, trainer.stop_reason)
    losses, weights, reason = results[False]
    assert not math.isfinite(losses[-1]) and not weights and "set train.clip" in reason
    losses, weights, reason = results[True]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses) and weights and reason is None
