"""Statistics for telling signal from noise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, sample standard deviation and the t-distribution confidence interval of the mean.

    >>> s = mean_ci([0.90, 0.92, 0.94])
    >>> round(s["mean"], 3), round(s["ci_low"], 3), round(s["ci_high"], 3)
    (0.92, 0.87, 0.97)
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        raise ValueError("a confidence interval needs at least two values")
    mean, std = float(x.mean()), float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, df=len(x) - 1) * std / np.sqrt(len(x)))
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": len(x)}
