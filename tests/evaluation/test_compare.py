from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats

from strata.evaluation.compare import corrected_t_test, mcnemar, paired_bootstrap, verdict

SCORES_A = [0.81, 0.79, 0.84, 0.80, 0.83]
SCORES_B = [0.83, 0.82, 0.84, 0.83, 0.85]


def accuracy(y, pred):
    return float(np.mean(y == pred))


def mae(y, pred):
    return float(np.mean(np.abs(y - pred)))


def test_corrected_t_test_matches_the_nadeau_bengio_formula():
    result = corrected_t_test(SCORES_A, SCORES_B, n_train=800, n_test=200)
    d = [0.02, 0.03, 0.0, 0.03, 0.02]
    mean = sum(d) / 5
    var = sum((x - mean) ** 2 for x in d) / 4
    se = math.sqrt((1 / 5 + 200 / 800) * var)
    t = mean / se
    half = stats.t.ppf(0.975, 4) * se
    assert result["test"] == "corrected resampled t-test"
    assert result["df"] == 4
    assert result["mean_difference"] == pytest.approx(0.02)
    assert result["t"] == pytest.approx(t)
    assert result["p"] == pytest.approx(2 * stats.t.sf(t, 4))
    assert result["ci"] == pytest.approx([mean - half, mean + half])


def test_without_the_correction_it_is_the_paired_t_test():
    result = corrected_t_test(SCORES_A, SCORES_B, n_train=800, n_test=0)
    plain = stats.ttest_rel(SCORES_B, SCORES_A)
    assert result["t"] == pytest.approx(plain.statistic)
    assert result["p"] == pytest.approx(plain.pvalue)


def test_the_correction_makes_the_test_less_confident():
    plain = corrected_t_test(SCORES_A, SCORES_B, n_train=800, n_test=0)
    corrected = corrected_t_test(SCORES_A, SCORES_B, n_train=800, n_test=200)
    assert corrected["p"] > plain["p"]
    assert corrected["ci"][1] - corrected["ci"][0] > plain["ci"][1] - plain["ci"][0]


def test_identical_scores_are_no_difference():
    result = corrected_t_test(SCORES_A, SCORES_A, n_train=80, n_test=20)
    assert (result["t"], result["p"], result["ci"]) == (0.0, 1.0, [0.0, 0.0])


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([0.8, 0.9], [0.8], r"must be 1-D and paired, got shapes \(2,\) and \(1,\)"),
        ([0.8], [0.9], "needs scores from at least 2 folds, got 1"),
    ],
)
def test_t_test_rejects_unpaired_or_too_few_scores(a, b, message):
    with pytest.raises(ValueError, match=message):
        corrected_t_test(a, b, n_train=80, n_test=20)


def _correct(both, only_a, only_b, neither):
    """Per-row correctness of two classifiers with the given counts of each agreement pattern."""
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return np.array(a), np.array(b)


def test_mcnemar_exact_matches_the_binomial_test():
    a, b = _correct(both=50, only_a=3, only_b=9, neither=8)
    result = mcnemar(a, b)
    assert result["test"] == "McNemar exact binomial test"
    assert (result["b"], result["c"], result["statistic"]) == (3, 9, 3.0)
    assert result["p"] == pytest.approx(stats.binomtest(3, 12, 0.5).pvalue)
    assert result["difference"] == pytest.approx((59 - 53) / 70)
    assert result["accuracy_b"] - result["accuracy_a"] == pytest.approx(result["difference"])


def test_mcnemar_with_many_discordant_rows_uses_chi_squared_with_continuity_correction():
    a, b = _correct(both=100, only_a=10, only_b=25, neither=15)
    result = mcnemar(a, b)
    statistic = (abs(10 - 25) - 1) ** 2 / 35
    assert result["test"] == "McNemar chi-squared test (continuity corrected)"
    assert result["statistic"] == pytest.approx(statistic)
    assert result["p"] == pytest.approx(math.erfc(math.sqrt(statistic / 2)))  # chi-squared, 1 df


def test_mcnemar_without_disagreements_is_no_evidence():
    a, b = _correct(both=10, only_a=0, only_b=0, neither=5)
    assert mcnemar(a, b)["p"] == 1.0


def test_bootstrap_of_identical_predictions_is_exactly_no_difference():
    y = np.arange(50) % 3
    pred = (np.arange(50) * 7) % 3
    result = paired_bootstrap(accuracy, y, pred, pred.copy(), n=300)
    assert (result["difference"], result["ci"], result["p"]) == (0.0, [0.0, 0.0], 1.0)


def test_bootstrap_finds_a_clearly_better_model():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    pred_a = np.where(rng.random(300) < 0.6, y, 1 - y)  # right about 60% of the time
    pred_b = np.where(rng.random(300) < 0.9, y, 1 - y)  # about 90%
    result = paired_bootstrap(accuracy, y, pred_a, pred_b, n=500, seed=1)
    assert result["difference"] == pytest.approx(accuracy(y, pred_b) - accuracy(y, pred_a))
    assert 0 < result["ci"][0] < result["difference"] < result["ci"][1]
    assert result["p"] < 0.01
    swapped = paired_bootstrap(accuracy, y, pred_b, pred_a, n=500, seed=1)
    assert swapped["ci"][1] < 0 and swapped["p"] == result["p"]


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(3)
    y, a, b = rng.normal(size=(3, 40))
    first, again = (paired_bootstrap(mae, y, a, b, n=250, seed=5) for _ in range(2))
    other = paired_bootstrap(mae, y, a, b, n=250, seed=6)
    assert first == again and first["ci"] != other["ci"]


def test_bootstrap_rejects_unpaired_predictions():
    with pytest.raises(ValueError, match="one non-zero length, got 3, 3 and 2"):
        paired_bootstrap(accuracy, [0, 1, 1], [0, 1, 0], [0, 1])


def _result(difference, lo, hi, p, test="corrected resampled t-test"):
    return {"test": test, "mean_difference": difference, "ci": [lo, hi], "p": p, "confidence": 0.95}


def test_verdict_when_b_is_better():
    text = verdict(_result(0.012, 0.004, 0.020, 0.0123), "accuracy")
    assert text == "B is better than A by 0.012 accuracy (95% CI 0.004 to 0.02, p = 0.012, corrected resampled t-test)"


def test_verdict_when_a_is_better_reports_the_interval_of_its_lead():
    text = verdict(_result(-0.0256, -0.04, -0.011, 0.0004), "accuracy", names=("baseline", "mlp"))
    assert (
        text
        == "baseline is better than mlp by 0.0256 accuracy (95% CI 0.011 to 0.04, p < 0.001, corrected resampled t-test)"
    )


def test_verdict_when_the_difference_is_not_significant():
    text = verdict(_result(0.003, -0.004, 0.010, 0.4123), "accuracy")
    assert (
        text
        == "no significant difference between A and B in accuracy (difference 0.003, 95% CI -0.004 to 0.01, p = 0.41, corrected resampled t-test)"
    )


def test_verdict_for_a_lower_is_better_metric():
    result = {"test": "paired bootstrap", "difference": -1.234, "ci": [-2.0, -0.5], "p": 0.02, "confidence": 0.9}
    text = verdict(result, "mae", higher_is_better=False)
    assert text == "B is better than A by 1.23 mae (lower is better; 90% CI 0.5 to 2, p = 0.02, paired bootstrap)"
    worse = verdict({**result, "difference": 1.234, "ci": [0.5, 2.0]}, "mae", higher_is_better=False)
    assert worse.startswith("A is better than B by 1.23 mae (lower is better; 90% CI 0.5 to 2,")


def test_verdict_on_mcnemar_has_no_interval():
    a, b = _correct(both=50, only_a=1, only_b=12, neither=7)
    text = verdict(mcnemar(a, b), "accuracy")
    assert text == "B is better than A by 0.157 accuracy (p = 0.0034, McNemar exact binomial test)"


def test_verdict_uses_alpha():
    result = _result(0.012, -0.001, 0.025, 0.07)
    assert verdict(result, "accuracy").startswith("no significant difference")
    assert verdict(result, "accuracy", alpha=0.1).startswith("B is better than A")


def test_docstring_examples_run():
    import strata.evaluation.compare as module

    result = doctest.testmod(module, report=True, verbose=False)
    assert result.failed == 0 and result.attempted > 0
