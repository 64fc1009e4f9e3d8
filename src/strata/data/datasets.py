"""Datasets that ship inside installed packages, so examples and tests never download anything.

Only names and one-line facts live at module level; the loaders import scikit-learn,
palmerpenguins or statsmodels when called. Forecasting datasets (task "forecast") also name their
time column and, for several series in one table, the series-id column and covariates, so a
recipe's `forecast:` section can default to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class Dataset:
    name: str
    target: str
    task: str
    source: str
    load: Callable[[], pd.DataFrame]
    time: str | None = None  # forecasting: the time column
    series: str | None = None  # forecasting: the series-id column, when the table holds several
    covariates: tuple[str, ...] = ()  # forecasting: numeric columns that help predict the target


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


def _reviews() -> pd.DataFrame:
    from strata.data.text_data import make_reviews

    return make_reviews()  # 4,000 rows, seed 0


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


def _co2() -> pd.DataFrame:
    from statsmodels.datasets import co2

    weekly = co2.load_pandas().data  # Saturdays, 1958-03-29 to 2001-12-29, 59 weeks missing
    filled = weekly.interpolate(method="time")  # straight lines across the gaps, by date
    return filled.rename_axis("date").reset_index()


def _yearly(module: str, column: str, target: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import importlib

        data = importlib.import_module(f"statsmodels.datasets.{module}").load_pandas().data
        year = next(c for c in data.columns if c.lower() == "year")
        return pd_frame({"year": data[year].astype("int64"), target: data[column].astype("float64")})

    return load


def _seasonal() -> pd.DataFrame:
    """Daily sales of three stores over four years (seed 0): a level per store, a trend, weekly and
    yearly cycles, noise, and promotions. A promotion runs for 3 to 7 days; its lift builds up while
    it runs and fades over the days after, so a store's recent promotions say something about its
    next days' sales."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    days = pd.date_range("2019-01-01", "2022-12-31", freq="D")
    step = np.arange(len(days))
    weekday = np.array([-0.10, -0.05, 0.0, 0.02, 0.10, 0.25, 0.15])[days.day_of_week]  # Monday first
    yearly = np.sin(2 * np.pi * (days.day_of_year.to_numpy() - 80) / 365.25)  # peaks in June
    frames = []
    for store, level, growth in (("city", 200.0, 0.05), ("north", 120.0, 0.02), ("south", 80.0, 0.01)):
        promo = _promotions(rng, len(days))
        lift = np.zeros(len(days))
        for t in range(len(days)):  # each promotion day adds 0.3 of the level, halving every day after
            lift[t] = promo[t] + (0.5 * lift[t - 1] if t else 0.0)
        sales = level * (1 + weekday + 0.15 * yearly + 0.3 * lift) + growth * step
        sales += rng.normal(0, 0.05 * level, len(days))
        frames.append(pd.DataFrame({"date": days, "store": store, "promo": promo, "sales": sales.round(1)}))
    return pd.concat(frames, ignore_index=True)


def _promotions(rng: np.random.Generator, n: int) -> np.ndarray:
    """0/1 per day: runs of 3 to 7 promotion days, starting about once a month."""
    import numpy as np

    promo = np.zeros(n, dtype=np.int64)
    t = int(rng.integers(0, 30))
    while t < n:
        promo[t : t + int(rng.integers(3, 8))] = 1
        t += int(rng.integers(20, 45))
    return promo


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
        Dataset("reviews", "sentiment", "binary", "generated product reviews (negation, contrast; 4% noise)", _reviews),
        Dataset(
            "co2",
            "co2",
            "forecast",
            "statsmodels: Mauna Loa CO2, weekly 1958-2001 (59 missing weeks interpolated over time)",
            _co2,
            time="date",
        ),
        Dataset(
            "sunspots",
            "sunspots",
            "forecast",
            "statsmodels: yearly sunspot activity 1700-2008 (an ~11-year cycle)",
            _yearly("sunspots", "SUNACTIVITY", "sunspots"),
            time="year",
        ),
        Dataset(
            "nile",
            "volume",
            "forecast",
            "statsmodels: yearly Nile flow at Aswan 1871-1970 (10^8 m^3)",
            _yearly("nile", "volume", "volume"),
            time="year",
        ),
        Dataset(
            "seasonal",
            "sales",
            "forecast",
            "generated (seed 0): daily sales of 3 stores 2019-2022, weekly and "
            "yearly cycles, promotions that lift sales",
            _seasonal,
            time="date",
            series="store",
            covariates=("promo",),
        ),
    ]
}


def load_dataset(name: str) -> pd.DataFrame:
    from strata.errors import DataError, one_of

    if name not in DATASETS:
        raise DataError(f"dataset {one_of(name, DATASETS)}")
    return DATASETS[name].load()
