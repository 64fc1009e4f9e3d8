"""Datasets that ship inside installed packages, so examples and tests never download anything.

Only names and one-line facts live at module level; the loaders import scikit-learn or
palmerpenguins when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Dataset:
    name: str
    target: str
    task: str
    source: str
    load: Callable[[], pd.DataFrame]


def _sklearn(name: str, target: str, class_names: bool) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
        frame = bunch.frame.rename(columns={"target": target})
        if class_names:
            frame[target] = bunch.target_names[bunch.target.to_numpy()]
        return frame

    return load


def _digits() -> pd.DataFrame:
    import sklearn.datasets

    bunch = sklearn.datasets.load_digits(as_frame=True)  # 8x8 images, flattened to 64 pixel columns
    return bunch.frame.rename(columns={"target": "digit"})


def _digits_images() -> pd.DataFrame:
    from strata.data.images import digits_images

    table = digits_images()  # 8x8x1 uint8 pictures
    frame = pd_frame({"image": list(table.pixels), "digit": table.labels})
    return frame


def _mnist1d() -> pd.DataFrame:
    from strata.data.mnist1d import make_mnist1d

    x, y = make_mnist1d()  # the published MNIST-1D: 5,000 signals of length 40, seed 42
    frame = pd_frame({f"x{i}": x[:, i] for i in range(x.shape[1])})
    frame["label"] = y
    return frame


def pd_frame(columns: dict) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns)


def _penguins() -> pd.DataFrame:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # palmerpenguins uses a deprecated importlib API
        from palmerpenguins import load_penguins

        return load_penguins()


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset("iris", "species", "multiclass", "scikit-learn", _sklearn("iris", "species", True)),
        Dataset("wine", "cultivar", "multiclass", "scikit-learn", _sklearn("wine", "cultivar", True)),
        Dataset("breast_cancer", "diagnosis", "binary", "scikit-learn", _sklearn("breast_cancer", "diagnosis", True)),
        Dataset("diabetes", "progression", "regression", "scikit-learn", _sklearn("diabetes", "progression", False)),
        Dataset("digits", "digit", "multiclass", "scikit-learn (8x8 images, flattened)", _digits),
        Dataset("penguins", "species", "multiclass", "palmerpenguins (has missing values)", _penguins),
        Dataset("digits_images", "digit", "multiclass", "scikit-learn (8x8 grayscale images)", _digits_images),
        Dataset("mnist1d", "label", "multiclass", "MNIST-1D (Greydanus 2020), generated: 40-step signals", _mnist1d),
    ]
}


def load_dataset(name: str) -> pd.DataFrame:
    from strata.errors import DataError, one_of

    if name not in DATASETS:
        raise DataError(f"dataset {one_of(name, DATASETS)}")
    return DATASETS[name].load()
