"""Is model B really better than model A? Paired tests, and a verdict in plain words.

Every test pairs the two models on the same folds or rows, and every difference is B - A. Each
result is a plain dict (JSON-ready) naming its test, so `verdict` can say which test it rests on.

- `corrected_t_test`: per-fold scores from cross-validation. The folds' training sets overlap, so
  their scores are correlated and the plain paired t-test is far too confident; Nadeau & Bengio's
  correction widens the variance by n_test / n_train.
- `mcnemar`: one shared test set, classifiers right or wrong per row.
- `paired_bootstrap`: one shared test set, any metric: resample rows, the same rows for both models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

EXACT_BELOW = 25  # discordant pairs under which McNemar's chi-squared approximation is too rough
CHUNK = 200  # bootstrap resamples indexed at once: bounds memory at CHUNK x rows


def corrected_t_test(
    scores_a: Sequence[float], scores_b: Sequence[float], n_train: int, n_test: int, confidence: float = 0.95
) -> dict[str, Any]:
    """Nadeau & Bengio's (2003) corrected resampled t-test over scores paired by fold.

    The variance of the per-fold differences is scaled by (1/J + n_test/n_train) instead of 1/J,
    with J folds and n_train / n_test the rows a fold trains / is scored on.

    >>> r = corrected_t_test([0.80, 0.82, 0.81, 0.79, 0.80], [0.83, 0.84, 0.82, 0.82, 0.83], 80, 20)
    >>> round(r["mean_difference"], 3), round(r["t"], 2), r["df"], round(r["p"], 3)
    (0.024, 4.0, 4, 0.016)
    """
    from scipy import stats

    d = _paired(scores_b, scores_a, "scores")
    if len(d) < 2:
        raise ValueError(f"corrected_t_test needs scores from at least 2 folds, got {len(d)}")
    if n_train <= 0 or n_test < 0:
        raise ValueError(f"corrected_t_test: n_train must be > 0 and n_test >= 0, got {n_train} and {n_test}")
    folds = len(d)
    mean = float(d.mean())
    se = float(np.sqrt((1 / folds + n_test / n_train) * d.var(ddof=1)))
    # se == 0: every fold differs by the same amount, so there is no noise to test against
    t = mean / se if se else (0.0 if mean == 0 else float(np.copysign(np.inf, mean)))
    df = folds - 1
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * se
    return {
        "test": "corrected resampled t-test",
        "mean_difference": mean,
        "ci": [mean - half, mean + half],
        "t": t,
        "df": df,
        "p": float(2 * stats.t.sf(abs(t), df)),
        "confidence": confidence,
    }


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, Any]:
    """McNemar's test for two classifiers scored on the same rows.

    Only the rows where exactly one of them is right count: b (A right, B wrong) and c (A wrong,
    B right). Under no difference each such row is a fair coin, so with few of them the exact
    binomial test is used; from 25 on, the chi-squared test with continuity correction.

    >>> r = mcnemar([1, 1, 1, 0, 0, 1], [1, 0, 1, 1, 1, 1])
    >>> r["test"], r["b"], r["c"], r["p"]
    ('McNemar exact binomial test', 1, 2, 1.0)
    """
    from scipy import stats

    a = np.asarray(correct_a, dtype=bool)
    b_right = np.asarray(correct_b, dtype=bool)
    _paired(b_right, a, "correct")
    b, c = int((a & ~b_right).sum()), int((~a & b_right).sum())
    if b + c < EXACT_BELOW:
        test, statistic = "McNemar exact binomial test", float(min(b, c))
        p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    else:
        test, statistic = "McNemar chi-squared test (continuity corrected)", (abs(b - c) - 1) ** 2 / (b + c)
        p = float(stats.chi2.sf(statistic, df=1))
    return {
        "test": test,
        "b": b,
        "c": c,
        "statistic": statistic,
        "p": min(p, 1.0),
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b_right.mean()),
        "difference": (c - b) / len(a),  # accuracy of B minus accuracy of A
    }


def paired_bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y: Sequence,
    pred_a: Sequence,
    pred_b: Sequence,
    n: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Bootstrap the difference metric(y, pred_b) - metric(y, pred_a), drawing the same rows for both.

    The interval is the percentile interval of the resampled differences; the p-value is twice the
    share of them at or beyond 0 on the side opposite the observed difference (capped at 1), so
    identical predictions give p = 1. Row indices are drawn for a block of resamples at once; the
    metric, any callable, is then called twice per resample.
    """
    y, pred_a, pred_b = np.asarray(y), np.asarray(pred_a), np.asarray(pred_b)
    if not len(y) == len(pred_a) == len(pred_b) > 0:
        raise ValueError(
            f"paired_bootstrap needs y, pred_a and pred_b of one non-zero length, got "
            f"{len(y)}, {len(pred_a)} and {len(pred_b)}"
        )
    observed = float(metric(y, pred_b)) - float(metric(y, pred_a))
    rng = np.random.default_rng(seed)
    diffs = np.empty(n)
    for start in range(0, n, CHUNK):
        rows = rng.integers(0, len(y), size=(min(CHUNK, n - start), len(y)))
        for i, idx in enumerate(rows):
            diffs[start + i] = metric(y[idx], pred_b[idx]) - metric(y[idx], pred_a[idx])
    lo, hi = np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {
        "test": "paired bootstrap",
        "difference": observed,
        "ci": [float(lo), float(hi)],
        "p": _bootstrap_p(diffs, observed),
        "n": n,
        "confidence": confidence,
    }


def verdict(
    result: dict[str, Any],
    metric_name: str,
    higher_is_better: bool = True,
    names: tuple[str, str] = ("A", "B"),
    alpha: float = 0.05,
) -> str:
    """One sentence a reader can act on: which model is better, by how much, and how sure we are.

    >>> verdict({"test": "paired bootstrap", "difference": -0.05, "ci": [-0.08, -0.02], "p": 0.004,
    ...          "confidence": 0.95}, "rmse", higher_is_better=False, names=("old", "new"))
    'new is better than old by 0.05 rmse (lower is better; 95% CI 0.02 to 0.08, p = 0.004, paired bootstrap)'
    """
    a, b = names
    diff = result["mean_difference"] if "mean_difference" in result else result["difference"]
    if result["p"] >= alpha:
        numbers = [f"difference {_num(diff)}", _ci_text(result, result.get("ci")), _p_text(result["p"]), result["test"]]
        return f"no significant difference between {a} and {b} in {metric_name} ({_join(numbers)})"
    # The gain of B over A in the metric's good direction; flipped when A is the better one.
    sign = 1 if higher_is_better else -1
    if sign * diff < 0:
        a, b, sign = b, a, -sign
    ci = sorted(sign * x for x in result["ci"]) if "ci" in result else None
    numbers = _join([_ci_text(result, ci), _p_text(result["p"]), result["test"]])
    direction = "" if higher_is_better else "lower is better; "
    return f"{b} is better than {a} by {_num(abs(diff))} {metric_name} ({direction}{numbers})"


def _paired(x: Sequence, y: Sequence, what: str) -> np.ndarray:
    """x - y, after checking both have one length: pairs must line up fold by fold or row by row."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"the two models' {what} must be 1-D and paired, got shapes {y.shape} and {x.shape}")
    return x - y


def _bootstrap_p(diffs: np.ndarray, observed: float) -> float:
    if observed == 0:
        return 1.0
    beyond = diffs <= 0 if observed > 0 else diffs >= 0
    return float(min(1.0, 2 * beyond.mean()))


def _num(x: float) -> str:
    """Three significant digits, never scientific notation: 0.0123, 0.02, 1230."""
    return np.format_float_positional(float(x), precision=3, unique=False, fractional=False, trim="-")


def _p_text(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    return "p = " + np.format_float_positional(float(p), precision=2, unique=False, fractional=False, trim="-")


def _ci_text(result: dict[str, Any], ci: Sequence[float] | None) -> str:
    """'95% CI 0.004 to 0.02', or '' for tests without an interval (McNemar)."""
    if ci is None:
        return ""
    level = _num(100 * result.get("confidence", 0.95))
    return f"{level}% CI {_num(ci[0])} to {_num(ci[1])}"


def _join(parts: list[str]) -> str:
    return ", ".join(part for part in parts if part)
