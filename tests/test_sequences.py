"""End to end through strata.train: text, sequences and forecasts, saved, loaded and predicted."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import strata
from strata.data.datasets import load_dataset
from strata.data.text_data import make_reviews
from strata.errors import DataError, RecipeError


def _recipe(target: str, model: dict, epochs: int, **extra) -> dict:
    train = {"epochs": epochs, "batch_size": 32, "optimizer": {"lr": 3e-3}, **extra.pop("train", {})}
    return {"data": {"target": target}, "model": model, "train": train, "track": False, **extra}


# ------------------------------------------------------------------------------------------ text
@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return make_reviews(4000, seed=0)


def test_word_order_matters_a_gru_beats_a_bag_of_words(reviews):
    # Negations and contrasts decide the label: a bag of embeddings cannot see which clause wins.
    gru = {"type": "gru", "bidirectional": True, "hidden_size": 32, "embedding_dim": 32}
    seq = strata.train(_recipe("sentiment", gru, 8, evaluate=False), data=reviews, quiet=True)
    bag = strata.train(_recipe("sentiment", {"type": "bag"}, 8, evaluate=False), data=reviews, quiet=True)
    assert seq.model.pipeline.columns[0]["kind"] == "text"  # read as free text without being told
    assert seq.metrics["test"]["accuracy"] >= 0.85
    assert bag.metrics["test"]["accuracy"] <= 0.75


def test_text_model_round_trip_and_bit_identical_rerun(reviews, tmp_path):
    small = reviews.head(600)
    recipe = _recipe("sentiment", {"type": "lstm", "hidden_size": 16, "embedding_dim": 16, "pooling": "attention"}, 2)
    first = strata.train(recipe, data=small, quiet=True, out=tmp_path / "a")
    again = strata.train(recipe, data=small, quiet=True, out=tmp_path / "b")
    assert first.model.meta["fingerprint"]["weights"] == again.model.meta["fingerprint"]["weights"]
    loaded = strata.load(tmp_path / "a")
    new = small.tail(50).drop(columns="sentiment")
    np.testing.assert_array_equal(loaded.predict_proba(new), first.model.predict_proba(new))
    assert (
        loaded.pipeline.column_for("text")["state"]["vocab"]
        == first.model.pipeline.column_for("text")["state"]["vocab"]
    )


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_other_tokenizers_train_and_reload(reviews, tokenizer, tmp_path):
    recipe = _recipe("sentiment", {"type": "transformer", "d_model": 16, "heads": 2, "layers": 1}, 1)
    recipe["features"] = {"columns": [{"name": "review", "type": "text", "tokenizer": tokenizer, "vocab_size": 300}]}
    result = strata.train(recipe, data=reviews.head(300), quiet=True, out=tmp_path / "m")
    new = reviews.tail(20).drop(columns="sentiment")
    np.testing.assert_array_equal(strata.load(tmp_path / "m").predict_proba(new), result.model.predict_proba(new))


def test_text_and_table_columns_feed_one_network():
    # The label is in the number, not in the (random) text: the network must read both inputs.
    rng = np.random.default_rng(0)
    words = np.array(["red", "green", "blue", "big", "small", "round", "square", "old"])
    frame = pd.DataFrame({"note": [" ".join(rng.choice(words, 5)) for _ in range(800)], "x": rng.normal(size=800)})
    frame["label"] = np.where(frame["x"] > 0, "up", "down")
    recipe = _recipe("label", {"type": "gru", "hidden_size": 8, "embedding_dim": 8, "hidden": [16]}, 15)
    recipe["features"] = {"columns": [{"name": "note", "type": "text"}, "x"]}
    result = strata.train(recipe, data=frame, quiet=True)
    assert result.model.meta["n_parameters"] > 0 and set(result.model.pipeline.input_names) == {"note", "x"}
    assert result.metrics["test"]["accuracy"] >= 0.9


def test_mlp_on_text_is_a_recipe_error_that_names_the_fix(reviews):
    with pytest.raises(RecipeError, match="column 'review' holds text; use bag"):
        strata.train(_recipe("sentiment", {"type": "mlp"}, 1), data=reviews.head(100), quiet=True)
    with pytest.raises(RecipeError, match="lstm reads a text or sequence column, and this data has neither"):
        strata.train(_recipe("species", {"type": "lstm"}, 1) | {"data": {"dataset": "iris", "target": "species"}})


# ------------------------------------------------------------------------------------- sequences
def _recordings(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """A long table of sensor steps: recordings of 10 to 24 steps; 'walk' has a drift in `a`."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label, steps = i % 2, int(rng.integers(10, 25))
        drift = np.cumsum(rng.normal(0.3 if label else -0.3, 0.5, steps))
        for t in range(steps):
            rows.append(
                {"rec": f"r{i:03d}", "t": t, "a": drift[t], "b": rng.normal(), "activity": "walk" if label else "sit"}
            )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # shuffled: `order` puts the steps back


def test_long_table_of_steps_trains_one_sequence_per_id(tmp_path):
    frame = _recordings()
    recipe = _recipe("activity", {"type": "gru", "hidden_size": 16, "pooling": "mean"}, 10)
    recipe["data"]["sequences"] = {"id": "rec", "order": "t"}
    result = strata.train(recipe, data=frame, quiet=True, out=tmp_path / "m")
    assert sum(result.model.meta["rows"].values()) == 240  # one example per recording
    assert result.metrics["test"]["accuracy"] >= 0.9
    out = tmp_path / "p.csv"
    new = frame[frame["rec"].isin(["r000", "r001"])].drop(columns="activity")
    new.to_csv(tmp_path / "new.csv", index=False)
    done = subprocess.run([sys.executable, "-m", "strata", "predict", str(tmp_path / "m"), str(tmp_path / "new.csv"),
                           "--out", str(out)], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    predicted = pd.read_csv(out)
    assert predicted["rec"].tolist() == ["r000", "r001"] and set(predicted["prediction"]) <= {"sit", "walk"}


def test_a_label_that_changes_within_a_sequence_is_refused():
    frame = _recordings(20)
    frame.loc[frame.index[0], "activity"] = "run"
    recipe = _recipe("activity", {"type": "gru"}, 1)
    recipe["data"]["sequences"] = {"id": "rec", "order": "t"}
    with pytest.raises(DataError, match="target 'activity' changes within rec"):
        strata.train(recipe, data=frame, quiet=True)


# ------------------------------------------------------------------------------------- forecasts
def _forecast(dataset: str, model: dict, epochs: int, **forecast) -> dict:
    from strata.data.datasets import DATASETS

    d = DATASETS[dataset]
    recipe = _recipe(d.target, model, epochs, train={"batch_size": 64, "early_stopping": {"patience": 4}})
    recipe["data"]["dataset"] = dataset
    recipe["forecast"] = {"time": d.time, "series": d.series, **forecast}
    return recipe


def _beats_seasonal_naive(metrics: dict) -> None:
    assert metrics["mase_seasonal"] < 1
    assert metrics["mae"] < metrics["baselines"]["seasonal_naive"]["mae"]
    assert metrics["mae"] < metrics["baselines"]["naive"]["mae"]


def test_forecast_beats_seasonal_naive_on_a_generated_seasonal_series(tmp_path):
    recipe = _forecast("seasonal", {"type": "gru", "hidden_size": 32}, 12, covariates=["promo"], lookback=28, horizon=7)
    result = strata.train(recipe, quiet=True, out=tmp_path / "m")
    _beats_seasonal_naive(result.metrics["test"])
    assert 0.8 <= result.metrics["test"]["coverage"] <= 1.0  # the 95% interval fitted on validation residuals
    assert {"forecast.png", "forecast_2.png", "learning_curve.png"} <= {p.name for p in (tmp_path / "m").iterdir()}
    history = load_dataset("seasonal")
    table = strata.load(tmp_path / "m").forecast(history)
    assert len(table) == 3 * 7 and set(table["store"]) == set(history["store"])
    last = pd.to_datetime(history["date"]).max()
    assert (pd.to_datetime(table["date"]) > last).all() and table["step"].tolist()[:7] == list(range(1, 8))
    assert (table["lower"] <= table["forecast"]).all() and (table["forecast"] <= table["upper"]).all()
    pd.testing.assert_frame_equal(table, result.model.forecast(history))


def test_forecast_beats_seasonal_naive_on_co2():
    # Mauna Loa CO2 (statsmodels): a trend the training period never reached, and a yearly cycle.
    result = strata.train(
        _forecast("co2", {"type": "lstm", "hidden_size": 32}, 20, lookback=104, horizon=13), quiet=True
    )
    _beats_seasonal_naive(result.metrics["test"])
    assert result.model.meta["data"]["season"] == 52  # weekly data: a yearly season, inferred


def test_recursive_strategy_forecasts_every_step_with_a_one_step_model(tmp_path):
    recipe = _forecast("co2", {"type": "mlp", "hidden": [32]}, 5, lookback=52, horizon=4, strategy="recursive")
    result = strata.train(recipe, quiet=True, out=tmp_path / "m")
    assert result.model.head.size == 1 and len(result.metrics["test"]["mae_by_step"]) == 4
    assert strata.load(tmp_path / "m").predict(load_dataset("co2")).shape == (1, 4)


def test_forecast_recipe_errors_name_the_key():
    with pytest.raises(RecipeError, match=r"model\.type: cnn reads images"):
        strata.train(_forecast("co2", {"type": "cnn"}, 1, lookback=8))
    with pytest.raises(RecipeError, match="strategy: recursive feeds the model its own predictions"):
        strata.train(_forecast("seasonal", {"type": "gru"}, 1, covariates=["promo"], strategy="recursive"))
    with pytest.raises(DataError, match="column 'when'"):
        strata.train(_forecast("co2", {"type": "gru"}, 1) | {"forecast": {"time": "when"}})


# ------------------------------------------------------------------------------ pretrained MiniLM
def _sentences(nouns: dict[str, list[str]], n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    templates = ["I saw a {} yesterday", "there was a {} near the house", "look at that {} over there",
                 "my neighbour has a {}", "a {} appeared in the picture"]  # fmt: skip
    labels = rng.choice(list(nouns), n)
    text = [rng.choice(templates).format(rng.choice(nouns[label])) for label in labels]
    return pd.DataFrame({"text": text, "kind": labels})


def test_frozen_minilm_embeddings_know_words_the_training_data_never_had(tmp_path):
    # Trained on some animals and vehicles, tested on others: a vocabulary fitted on the training
    # rows knows none of the new nouns, the pretrained sentence embedding does.
    seen = {
        "animal": ["dog", "cat", "horse", "cow", "sheep", "rabbit"],
        "vehicle": ["car", "truck", "bus", "bicycle", "motorbike", "van"],
    }
    unseen = {"animal": ["tiger", "wolf", "elephant", "giraffe"], "vehicle": ["tram", "tractor", "taxi", "scooter"]}
    recipe = _recipe("kind", {"type": "mlp", "hidden": [32]}, 30) | {"split": {"test": 0.0, "val": 0.2}}
    recipe["features"] = {"columns": [{"name": "text", "type": "text", "pretrained": "minilm"}]}
    result = strata.train(recipe, data=_sentences(seen, 300, 0), quiet=True, out=tmp_path / "m")
    assert result.model.pipeline.numeric_width == 384  # the sentence embedding, as 384 numbers
    new = _sentences(unseen, 200, 1)
    assert strata.load(tmp_path / "m").evaluate(new, bootstrap=0)["accuracy"] >= 0.85
    words = recipe | {"model": {"type": "bag"}, "features": {"columns": [{"name": "text", "type": "text"}]}}
    bag = strata.train(words, data=_sentences(seen, 300, 0), quiet=True).model  # the new nouns: unknown tokens
    assert bag.evaluate(new, bootstrap=0)["accuracy"] < 0.7
    loaded = strata.load(tmp_path / "m").predict_proba(new.head(10))
    np.testing.assert_allclose(loaded, result.model.predict_proba(new.head(10)), atol=1e-6)


@pytest.mark.slow
def test_fine_tuned_minilm_learns_the_reviews(reviews, tmp_path):
    recipe = _recipe("sentiment", {"type": "minilm"}, 2, train={"optimizer": {"lr": 1e-3}})
    recipe["features"] = {"columns": [{"name": "review", "type": "text", "tokenizer": "minilm"}]}
    result = strata.train(recipe, data=reviews.head(800), quiet=True, out=tmp_path / "m")
    assert result.metrics["test"]["accuracy"] >= 0.75
    new = reviews.tail(10).drop(columns="sentiment")
    np.testing.assert_allclose(
        strata.load(tmp_path / "m").predict_proba(new), result.model.predict_proba(new), atol=1e-6
    )


def test_minilm_model_needs_the_minilm_tokenizer(reviews):
    with pytest.raises(RecipeError, match="give column 'review' tokenizer: minilm"):
        strata.train(_recipe("sentiment", {"type": "minilm"}, 1), data=reviews.head(100), quiet=True)


def test_init_suggests_a_sequence_model_for_free_text(reviews, tmp_path):
    from strata.starter import starter_recipe

    reviews.head(300).to_csv(tmp_path / "reviews.csv", index=False)
    text = starter_recipe(reviews.head(300), tmp_path / "reviews.csv", "sentiment", tmp_path / "reviews.yaml")
    (tmp_path / "reviews.yaml").write_text(text)
    recipe = strata.Recipe.from_yaml(tmp_path / "reviews.yaml", ["train.epochs=1", "track=false"])
    assert recipe.model.type == "gru" and recipe.features.columns[0].type == "text"
    strata.train(recipe, quiet=True)


def test_forecast_report_card_and_registry_show_the_forecast(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = _forecast("seasonal", {"type": "gru", "hidden_size": 8}, 2, covariates=["promo"], lookback=14, horizon=7)
    recipe["track"] = {"uri": f"sqlite:///{tmp_path / 'runs.db'}"}
    result = strata.train(recipe, quiet=True, out=tmp_path / "m")
    card = (tmp_path / "m" / "model_card.md").read_text()
    report = (tmp_path / "m" / "report.html").read_text()
    for text in (card, report):
        assert "mase_seasonal" in text and "seasonal_naive" in text and "No held-out" not in text
    assert "3 series of `sales`" in card
    # The interval is fitted per series: the small store gets a narrower band than the large one.
    table = result.model.forecast(load_dataset("seasonal"))
    width = (table["upper"] - table["lower"]).groupby(table["store"]).mean()
    level = table.groupby("store")["forecast"].mean()
    assert width[level.idxmax()] > 1.5 * width[level.idxmin()]
    from strata.track.registry import register

    version = register(result.run_id, "sales", uri=recipe["track"]["uri"])  # no signature, no crash
    assert version.version == 1 and version.semver == "1.0.0"
    loaded = strata.load("models:/sales/1", tracking_uri=recipe["track"]["uri"])
    pd.testing.assert_frame_equal(loaded.forecast(load_dataset("seasonal")), table)
