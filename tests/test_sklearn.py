"""DeepClassifier and DeepRegressor: scikit-learn's conformance suite, and what users rely on."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, make_classification
from sklearn.exceptions import NotFittedError
from sklearn.metrics import recall_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import strata
from strata import StrataWarning
from strata.sklearn import DeepClassifier, DeepRegressor


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The conformance suite alone fits about 200 tiny networks: intra-op threads only slow them down,
    several times over when the CPU is shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


# ------------------------------------------------------------------------- conformance suite
def _expected_failures(estimator: DeepClassifier | DeepRegressor) -> dict[str, str]:
    # Whether it fails depends on the layer sizes and the data, hence xfail_strict=False below.
    return {
        "check_methods_subset_invariance": (
            "the network computes in float32: a row's output can differ in the 7th significant digit between "
            "a batch of one row and a batch of many (different BLAS kernels), above the check's 1e-7 tolerance"
        ),
    }


@pytest.mark.filterwarnings("ignore::strata.StrataWarning")  # the suite's 20-row data sets are too small to validate
@parametrize_with_checks(
    [DeepClassifier(epochs=5, lr=0.01), DeepRegressor(epochs=5, lr=0.01)],
    expected_failed_checks=_expected_failures,
    xfail_strict=False,
)
def test_sklearn_conformance(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------------- classifier
def test_classifier_on_arrays_returns_labels_of_y(iris):
    X, y = iris
    clf = DeepClassifier(epochs=5, lr=0.01).fit(X, y)
    assert clf.n_features_in_ == 4 and not hasattr(clf, "feature_names_in_")
    assert np.array_equal(clf.classes_, [0, 1, 2])
    pred, proba = clf.predict(X), clf.predict_proba(X)
    assert pred.shape == (150,) and pred.dtype == y.dtype
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(pred, clf.classes_[proba.argmax(axis=1)])


def test_classifier_on_a_dataframe_with_string_labels(iris):
    X, y = iris
    frame = pd.DataFrame(X, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = DeepClassifier(epochs=5, lr=0.01).fit(frame, labels)
    assert list(clf.feature_names_in_) == list(frame.columns)
    assert clf.model_.pipeline.input_names == list(frame.columns)  # the model keeps the user's names
    pred = clf.predict(frame)
    assert pred.dtype == labels.dtype and set(pred) <= set(labels)
    assert clf.predict_proba(frame.iloc[:7]).shape == (7, 3)


@pytest.mark.parametrize(("load", "floor"), [(load_iris, 0.9), (load_breast_cancer, 0.93)])
def test_classifier_accuracy_floor(load, floor):
    X, y = load(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = DeepClassifier(hidden=(32,), lr=0.01, epochs=40, seed=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > floor


def test_binary_string_labels_and_class_weight_by_label():
    X, y = load_breast_cancer(return_X_y=True)
    labels = np.array(["malignant", "benign"], dtype=object)[y]
    # Weighting one class far above the other makes it the answer almost everywhere.
    clf = DeepClassifier(epochs=5, lr=0.01, class_weight={"malignant": 1000.0, "benign": 0.001}).fit(X, labels)
    assert list(clf.classes_) == ["benign", "malignant"] and clf.predict_proba(X).shape == (len(X), 2)
    assert np.mean(clf.predict(X) == "malignant") > 0.9


def test_balanced_class_weight_finds_the_rare_class():
    X, y = make_classification(n_samples=400, weights=[0.9, 0.1], class_sep=0.5, random_state=0)
    plain = DeepClassifier(epochs=10, lr=0.01).fit(X, y)
    balanced = DeepClassifier(epochs=10, lr=0.01, class_weight="balanced").fit(X, y)
    assert recall_score(y, balanced.predict(X)) > recall_score(y, plain.predict(X)) + 0.3


def test_class_weight_with_an_unknown_label_is_an_error(iris):
    X, y = iris
    with pytest.raises(ValueError, match=r"class_weight has label 7"):
        DeepClassifier(epochs=1, class_weight={7: 2.0}).fit(X, y)


def test_rare_class_trains_without_validation_and_says_so(iris):
    X, y = iris
    X, y = X[:101], y[:101]  # 50 setosa, 50 versicolor, 1 virginica: too few for both parts
    with pytest.warns(StrataWarning, match=r"class '2' has 1 row, too few"):
        clf = DeepClassifier(epochs=3, val_fraction=0.2).fit(X, y)
    assert clf.model_.recipe.split.val == 0.0
    assert clf.model_.recipe.train.early_stopping.monitor == "train_loss"
    assert clf.predict_proba(X).shape == (101, 3)


# -------------------------------------------------------------------------------- regressor
def test_regressor_r2_floor_on_diabetes():
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    reg = DeepRegressor(hidden=(16,), lr=0.01, weight_decay=0.01, epochs=40, seed=0).fit(X_train, y_train)
    pred = reg.predict(X_test)
    assert pred.shape == (len(X_test),) and pred.dtype == np.float64
    assert reg.score(X_test, y_test) > 0.3  # least squares gets 0.39 on this split; predicting the mean, 0


@pytest.mark.parametrize("n_targets", [1, 2])
def test_regressor_predicts_the_shape_of_a_2d_y(n_targets):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.column_stack([X[:, 0] * 10 + i for i in range(n_targets)])
    reg = DeepRegressor(epochs=3).fit(X, y)
    assert reg.predict(X[:5]).shape == (5, n_targets)
    assert reg.model_.recipe.data.targets == (["y"] if n_targets == 1 else ["y0", "y1"])


# -------------------------------------------------------------------------- model selection
def test_pipeline_in_cross_val_score(iris):
    X, y = iris
    pipe = Pipeline([("scale", StandardScaler()), ("clf", DeepClassifier(epochs=15, lr=0.02))])
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.7


def test_grid_search_sets_nested_params_and_refits(iris):
    X, y = iris
    pipe = Pipeline([("scale", StandardScaler()), ("clf", DeepClassifier(epochs=10))])
    # A learning rate too small to learn in 10 epochs loses to one that can.
    grid = {"clf__lr": [1e-6, 0.03], "clf__hidden": [(16,)]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    assert search.best_params_ == {"clf__lr": 0.03, "clf__hidden": (16,)}
    best = search.best_estimator_.named_steps["clf"]
    assert best.lr == 0.03 and best.model_.recipe.train.optimizer.lr == 0.03
    assert best.model_.recipe.model.hidden == [16]
    assert search.predict(X[:3]).shape == (3,)


def test_get_params_set_params_clone_round_trip():
    clf = DeepClassifier(hidden=(8, 4), lr=0.05, class_weight="balanced")
    params = clf.get_params()
    assert params["hidden"] == (8, 4) and params["lr"] == 0.05 and params["class_weight"] == "balanced"
    assert set(params) == set(DeepRegressor().get_params()) | {"class_weight"}
    assert clf.set_params(lr=0.2, epochs=3) is clf and clf.lr == 0.2 and clf.epochs == 3
    copy = clone(clf)
    assert copy is not clf and copy.get_params() == clf.get_params()
    assert DeepRegressor(**{k: v for k, v in params.items() if k != "class_weight"}).get_params()["hidden"] == (8, 4)


def test_clone_of_a_fitted_estimator_is_unfitted(iris):
    X, y = iris
    clf = DeepClassifier(epochs=1).fit(X, y)
    with pytest.raises(NotFittedError):
        clone(clf).predict(X)


# ------------------------------------------------------------------------ reproducibility
def test_same_seed_same_predictions_other_seed_other_predictions(iris):
    X, y = iris
    first = DeepClassifier(epochs=3, seed=1).fit(X, y).predict_proba(X)
    again = DeepClassifier(epochs=3, seed=1).fit(X, y).predict_proba(X)
    other = DeepClassifier(epochs=3, seed=2).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_regressor_same_seed_same_predictions():
    X, y = load_diabetes(return_X_y=True)
    a = DeepRegressor(epochs=2, seed=3).fit(X, y).predict(X)
    b = DeepRegressor(epochs=2, seed=3).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, DeepRegressor(epochs=2, seed=4).fit(X, y).predict(X))


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("estimator", "method"),
    [
        (DeepClassifier(), "predict"),
        (DeepClassifier(), "predict_proba"),
        (DeepClassifier(), "score"),
        (DeepRegressor(), "predict"),
        (DeepRegressor(), "score"),
    ],
)
def test_unfitted_use_raises_not_fitted(estimator, method):
    X = np.zeros((3, 2))
    call = getattr(estimator, method)
    with pytest.raises(NotFittedError):
        call(X, np.zeros(3)) if method == "score" else call(X)


@pytest.mark.parametrize("estimator", [DeepClassifier, DeepRegressor])
def test_bad_parameter_names_the_parameter_and_its_recipe_key(estimator, iris):
    X, y = iris
    with pytest.raises(ValueError, match=r"optimizer='adamm'.*train\.optimizer\.name.*did you mean 'adam'"):
        estimator(optimizer="adamm").fit(X, y)


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"lr": -1.0}, r"lr=-1.0.*train\.optimizer\.lr"),
        ({"hidden": (0,)}, r"hidden=\(0,\).*model\.hidden"),
        ({"val_fraction": 0.95}, r"val_fraction=0.95"),
        ({"class_weight": "balancd"}, r"class_weight='balancd'"),
        ({"early_stopping": "yes"}, r"early_stopping must be True or False"),
    ],
)
def test_more_bad_parameters(params, pattern, iris):
    X, y = iris
    with pytest.raises(ValueError, match=pattern):
        DeepClassifier(epochs=1, **params).fit(X, y)


def test_predict_checks_the_number_of_features(iris):
    X, y = iris
    clf = DeepClassifier(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="expecting 4 features"):
        clf.predict(X[:, :3])


# ------------------------------------------------------------------------------ behaviour
def test_early_stopping_without_validation_watches_train_loss(iris):
    X, y = iris
    clf = DeepClassifier(epochs=30, lr=0.05, val_fraction=0.0, patience=2).fit(X, y)
    assert clf.model_.recipe.train.early_stopping.monitor == "train_loss"
    assert "val_loss" not in clf.history_[0] and 1 <= clf.n_iter_ == len(clf.history_) <= 30


def test_no_early_stopping_runs_every_epoch(iris):
    X, y = iris
    clf = DeepClassifier(epochs=4, early_stopping=False).fit(X, y)
    assert clf.model_.recipe.train.early_stopping is None and clf.n_iter_ == 4


def test_missing_values_are_imputed(iris):
    X, y = iris
    X = X.copy()
    X[::7, 1] = np.nan
    clf = DeepClassifier(epochs=2).fit(X, y)
    assert np.isfinite(clf.predict_proba(X)).all()
    with pytest.raises(ValueError, match="infinity"):
        clf.predict(np.where(np.isnan(X), np.inf, X))


def test_text_columns_of_a_dataframe_are_categorical(iris):
    X, y = iris
    frame = pd.DataFrame({"petal": X[:, 2], "colour": np.array(["red", "green", "blue"])[y]})
    clf = DeepClassifier(epochs=20, lr=0.05).fit(frame, y)
    kinds = {c["name"]: c["kind"] for c in clf.model_.pipeline.columns}
    assert kinds == {"petal": "numeric", "colour": "categorical"}
    assert clf.score(frame, y) > 0.9  # the colour gives the class away


def test_fit_writes_no_files_and_says_nothing(iris, tmp_path, monkeypatch):
    X, y = iris
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DeepClassifier(epochs=2).fit(X, y)
    assert list(tmp_path.iterdir()) == []


def test_model_is_a_strata_bundle_that_predicts_the_labels(iris, tmp_path):
    X, y = iris
    frame = pd.DataFrame(X, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = DeepClassifier(epochs=5, lr=0.01).fit(frame, labels)
    loaded = strata.load(clf.model_.save(tmp_path / "iris"))
    assert loaded.classes == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(loaded.predict(frame), clf.predict(frame))
    np.testing.assert_allclose(loaded.predict_proba(frame), clf.predict_proba(frame), rtol=1e-6)
