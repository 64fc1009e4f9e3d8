"""scikit-learn estimators that train a Strata MLP: `DeepClassifier` and `DeepRegressor`.

They keep scikit-learn's contract (parameters stored as given, validated in `fit`, learned state in
attributes ending in `_`), so they work in `Pipeline`, `cross_val_score` and `GridSearchCV`:

>>> from sklearn.datasets import load_iris
>>> from strata.sklearn import DeepClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = DeepClassifier(hidden=(32,), lr=0.01, epochs=30).fit(X, y)
>>> clf.predict(X[:2]), clf.score(X, y) > 0.8
(array([0, 0]), True)

Each `fit` turns the parameters into a recipe (`lr` is `train.optimizer.lr`, `hidden` is
`model.hidden`, ...) and calls `strata.train` on an in-memory table; nothing is written to disk.
The trained `strata.TrainedModel` is `model_` (`model_.save(path)` writes a Strata bundle), its
per-epoch metrics are `history_`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, column_or_1d, validate_data

from strata.errors import RecipeError, StrataWarning

if TYPE_CHECKING:
    from typing import Self

    from numpy.typing import ArrayLike
    from sklearn.utils import Tags

    from strata.bundle import TrainedModel
    from strata.recipe import Recipe

# The recipe key behind each parameter, to name the parameter when the recipe rejects its value.
_PARAM_KEYS = {
    "model.hidden": "hidden",
    "model.activation": "activation",
    "model.norm": "norm",
    "model.dropout": "dropout",
    "train.optimizer.name": "optimizer",
    "train.optimizer.lr": "lr",
    "train.optimizer.weight_decay": "weight_decay",
    "train.epochs": "epochs",
    "train.batch_size": "batch_size",
    "split.val": "val_fraction",
    "split": "val_fraction",  # "test + val leaves too little to train on"
    "train.early_stopping.patience": "patience",
    "seed": "seed",
    "train.loss.class_weights": "class_weight",
}


class _DeepEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, input checks, the recipe, training."""

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] | int = (64,),
        activation: str = "relu",
        norm: str = "none",
        dropout: float = 0.0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 100,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        early_stopping: bool = True,
        patience: int = 10,
        seed: int = 0,
    ):
        self.hidden = hidden
        self.activation = activation
        self.norm = norm
        self.dropout = dropout
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.seed = seed

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # numeric columns are mean-imputed, as in any Strata recipe
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        # n_features_in_ is set before training starts; only a trained model means fitted.
        return hasattr(self, "model_")

    # ---- subclass hooks
    def _check_y(self, y: ArrayLike) -> np.ndarray:
        """y validated: the values of the target column(s), labels or floats."""
        raise NotImplementedError

    def _target_keys(self, y: np.ndarray) -> dict[str, Any]:
        """Recipe settings that depend on the target: `task`, and optionally `stratify`, `val`, `loss`."""
        raise NotImplementedError

    def _check_model(self, model: TrainedModel) -> None:
        """Confirm what the estimator assumes about the trained model."""

    # ---- fit
    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Train a new network on X (n_samples, n_features) and y; returns self.

        Every call starts from scratch (no warm start); the same data and `seed` give the same model.
        """
        from strata.api import train

        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, but the target y is None.")
        frame = self._as_frame(X, reset=True)
        y = self._check_y(y)
        check_consistent_length(frame, y)
        targets = _free_names("y", y.shape[1] if y.ndim == 2 else 1, taken=set(frame.columns))
        columns = {name: y[:, i] if y.ndim == 2 else y for i, name in enumerate(targets)}
        recipe = self._recipe(frame, targets, self._target_keys(y))
        result = train(recipe, data=frame.assign(**columns), quiet=True)
        self._check_model(result.model)
        self.model_ = result.model
        self.history_ = result.history
        self.n_iter_ = len(result.history)  # epochs run; fewer than `epochs` when stopped early
        return self

    def _recipe(self, frame: pd.DataFrame, targets: list[str], keys: dict[str, Any]) -> Recipe:
        """The parameters as a validated recipe; a rejected value names the parameter and its key."""
        from strata.recipe import Recipe

        split = {"test": 0.0, "val": keys.get("val", _plain(self.val_fraction)), "stratify": keys.get("stratify", True)}
        raw = {
            "seed": _plain(self.seed),
            "data": {"target": targets[0] if len(targets) == 1 else targets, "task": keys["task"]},
            "features": {"columns": [{"name": name, "type": _kind(frame[name])} for name in frame.columns]},
            "split": split,
            "track": False,  # an estimator is fitted many times inside searches; track with MLflow's own tools
            "evaluate": False,  # nor draw plots and reports each time; score() and sklearn's metrics do that
            "model": {
                "hidden": _layers(self.hidden),
                "activation": self.activation,
                "norm": self.norm,
                "dropout": _plain(self.dropout),
            },
            "train": {
                "epochs": _plain(self.epochs),
                "batch_size": _plain(self.batch_size),
                "optimizer": {"name": self.optimizer, "lr": _plain(self.lr), "weight_decay": _plain(self.weight_decay)},
                "loss": keys.get("loss", {}),
                "early_stopping": self._early_stopping(has_val=bool(split["val"])),
            },
        }
        try:
            return Recipe.from_dict(raw)
        except RecipeError as err:
            raise RecipeError(f"{type(self).__name__}: {_blame(str(err), self.get_params())}") from None

    def _early_stopping(self, has_val: bool) -> dict[str, Any] | None:
        if not isinstance(self.early_stopping, bool | np.bool_):
            raise ValueError(
                f"{type(self).__name__}: early_stopping must be True or False, got {self.early_stopping!r}"
            )
        if not self.early_stopping:
            return None
        # Without a validation part there is no val_loss; the training loss is the only signal left.
        return {"monitor": "val_loss" if has_val else "train_loss", "patience": _plain(self.patience)}

    # ---- inputs
    def _as_frame(self, X: ArrayLike, *, reset: bool) -> pd.DataFrame:
        """X as the table Strata trains on or predicts from, checked like any scikit-learn input.

        Arrays become float columns x0..x{n-1} (or the DataFrame's own string column names).
        A DataFrame with non-numeric columns keeps them as they are, for Strata to encode as categories.
        """
        min_rows = 2 if reset else 1  # one row is no data set: nothing to scale by, nothing to hold out
        if not _has_categories(X):
            values = validate_data(
                self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan", ensure_min_samples=min_rows
            )
            return pd.DataFrame(values, columns=self._input_names())
        validate_data(self, X, reset=reset, skip_check_array=True)  # names and count; values checked below
        if len(X) < min_rows:
            raise ValueError(
                f"Found array with {len(X)} sample(s) (shape={X.shape}) while a minimum of {min_rows} "
                f"is required by {type(self).__name__}."
            )
        frame = X.set_axis(self._input_names(), axis=1).reset_index(drop=True)
        numeric = [name for name in frame.columns if _kind(frame[name]) == "numeric"]
        if numeric:
            frame[numeric] = check_array(
                frame[numeric], dtype=np.float64, ensure_all_finite="allow-nan", estimator=self, input_name="X"
            )
        return frame

    def _input_names(self) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else [f"x{i}" for i in range(self.n_features_in_)]


class DeepClassifier(ClassifierMixin, _DeepEstimator):
    """An MLP classifier trained by Strata, with scikit-learn's estimator API.

    Labels may be numbers or strings; `predict` returns them with the dtype of `classes_`
    (`np.unique(y)`). Binary targets get one sigmoid output, more classes a softmax.

    X is numeric: arrays, lists or DataFrames; NaN is imputed with the training mean of its column.
    In a DataFrame, non-numeric columns (object, string, category) are categorical features that
    Strata one-hot encodes or embeds, so no separate encoder is needed.

    A stratified `val_fraction` of the rows is held out for early stopping. When a class has too few
    rows to appear in both parts, the model trains on all rows without validation (with a warning).

    Parameters mirror recipe keys: `hidden`, `activation`, `norm`, `dropout` (model.*); `optimizer`,
    `lr`, `weight_decay` (train.optimizer.*); `epochs`, `batch_size`; `val_fraction` (split.val);
    `early_stopping`, `patience` (train.early_stopping); `seed`; `class_weight` (None, 'balanced'
    or {label: weight}, train.loss.class_weights). A value the recipe rejects is a ValueError at
    `fit` that names the parameter and its key.

    Learned: `classes_`, `n_features_in_`, `feature_names_in_` (DataFrames with string column
    names), `model_` (the `strata.TrainedModel`, which predicts the same labels), `history_` (a list
    of metrics per epoch) and `n_iter_` (epochs run, fewer than `epochs` after early stopping).

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = DeepClassifier(lr=0.01, epochs=30).fit(X, y)
    >>> clf.predict_proba(X[:1]).shape, clf.classes_
    ((1, 3), array([0, 1, 2]))
    """

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] | int = (64,),
        activation: str = "relu",
        norm: str = "none",
        dropout: float = 0.0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 100,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        early_stopping: bool = True,
        patience: int = 10,
        seed: int = 0,
        class_weight: str | Mapping[Any, float] | None = None,
    ):
        super().__init__(
            hidden=hidden,
            activation=activation,
            norm=norm,
            dropout=dropout,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            epochs=epochs,
            batch_size=batch_size,
            val_fraction=val_fraction,
            early_stopping=early_stopping,
            patience=patience,
            seed=seed,
        )
        self.class_weight = class_weight

    def _check_y(self, y: ArrayLike) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y; got 1 class ({self.classes_[0]!r})")
        return y  # the labels themselves: a saved model_ then predicts them too

    def _target_keys(self, y: np.ndarray) -> dict[str, Any]:
        codes = np.unique(y, return_inverse=True)[1]
        keys = {
            "task": "binary" if len(self.classes_) == 2 else "multiclass",
            "loss": {"class_weights": self._class_weights()},
        }
        val = _plain(self.val_fraction)
        reason = _unstratifiable(codes, val, self.classes_.tolist())
        if reason:
            warnings.warn(
                f"{type(self).__name__}: {reason} (val_fraction={val}); training on all rows without validation. "
                "Use more rows, or set val_fraction=0 to silence this.",
                StrataWarning,
                stacklevel=3,
            )
            keys["val"] = 0.0
        return keys

    def _class_weights(self) -> Any:
        """class_weight keyed as the recipe keys classes: by the text of each label as it is in y."""
        weights = self.class_weight
        if not isinstance(weights, Mapping):
            return weights  # None or 'balanced'; the recipe rejects anything else
        classes = {label: label for label in self.classes_.tolist()}  # finds 1.0 from a key of 1
        unknown = [label for label in weights if label not in classes]
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: class_weight has label {unknown[0]!r}, which is not a class in y "
                f"(classes: {', '.join(map(str, self.classes_))})"
            )
        return {str(classes[label]): weight for label, weight in weights.items()}

    def _check_model(self, model: TrainedModel) -> None:
        # predict_proba's columns follow the model's classes; every class is in the training part, so
        # they are classes_ in the same order. Checked, because a mismatch would mislabel silently.
        if [str(c) for c in model.classes] != [str(c) for c in self.classes_.tolist()]:
            raise RuntimeError(f"the model's classes {model.classes} differ from classes_ {self.classes_.tolist()}")

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities, (n_samples, n_classes), columns in the order of `classes_`."""
        check_is_fitted(self)
        proba = self.model_.predict_proba(self._as_frame(X, reset=False))
        return proba / proba.sum(axis=1, keepdims=True)  # exact sums in float64 (the network is float32)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The most probable class of each row, as a label from `classes_`."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before classes_ exists
        return self.classes_[np.argmax(proba, axis=1)]


class DeepRegressor(RegressorMixin, _DeepEstimator):
    """An MLP regressor trained by Strata, with scikit-learn's estimator API.

    y of shape (n_samples,) gives 1-D predictions; y of shape (n_samples, n_targets) trains one
    network with n_targets outputs and predicts that shape. Targets are z-scored for training and
    predictions are returned in y's units.

    X is handled as by `DeepClassifier` (numeric, NaN imputed; non-numeric DataFrame columns are
    categorical), and so are the parameters (without `class_weight`) and the learned attributes
    (without `classes_`).

    >>> from sklearn.datasets import load_diabetes
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = DeepRegressor(lr=0.01, epochs=20).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _check_y(self, y: ArrayLike) -> np.ndarray:
        y = check_array(y, ensure_2d=False, dtype=np.float64, estimator=self, input_name="y")
        if y.ndim > 2:
            raise ValueError(f"y should be 1-D or 2-D (n_samples, n_targets), got shape {y.shape}")
        self._y_ndim = y.ndim
        return y

    def _target_keys(self, y: np.ndarray) -> dict[str, Any]:
        return {"task": "regression", "stratify": False}

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted values in y's units: (n_samples,) or (n_samples, n_targets), as y was in fit."""
        check_is_fitted(self)
        frame = self._as_frame(X, reset=False)
        values = np.asarray(self.model_.predict(frame), dtype=np.float64)
        return values.reshape(len(frame), -1) if self._y_ndim == 2 else values.reshape(len(frame))


# ------------------------------------------------------------------------------------- helpers
def _plain(value: Any) -> Any:
    """NumPy scalars (from np.logspace grids, say) as Python numbers, as a recipe holds them."""
    return value.item() if isinstance(value, np.generic) else value


def _layers(hidden: Any) -> Any:
    """`hidden` as the recipe's list of layer sizes; a single int is one layer."""
    if isinstance(hidden, int | np.integer) and not isinstance(hidden, bool):
        return [int(hidden)]
    if isinstance(hidden, tuple | list | np.ndarray):
        return [_plain(h) for h in hidden]
    return hidden  # the recipe says what it expected


def _kind(column: pd.Series) -> str:
    """Numeric dtypes (bool included) are numeric features; any other dtype is categorical."""
    return "numeric" if pd.api.types.is_numeric_dtype(column) else "categorical"


def _has_categories(X: Any) -> bool:
    return isinstance(X, pd.DataFrame) and any(_kind(X[c]) == "categorical" for c in X.columns)


def _free_names(base: str, count: int, taken: set[str]) -> list[str]:
    """Target column names that no input column uses: y (or y0, y1, ...), else _y, __y, ..."""
    while True:
        names = [base] if count == 1 else [f"{base}{i}" for i in range(count)]
        if not taken.intersection(names):
            return names
        base = f"_{base}"


def _unstratifiable(codes: np.ndarray, val_fraction: Any, classes: list[Any]) -> str | None:
    """Why a stratified validation part of this size cannot be drawn (the core split's own rule), or None."""
    from strata.data.split import problem
    from strata.recipe import SplitConfig

    if not isinstance(val_fraction, float) or not 0 < val_fraction < 0.9:
        return None  # the recipe reports a bad value
    return problem(codes, len(codes), SplitConfig(test=0.0, val=val_fraction), [str(c) for c in classes])


def _blame(message: str, params: dict[str, Any]) -> str:
    """Prefix a recipe error with the parameters behind the keys it names: "optimizer='adamm': ..."."""
    keys = re.findall(r"^\s*([\w.]+):", message, flags=re.MULTILINE)
    names = list(dict.fromkeys(_PARAM_KEYS[k] for k in keys if k in _PARAM_KEYS))
    given = ", ".join(f"{name}={params[name]!r}" for name in names if name in params)
    return f"invalid parameter {given}: {message}" if given else message
