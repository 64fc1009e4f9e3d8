"""What a training run measures and draws: intervals, plots, diagnosis, report, LR finder, TensorBoard."""

from __future__ import annotations

import base64
import json
import pickle
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import strata
from strata.api import report as write
from strata.recipe import Recipe
from tests.conftest import tiny_recipe
from tests.test_cli import strata as run_cli

PNG = b"\x89PNG\r\n\x1a\n"
FIXTURE = Path(__file__).parent.parent / "fixtures" / "bundle_v1"


class Page(HTMLParser):
    """Collects the text, the images and the section headings of an HTML page; fails on bad nesting."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self, text: str):
        super().__init__()
        self.open: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.headings: list[str] = []
        self.feed(text)
        self.close()
        assert not self.open, f"unclosed tags: {self.open}"

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self.open and self.open[-1] == "h2":
            self.headings.append(data)

    @property
    def words(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from tests.conftest import make_mixed_frame

    out = tmp_path_factory.mktemp("run") / "bundle"
    recipe = tiny_recipe(evaluate={"bootstrap": 300}, train={"epochs": 30, "batch_size": 16})
    return strata.train(recipe, data=make_mixed_frame(), out=out, quiet=True), out


# ------------------------------------------------------------------------------------- intervals
def test_test_metrics_carry_bootstrap_intervals_around_them(classifier):
    result, _ = classifier
    test = result.metrics["test"]
    assert test["bootstrap"] == 300 and test["ci_level"] == 0.95
    for name in ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "log_loss", "brier"):
        low, high = test["ci"][name]
        assert low <= test[name] <= high, name
        assert low < high, name
    assert "ci" not in result.metrics["val"]  # the headline split only


def test_intervals_are_seeded_by_the_recipe(mixed_frame):
    def ci(seed: int) -> dict:
        recipe = tiny_recipe(seed=seed, evaluate={"bootstrap": 200, "plots": False, "report": False})
        return strata.train(recipe, data=mixed_frame, quiet=True).metrics["test"]["ci"]

    assert ci(3) == ci(3)


def test_regression_intervals_are_in_the_target_units(regression_frame):
    recipe = tiny_recipe(evaluate={"bootstrap": 200, "plots": False, "report": False}, train={"epochs": 20})
    test = strata.train(recipe, data=regression_frame, quiet=True).metrics["test"]
    for name in ("mae", "rmse", "r2"):
        low, high = test["ci"][name]
        assert low <= test[name] <= high, name
    assert test["ci"]["mae"][1] < regression_frame["label"].std() * 3  # units of the label, not z-scores


def test_several_targets_get_intervals_and_a_plot_each(regression_frame, tmp_path):
    frame = regression_frame.assign(other=regression_frame["a"] * 2)
    recipe = tiny_recipe(data={"target": ["label", "other"]}, evaluate={"bootstrap": 100, "report": False})
    result = strata.train(recipe, data=frame, out=tmp_path / "m", quiet=True)
    for name in ("label", "other"):
        per = result.metrics["test"]["per_target"][name]
        assert per["ci"]["mae"][0] <= per["mae"] <= per["ci"]["mae"][1]
        assert (tmp_path / "m" / f"regression_fit_{name}.png").read_bytes()[:8] == PNG


def test_evaluate_false_turns_everything_off(mixed_frame, tmp_path):
    result = strata.train(tiny_recipe(evaluate=False), data=mixed_frame, out=tmp_path / "m", quiet=True)
    assert "ci" not in result.metrics["test"]
    assert not list((tmp_path / "m").glob("*.png")) and not (tmp_path / "m" / "report.html").exists()
    assert result.model.meta["diagnosis"]["verdict"]  # the diagnosis is cheap and always there


def test_evaluation_settings_do_not_change_the_recipe_hash():
    base = Recipe.from_dict(tiny_recipe())
    other = base.override({"evaluate.bootstrap": 10, "evaluate.plots": False})
    assert base.hash() == other.hash()


def test_bad_evaluation_settings_are_named():
    with pytest.raises(strata.RecipeError, match=r"evaluate\.confidence"):
        Recipe.from_dict(tiny_recipe(evaluate={"confidence": 1.5}))
    with pytest.raises(strata.RecipeError, match=r"evaluate\.bootstrap"):
        Recipe.from_dict(tiny_recipe(evaluate={"bootstrap": -1}))


# ----------------------------------------------------------------------------------------- plots
def test_a_classifier_bundle_holds_every_plot(classifier):
    _, out = classifier
    names = {p.stem for p in out.glob("*.png")}
    assert names == {"learning_curve", "target_balance", "confusion_matrix", "roc", "precision_recall", "reliability"}
    for path in out.glob("*.png"):
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5_000, path.name


def test_a_regression_bundle_holds_its_plots(regression_frame, tmp_path):
    strata.train(tiny_recipe(evaluate={"bootstrap": 0}), data=regression_frame, out=tmp_path / "m", quiet=True)
    assert {p.stem for p in (tmp_path / "m").glob("*.png")} == {"learning_curve", "target_balance", "regression_fit"}


def test_a_model_with_unrendered_plots_still_pickles(mixed_frame):
    result = strata.train(tiny_recipe(evaluate={"bootstrap": 0}), data=mixed_frame, quiet=True)
    again = pickle.loads(pickle.dumps(result.model))
    assert again.artifacts["roc.png"]()[:8] == PNG


# ---------------------------------------------------------------------------------------- report
def test_the_report_is_valid_html_with_every_plot_and_metric(classifier):
    result, out = classifier
    page = Page((out / "report.html").read_text())
    for heading in ("Diagnosis", "Metrics", "Plots", "Data", "Training", "Recipe", "Fingerprint and environment"):
        assert heading in page.headings
    embedded = sorted(base64.b64decode(src.split(",", 1)[1]) for src in page.images)
    assert embedded == sorted(p.read_bytes() for p in out.glob("*.png"))  # each plot, byte for byte
    test = result.metrics["test"]
    low, high = test["ci"]["accuracy"]
    assert f"{test['accuracy']:.4f} [{low:.4f}, {high:.4f}]" in page.words
    assert result.model.meta["diagnosis"]["verdict"] in page.words
    assert result.model.meta["fingerprint"]["weights"] in page.words
    raw = (out / "report.html").read_text()
    assert "<script" not in raw and "<link" not in raw and 'src="http' not in raw  # self-contained, offline


def test_strata_report_renders_a_bundle_to_a_file(classifier, capsys, tmp_path):
    _, out = classifier
    code, stdout, _ = run_cli(capsys, "report", str(out), "--out", str(tmp_path / "r.html"))
    assert code == 0 and "r.html" in stdout
    assert Page((tmp_path / "r.html").read_text()).images


def test_strata_report_of_an_old_bundle_diagnoses_and_draws_from_its_history(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", str(FIXTURE), "--out", str(tmp_path / "old.html"))
    assert code == 0, err
    page = Page((tmp_path / "old.html").read_text())
    assert page.images  # the learning curve, drawn from meta.json's history
    assert "No diagnosis recorded" not in page.words


def test_strata_report_errors_are_one_line(classifier, capsys, tmp_path):
    _, out = classifier
    code, _, err = run_cli(capsys, "report", str(out), "--out", str(tmp_path))
    assert code == 1 and err.count("\n") == 1 and "is a folder" in err
    code, _, err = run_cli(capsys, "report", "no/such/bundle")
    assert code == 1 and err.count("\n") == 1 and "'no/such/bundle' is not a bundle folder" in err


def test_strata_report_renders_a_tracked_run(store_uri, mixed_frame, tmp_path):
    recipe = tiny_recipe(track={"uri": store_uri, "experiment": "report"}, evaluate={"bootstrap": 0})
    result = strata.train(recipe, data=mixed_frame, quiet=True)  # no bundle folder: only in the run
    page = Page(write(result.run_id[:10], tmp_path / "run.html", store_uri).read_text())
    assert len(page.images) == 6
    assert result.run_id in page.words


# ------------------------------------------------------------------------------------- diagnosis
def test_a_deliberately_overfit_model_is_called_overfitting():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 20)), columns=[f"x{i}" for i in range(20)])
    frame["label"] = rng.choice(["a", "b"], size=120)  # pure noise: anything learned is memorised
    recipe = tiny_recipe(
        model={"hidden": [256, 256]},
        train={"epochs": 60, "batch_size": 8, "optimizer": {"name": "adam", "lr": 0.003}},
        split={"val": 0.3, "test": 0.1},
    )
    result = strata.train(recipe, data=frame, quiet=True)
    found = result.model.meta["diagnosis"]
    assert found["verdict"] == "overfitting"
    val = [h["val_loss"] for h in result.history]
    assert found["from_epoch"] == int(np.argmin(val)) + 2  # the first epoch after the best
    assert any("dropout" in tip for tip in found["suggestions"])


def test_a_deliberately_underfit_model_is_called_underfitting(mixed_frame):
    recipe = tiny_recipe(train={"epochs": 5, "optimizer": {"name": "sgd", "lr": 1e-5}})
    found = strata.train(recipe, data=mixed_frame, quiet=True).model.meta["diagnosis"]
    assert found["verdict"] == "underfitting"
    assert any("larger network" in tip for tip in found["suggestions"])


def test_strata_train_prints_the_diagnosis_and_the_intervals(capsys, mixed_frame, tmp_path):
    mixed_frame.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "r.yaml").write_text(
        json.dumps(tiny_recipe(data={"path": "t.csv", "target": "label"}, evaluate={"bootstrap": 100}))
    )
    code, out, err = run_cli(capsys, "train", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "m"))
    assert code == 0, err
    assert re.search(r"diagnosis: (well fit|overfitting|underfitting|not converged|unstable): ", out)
    assert "[low, high]: 95% bootstrap interval, 100 resamples" in out
    assert re.search(r"accuracy\s.*\d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\]", out)
    assert "report.html" in out


# ------------------------------------------------------------------------------------- lr finder
def test_lr_find_writes_a_plot_and_applies_the_suggestion(capsys, mixed_frame, tmp_path):
    mixed_frame.to_csv(tmp_path / "t.csv", index=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "# my experiment\ndata:\n  path: t.csv\n  target: label  # what we predict\ntrain:\n  optimizer: adam\n"
        "track: false\n"
    )
    code, out, err = run_cli(capsys, "lr-find", str(recipe), "--apply", "--out", str(tmp_path / "lr.png"))
    assert code == 0, err
    suggested = float(re.search(r"suggested learning rate: (\S+)", out).group(1))
    assert 1e-5 < suggested < 1
    assert (tmp_path / "lr.png").read_bytes()[:8] == PNG
    text = recipe.read_text()
    assert "# my experiment" in text and "# what we predict" in text  # comments kept
    saved = Recipe.from_yaml(recipe)
    assert saved.train.optimizer.lr == suggested and saved.train.optimizer.name == "adam"


def test_lr_find_rejects_a_bad_range(capsys, mixed_frame, tmp_path):
    mixed_frame.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "r.yaml").write_text("data: {path: t.csv, target: label}\n")
    code, _, err = run_cli(capsys, "lr-find", str(tmp_path / "r.yaml"), "--start", "1", "--end", "0.1")
    assert code == 1 and err.count("\n") == 1 and "start" in err


def test_lr_find_starts_from_the_weights_train_starts_from(mixed_frame):
    recipe = Recipe.from_dict(tiny_recipe())
    first = strata.lr_find(recipe, mixed_frame, steps=30)
    again = strata.lr_find(recipe, mixed_frame, steps=30)
    assert first.losses == again.losses  # seeded: the same test twice
    assert first.lrs[0] == pytest.approx(1e-7)


# ----------------------------------------------------------------------------------- tensorboard
def test_tensorboard_logs_every_epoch(mixed_frame, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = tiny_recipe(track={"enabled": False, "tensorboard": True, "tensorboard_dir": str(tmp_path / "tb")})
    result = strata.train(recipe, data=mixed_frame, quiet=True)
    (run_dir,) = (tmp_path / "tb").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    logged = events.Scalars("loss/train_loss")
    assert [e.step for e in logged] == [h["epoch"] for h in result.history]
    np.testing.assert_allclose([e.value for e in logged], [h["train_loss"] for h in result.history], rtol=1e-6)
    assert "metrics/val_accuracy" in events.Tags()["scalars"]


def test_jitter_near_zero_loss_is_not_called_unstable():
    from strata.evaluation.diagnosis import diagnose

    # the penguins demo: dropout makes a near-zero training loss wobble (0.0098 -> 0.0208)
    train = [0.91, 0.68, 0.33, 0.14, 0.08, 0.06, 0.037, 0.028, 0.033, 0.029, 0.021, 0.025, 0.021, 0.0098, 0.0099,
             0.0208, 0.0124, 0.0067, 0.0123, 0.0092]  # fmt: skip
    history = [{"epoch": i + 1, "train_loss": t} for i, t in enumerate(train)]
    assert diagnose(history).verdict != "unstable"
    spiked = [*train[:10], 0.9, *train[11:]]  # back to the start: that is a spike
    assert diagnose([{"epoch": i + 1, "train_loss": t} for i, t in enumerate(spiked)]).verdict == "unstable"


def test_evaluate_on_new_data_gives_intervals_too(classifier, mixed_frame, capsys, tmp_path):
    result, out = classifier
    model = strata.load(out)
    metrics = model.evaluate(mixed_frame)
    assert metrics["bootstrap"] == 300  # the recipe's setting
    low, high = metrics["ci"]["accuracy"]
    assert low <= metrics["accuracy"] <= high
    assert metrics == result.model.evaluate(mixed_frame)  # seeded: the same intervals in any process
    assert "ci" not in model.evaluate(mixed_frame, bootstrap=0)
    assert model.evaluate(mixed_frame, bootstrap=50)["bootstrap"] == 50
    with pytest.raises(strata.DataError, match=r"confidence: expected a level between 0\.5 and 1, got 2"):
        model.evaluate(mixed_frame, confidence=2)
    mixed_frame.to_csv(tmp_path / "new.csv", index=False)
    code, stdout, _ = run_cli(capsys, "evaluate", str(out), str(tmp_path / "new.csv"), "--bootstrap", "100")
    assert code == 0 and "bootstrap interval, 100 resamples" in stdout


def test_the_model_card_shows_the_intervals(classifier):
    result, out = classifier
    card = (out / "model_card.md").read_text()
    test = result.metrics["test"]
    low, high = test["ci"]["accuracy"]
    assert f"{test['accuracy']:.4f} [{low:.4f}, {high:.4f}]" in card
    assert "95% percentile bootstrap interval over 300 resamples" in card
    assert f"| diagnosis | {result.model.meta['diagnosis']['verdict']}: " in card


def test_a_loss_blown_up_by_the_learning_rate_is_unstable_not_underfit():
    from strata.evaluation.diagnosis import diagnose

    # Adam at lr 1e6 on breast_cancer: epoch 1 at 1e20, then a "settled" loss far above the floor
    train = [8.9e20, 3.1e6, 5e4, 3.0e4, 3.0e4, 3.0e4]
    found = diagnose([{"epoch": i + 1, "train_loss": t} for i, t in enumerate(train)], baseline=0.661)
    assert found.verdict == "unstable" and "constant prediction" in found.detail
    assert not any("higher learning rate" in tip for tip in found.suggestions)


def test_underfitting_above_the_floor_is_not_called_close_to_it():
    from strata.evaluation.diagnosis import diagnose

    found = diagnose([{"epoch": e, "train_loss": 0.73} for e in range(1, 6)], baseline=0.28)
    assert found.verdict == "underfitting" and "above the 0.28" in found.detail


def test_a_validation_rise_in_the_last_epoch_alone_is_not_overfitting():
    from strata.evaluation.diagnosis import diagnose

    train = [1.0, 0.6, 0.4, 0.3, 0.25, 0.2]
    val = [1.0, 0.7, 0.5, 0.45, 0.4, 0.6]  # lowest at epoch 5, one noisy epoch after
    history = [
        {"epoch": i + 1, "train_loss": t, "val_loss": v} for i, (t, v) in enumerate(zip(train, val, strict=True))
    ]
    assert diagnose(history, baseline=1.1).verdict != "overfitting"


# ------------------------------------------------------------------------- found by a user trial
def test_mape_leaves_out_zero_targets_after_scaling(regression_frame):
    frame = regression_frame.copy()
    frame.loc[frame.index[::7], "label"] = 0.0  # exact zeros; the default target scaling turns them into ~1e-7
    recipe = tiny_recipe(evaluate={"bootstrap": 100, "plots": False, "report": False}, train={"epochs": 10})
    result = strata.train(recipe, data=frame, quiet=True)
    values = result.model.predict(frame)
    nonzero = frame["label"].to_numpy() != 0
    assert result.model.evaluate(frame, bootstrap=0)["mape"] == pytest.approx(
        np.mean(np.abs((frame["label"].to_numpy() - values)[nonzero] / frame["label"].to_numpy()[nonzero])), rel=1e-5
    )
    assert result.metrics["test"]["mape"] < 10  # not millions
    assert result.metrics["test"]["ci"]["mape"][1] < 10


def test_a_regression_that_diverges_to_huge_finite_outputs_is_an_error(regression_frame):
    recipe = tiny_recipe(train={"epochs": 5, "optimizer": {"name": "sgd", "lr": 50.0}}, evaluate={"bootstrap": 10})
    with pytest.raises(strata.TrainingError, match="training diverged, nothing was saved: training loss became"):
        strata.train(recipe, data=regression_frame, quiet=True)


def test_labels_in_a_script_the_font_lacks_draw_without_warnings(mixed_frame, tmp_path):
    import warnings

    frame = mixed_frame.assign(label=mixed_frame["label"].map({"high": "日本 語", "low": "bas", "mid": "中"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        strata.train(tiny_recipe(evaluate={"bootstrap": 0}), data=frame, out=tmp_path / "m", quiet=True)
    assert not [w for w in caught if "Glyph" in str(w.message)]
    assert (tmp_path / "m" / "confusion_matrix.png").exists()


def test_the_best_epoch_is_the_lowest_validation_loss_without_early_stopping(mixed_frame):
    result = strata.train(tiny_recipe(evaluate={"bootstrap": 0}, train={"epochs": 12}), data=mixed_frame, quiet=True)
    val = [h["val_loss"] for h in result.history]
    assert result.model.meta["best_epoch"] == int(np.argmin(val)) + 1


def test_several_regression_targets_get_a_distribution_plot_each(regression_frame, tmp_path):
    frame = regression_frame.assign(other=regression_frame["a"] * 2)
    recipe = tiny_recipe(data={"target": ["label", "other"]}, evaluate={"bootstrap": 0, "report": False})
    strata.train(recipe, data=frame, out=tmp_path / "m", quiet=True)
    assert {"target_balance_label.png", "target_balance_other.png"} <= {p.name for p in (tmp_path / "m").iterdir()}


def test_no_interval_is_stored_for_a_metric_without_a_value(mixed_frame):
    from strata.evaluation.bootstrap import attach

    metrics = {"accuracy": 0.5, "roc_auc": None}
    codes = np.array([0, 1, 0, 1, 0, 1])
    proba = np.array([[0.6, 0.4, 0.0], [0.3, 0.7, 0.0]] * 3)
    attach(metrics, {"task": "multiclass", "classes": ["a", "b", "c"]}, codes, proba, 50, 0, 0.95)
    assert "accuracy" in metrics["ci"] and "roc_auc" not in metrics["ci"]


def test_outputs_that_cannot_be_written_are_one_line(classifier, capsys, tmp_path):
    _, out = classifier
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(capsys, "report", str(out), "--out", str(tmp_path / "afile" / "r.html"))
    assert code == 1 and err.count("\n") == 1 and "cannot write" in err and "afile" in err
