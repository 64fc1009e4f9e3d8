"""Ensembles: better than their average member, saved as plain files, combined as documented."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, make_classification
from sklearn.linear_model import LogisticRegression, Ridge

import strata
from strata.data.datasets import load_dataset
from strata.ensemble import Ensemble, bagging, load, resamples
from strata.errors import BundleError, DataError, RecipeError

SHAPES = ([32], [64], [16, 16], [48], [32, 32])  # diverse members: widths, depths and seeds differ


def fit(frame: pd.DataFrame, target: str, hidden: list[int], seed: int, epochs: int = 15) -> strata.TrainedModel:
    recipe = {
        "data": {"target": target},
        "model": {"hidden": hidden},
        "train": {"epochs": epochs, "batch_size": 32},
        "seed": seed,
        "track": False,
        "evaluate": False,
    }
    return strata.train(recipe, data=frame, quiet=True).model


@pytest.fixture(scope="module")
def noisy():
    """A 3-class problem with 15% of labels flipped: single MLPs disagree on it. (train, blend, test)"""
    x, y = make_classification(n_samples=750, n_features=10, n_informative=5, n_classes=3, flip_y=0.15, random_state=0)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(10)])
    frame["label"] = np.array(["a", "b", "c"])[y]
    return frame.iloc[:400], frame.iloc[400:550], frame.iloc[550:]


@pytest.fixture(scope="module")
def classifiers(noisy):
    train, _, _ = noisy
    return [fit(train, "label", hidden, seed) for seed, hidden in enumerate(SHAPES)]


@pytest.fixture(scope="module")
def diabetes():
    frame = load_diabetes(as_frame=True).frame
    return frame.iloc[:330], frame.iloc[330:]


@pytest.fixture(scope="module")
def regressors(diabetes):
    train, _ = diabetes
    return [fit(train, "target", hidden, seed, epochs=20) for seed, hidden in enumerate(SHAPES)]


# ------------------------------------------------------------------------------ better together
def test_classifier_ensembles_beat_their_mean_member(noisy, classifiers):
    _, _, test = noisy
    truth = test["label"].to_numpy()
    members = np.mean([(m.predict(test) == truth).mean() for m in classifiers])
    for method in ("mean", "vote"):
        ensemble = Ensemble(classifiers, method)
        accuracy = (ensemble.predict(test) == truth).mean()
        assert accuracy >= members + 0.03, (method, accuracy, members)  # measured: 0.715 / 0.70 vs 0.648
    assert Ensemble(classifiers).evaluate(test)["accuracy"] == pytest.approx(
        (Ensemble(classifiers).predict(test) == truth).mean()
    )


def test_regression_ensemble_beats_its_mean_member(diabetes, regressors):
    _, test = diabetes
    truth = test["target"].to_numpy()
    members = np.mean([np.abs(m.predict(test) - truth).mean() for m in regressors])
    ensemble = Ensemble(regressors)
    mae = np.abs(ensemble.predict(test) - truth).mean()
    assert mae <= members - 2, (mae, members)  # measured: 45.5 vs 50.3
    assert ensemble.evaluate(test)["mae"] == pytest.approx(mae, rel=1e-6)
    np.testing.assert_allclose(ensemble.predict(test), np.mean([m.predict(test) for m in regressors], 0))


def test_weights_move_the_mean_towards_a_member(noisy, classifiers):
    _, _, test = noisy
    only_first = Ensemble(classifiers, "mean", weights=[1, 0, 0, 0, 0]).predict_proba(test)
    np.testing.assert_allclose(only_first, classifiers[0].predict_proba(test), atol=1e-12)


# ------------------------------------------------------------------------------- combinations
def test_mean_and_vote_give_labels_and_probabilities(noisy, classifiers):
    _, _, test = noisy
    for method in ("mean", "vote"):
        ensemble = Ensemble(classifiers, method)
        proba = ensemble.predict_proba(test)
        assert proba.shape == (len(test), 3)
        np.testing.assert_allclose(proba.sum(1), 1)
        assert ((proba >= 0) & (proba <= 1)).all()
        assert set(ensemble.predict(test)) <= {"a", "b", "c"}
        frame = ensemble.predict_frame(test)
        assert list(frame.columns) == ["prediction", "proba_a", "proba_b", "proba_c"]
        assert (frame.index == test.index).all()
    shares = Ensemble(classifiers, "vote").predict_proba(test)
    np.testing.assert_allclose(shares * 5, np.round(shares * 5))  # vote shares of 5 members


def test_vote_breaks_ties_by_mean_probability(noisy, classifiers):
    _, _, test = noisy
    pair = classifiers[:2]
    ensemble = Ensemble(pair, "vote")
    outputs = ensemble.outputs(test)
    split = outputs[0].argmax(1) != outputs[1].argmax(1)
    assert split.sum() > 5  # the two members disagree on some rows: one vote each
    expected = np.array(["a", "b", "c"], dtype=object)[outputs.mean(0).argmax(1)]
    labels = ensemble.predict(test)
    assert (labels[split] == expected[split]).all()
    assert (labels[~split] == np.array(["a", "b", "c"])[outputs[0].argmax(1)][~split]).all()


def test_stacking_trusts_a_good_member_over_a_useless_one(noisy, classifiers):
    train, blend, test = noisy
    shuffled = train.assign(label=np.random.default_rng(0).permutation(train["label"].to_numpy()))
    good, useless = classifiers[4], fit(shuffled, "label", [32], seed=9)
    oof = [good.predict_proba(blend), useless.predict_proba(blend)]  # rows neither member trained on
    ensemble = Ensemble.stack([good, useless], oof, blend["label"])
    # how far each member moves the meta-model's logits over the test rows (softmax ignores a shift
    # shared by all classes, so each row's mean logit is taken out)
    coef = np.asarray(ensemble.meta_model["coef"])  # (classes, members * classes)
    pull = []
    for m, member in enumerate((good, useless)):
        logits = member.predict_proba(test) @ coef[:, 3 * m : 3 * m + 3].T  # (N, classes)
        pull.append((logits - logits.mean(1, keepdims=True)).std(0).sum())
    assert pull[0] > 3 * pull[1], pull  # measured: 2.12 vs 0.47
    truth = test["label"].to_numpy()
    assert (ensemble.predict(test) == truth).mean() > (useless.predict(test) == truth).mean() + 0.2
    # the JSON coefficients, applied with numpy, are scikit-learn's multinomial logistic regression
    reference = LogisticRegression(max_iter=1000).fit(np.hstack(oof), blend["label"])
    features = np.hstack([good.predict_proba(test), useless.predict_proba(test)])
    np.testing.assert_allclose(ensemble.predict_proba(test), reference.predict_proba(features), atol=1e-8)


def test_stacking_regression_applies_ridge(diabetes, regressors):
    train, test = diabetes
    oof = [m.predict(train) for m in regressors[:2]]  # in-sample here: only the arithmetic is checked
    ensemble = Ensemble.stack(regressors[:2], oof, train["target"])
    reference = Ridge(alpha=1.0).fit(np.stack(oof, 1), train["target"])
    expected = reference.predict(np.stack([m.predict(test) for m in regressors[:2]], 1))
    np.testing.assert_allclose(ensemble.predict(test), expected, rtol=1e-6)


# --------------------------------------------------------------------------------------- files
def test_save_and_load_give_identical_predictions(tmp_path, noisy, classifiers):
    _, blend, test = noisy
    ensembles = {
        "mean": Ensemble(classifiers[:3], "mean", weights=[2, 1, 1]),
        "vote": Ensemble(classifiers[:3], "vote"),
        "stacking": Ensemble.stack(classifiers[:3], [m.predict_proba(blend) for m in classifiers[:3]], blend["label"]),
    }
    for method, ensemble in ensembles.items():
        path = ensemble.save(tmp_path / method)
        manifest = json.loads((path / "ensemble.json").read_text())
        assert manifest["members"] == ["members/0", "members/1", "members/2"]
        assert (manifest["format"], manifest["method"], manifest["task"]) == (1, method, "multiclass")
        assert manifest["classes"] == ["a", "b", "c"]
        assert all((path / f / "meta.json").is_file() for f in manifest["members"])
        loaded = load(path)
        assert loaded.method == method and loaded.weights == ensemble.weights
        np.testing.assert_array_equal(loaded.predict_proba(test), ensemble.predict_proba(test))
        pd.testing.assert_frame_equal(loaded.predict_frame(test), ensemble.predict_frame(test))
    again = Ensemble(classifiers[3:], "vote").save(tmp_path / "mean")  # replaces an ensemble whole
    assert load(again).method == "vote" and len(load(again).members) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mean", "stacking", "vote"]  # no temporary folders left


def test_from_bundles_and_refusals_on_disk(tmp_path, noisy, classifiers):
    _, _, test = noisy
    paths = [m.save(tmp_path / f"m{i}") for i, m in enumerate(classifiers[:2])]
    ensemble = Ensemble.from_bundles(paths, "mean")
    np.testing.assert_array_equal(ensemble.predict_proba(test), Ensemble(classifiers[:2]).predict_proba(test))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(BundleError, match="not a Strata bundle"):
        ensemble.save(tmp_path / "notes")
    saved = ensemble.save(tmp_path / "pair")
    manifest = json.loads((saved / "ensemble.json").read_text())
    (saved / "ensemble.json").write_text(json.dumps({**manifest, "members": ["../m0", "members/1"]}))
    with pytest.raises(BundleError, match="not inside it"):
        load(saved)
    (saved / "ensemble.json").write_text(json.dumps({**manifest, "format": 2}))
    with pytest.raises(BundleError, match="reads up to format 1"):
        load(saved)


# ------------------------------------------------------------------------------------- bagging
def test_bagging_trains_members_on_different_resamples(tmp_path):
    iris = {"data": {"dataset": "iris", "target": "species"}, "train": {"epochs": 8}, "seed": 3, "evaluate": False}
    ensemble = bagging(iris, n=3, seed=1, out=tmp_path / "bag")
    assert ensemble.method == "mean" and len(ensemble.members) == 3
    assert [m.recipe.seed for m in ensemble.members] == [3, 4, 5]
    assert not any(m.recipe.track.enabled for m in ensemble.members)  # the recipe did not ask for tracking
    assert len({m.meta["fingerprint"]["data"] for m in ensemble.members}) == 3  # three different resamples
    assert [m.meta["bagging"]["member"] for m in ensemble.members] == [0, 1, 2]
    rows = load_dataset("iris")
    labels = ensemble.predict(rows)
    assert (labels == rows["species"].to_numpy()).mean() > 0.6
    np.testing.assert_array_equal(load(tmp_path / "bag").predict_proba(rows), ensemble.predict_proba(rows))


def test_resamples_draw_with_replacement_and_differ():
    drawn = resamples(100, 4, seed=0)
    assert drawn.shape == (4, 100) and drawn.min() >= 0 and drawn.max() < 100
    assert all(len(np.unique(r)) < 100 for r in drawn)  # with replacement: some rows twice
    assert len({tuple(r) for r in drawn}) == 4
    np.testing.assert_array_equal(drawn, resamples(100, 4, seed=0))
    assert not np.array_equal(drawn, resamples(100, 4, seed=1))


# -------------------------------------------------------------------------------------- errors
def test_members_must_agree(noisy, classifiers, regressors):
    train, _, _ = noisy
    renamed = fit(train.assign(label=train["label"].replace({"c": "z"})), "label", [8], seed=0, epochs=2)
    with pytest.raises(DataError, match=r"member 1 .* has classes \['a', 'b', 'z'\], but member 0"):
        Ensemble([classifiers[0], renamed])
    with pytest.raises(DataError, match=r"member 1 .* has task regression, but member 0 .* has multiclass"):
        Ensemble([classifiers[0], regressors[0]])
    with pytest.raises(DataError, match="at least 2"):
        Ensemble([classifiers[0]])
    with pytest.raises(DataError, match="member 1 is a str"):
        Ensemble([classifiers[0], "models/iris"])


def test_method_errors(classifiers, regressors):
    with pytest.raises(RecipeError, match=r"'avg' is unknown.*choose one of mean, vote, stacking"):
        Ensemble(classifiers, "avg")
    with pytest.raises(RecipeError, match="did you mean 'vote'"):
        Ensemble(classifiers, "vots")
    with pytest.raises(RecipeError, match=r"Ensemble.stack\(members, oof_predictions, y\)"):
        Ensemble(classifiers, "stacking")
    with pytest.raises(RecipeError, match="'vote' needs classifiers"):
        Ensemble(regressors, "vote")
    with pytest.raises(RecipeError, match="expected 5 numbers"):
        Ensemble(classifiers, "mean", weights=[1, 2])


def test_stacking_needs_out_of_fold_predictions_of_the_right_shape(noisy, classifiers, regressors):
    _, blend, _ = noisy
    pair, y = classifiers[:2], blend["label"]
    right = [m.predict_proba(blend) for m in pair]
    with pytest.raises(DataError, match="list of 2 arrays, one per member, got 1 arrays"):
        Ensemble.stack(pair, right[:1], y)
    with pytest.raises(
        DataError, match=r"member 1 have shape \(149, 3\); expected probabilities \(N, 3\) with N = 150"
    ):
        Ensemble.stack(pair, [right[0], right[1][1:]], y)
    with pytest.raises(DataError, match="member 0 are not probabilities"):
        Ensemble.stack(pair, [right[0] * 2, right[1]], y)
    with pytest.raises(DataError, match="label 'q', which the model was not trained on"):
        Ensemble.stack(pair, right, ["q", *y[1:]])
    with pytest.raises(DataError, match=r"expected values \(N, 1\)"):
        Ensemble.stack(regressors[:2], [np.zeros((10, 2)), np.zeros(10)], np.zeros(10))
