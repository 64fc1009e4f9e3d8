"""Strata: from raw data to a trained, evaluated, versioned deep-learning model, reproducibly.

>>> import strata
>>> model = strata.train("examples/penguins.yaml").model      # doctest: +SKIP
>>> strata.load("models/penguins").predict(new_rows)          # doctest: +SKIP

Importing strata is cheap: torch, scikit-learn and pandas load when first needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from strata.errors import (
    BundleError,
    DataError,
    NotFittedError,
    RecipeError,
    StrataError,
    StrataWarning,
    TrackingError,
    TrainingError,
)

__version__ = "0.1.0"

_LAZY = {
    "Recipe": "strata.recipe",
    "train": "strata.api",
    "load": "strata.api",
    "lr_find": "strata.api",
    "report": "strata.api",
    "TrainResult": "strata.api",
    "TrainedModel": "strata.bundle",
    "DeepClassifier": "strata.sklearn",
    "DeepRegressor": "strata.sklearn",
    "DATASETS": "strata.data.datasets",
    "load_dataset": "strata.data.datasets",
    "train_seeds": "strata.experiments",
    "reproduce": "strata.experiments",
    "cross_validate": "strata.crossval",
    "tune": "strata.search",
    "Ensemble": "strata.ensemble",
    "bagging": "strata.ensemble",
    "stack": "strata.ensemble",
}

__all__ = [
    "DATASETS",
    "BundleError",
    "DataError",
    "DeepClassifier",
    "DeepRegressor",
    "Ensemble",
    "NotFittedError",
    "Recipe",
    "RecipeError",
    "StrataError",
    "StrataWarning",
    "TrackingError",
    "TrainResult",
    "TrainedModel",
    "TrainingError",
    "bagging",
    "cross_validate",
    "load",
    "load_dataset",
    "lr_find",
    "report",
    "reproduce",
    "stack",
    "train",
    "train_seeds",
    "tune",
]

if TYPE_CHECKING:
    from strata.api import TrainResult, load, lr_find, report, train
    from strata.bundle import TrainedModel
    from strata.crossval import cross_validate
    from strata.data.datasets import DATASETS, load_dataset
    from strata.ensemble import Ensemble, bagging, stack
    from strata.experiments import reproduce, train_seeds
    from strata.recipe import Recipe
    from strata.search import tune
    from strata.sklearn import DeepClassifier, DeepRegressor


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'strata' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
