"""`strata compare A B`: is one model really better than another, or is the difference noise?

Two recipes are cross-validated on the same folds and compared with the corrected resampled
t-test (Nadeau and Bengio 2003), which accounts for the folds' overlapping training sets. Two
trained models are compared on one labelled table: McNemar's test on which rows each classifies
correctly, and a paired bootstrap interval of the metric difference (both models scored on the same
resampled rows). The answer is a sentence: "B is better than A by 0.012 accuracy (95% CI ...)".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from strata.errors import DataError, RecipeError

LOWER_IS_BETTER = ("loss", "log_loss", "brier", "ece", "mae", "mse", "rmse", "mape", "median_ae", "smape",
                   "mase_naive", "mase_seasonal")  # fmt: skip


def _metric(task: str, metric: str | None) -> str:
    return metric or ("rmse" if task == "regression" else "accuracy")


def compare_recipes(
    a: Any, b: Any, data: Any = None, *, folds: int = 5, kind: str = "auto", metric: str | None = None,
    quiet: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Cross-validate both recipes on the same folds (A's data seed) and test the per-fold difference."""
    from strata.api import as_recipe
    from strata.crossval import cross_validate
    from strata.evaluation.compare import corrected_t_test, verdict

    a, b = as_recipe(a), as_recipe(b)
    first = cross_validate(a, data, folds=folds, kind=kind, quiet=quiet)
    second = cross_validate(b, data, folds=folds, kind=kind, quiet=quiet, fold_seed=a.seeds.data)
    name = _metric(first.task, metric)
    if name not in first.scores or name not in second.scores:
        found = sorted(set(first.scores) & set(second.scores))
        raise RecipeError(f"--metric {name!r} is not measured on both; available: {', '.join(found)}")
    result = corrected_t_test(first.scores[name], second.scores[name], int(first.n_train), int(first.n_test))
    names = (a.display_name, b.display_name) if a.display_name != b.display_name else ("A", "B")
    text = verdict(result, name, higher_is_better=name not in LOWER_IS_BETTER, names=names)
    return {"metric": name, "scores": {names[0]: first.scores[name], names[1]: second.scores[name]},
            "result": result, "verdict": text}  # fmt: skip


def compare_models(a: Any, b: Any, data: Any, *, metric: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Both models on the same labelled rows: McNemar's test (classifiers) and a paired bootstrap."""
    from strata.api import load
    from strata.evaluation.compare import mcnemar, paired_bootstrap, verdict

    first, second = (load(x) if isinstance(x, str | Path) else x for x in (a, b))
    if first.task != second.task or first.classes != second.classes:
        raise DataError(f"compare: the models predict different things ({first.task} {first.classes} vs "
                        f"{second.task} {second.classes}); compare models of one target")  # fmt: skip
    frame = first.read(data)
    pipeline = first.members[0].pipeline if hasattr(first, "members") else first.pipeline  # an Ensemble's
    target = pipeline.target["columns"]
    missing = [t for t in target if t not in frame.columns]
    if missing:
        raise DataError(f"compare: the data needs the target column '{missing[0]}' to score the models")
    name = _metric(first.task, metric)
    if first.task != "regression" and name != "accuracy":
        raise RecipeError(f"--metric {name!r}: two classifiers are compared on one table by which rows each gets "
                          "right (accuracy); compare recipes (cross-validated) for other metrics")  # fmt: skip
    y = frame[target[0]].to_numpy()
    pa, pb = first.predict(frame), second.predict(frame)
    names = ("A", "B")
    out: dict[str, Any] = {"metric": name}
    if first.task != "regression":
        from strata._labels import level_key

        keys = np.array([level_key(v) for v in y])
        right_a = keys == np.array([level_key(v) for v in pa])
        right_b = keys == np.array([level_key(v) for v in pb])
        out["mcnemar"] = mcnemar(right_a, right_b)
        out["verdict_mcnemar"] = verdict(out["mcnemar"], "accuracy", names=names)
        score, ya, yb = _accuracy, right_a.astype(float), right_b.astype(float)
        truth = np.ones(len(y))
    else:
        score, ya, yb, truth = _error(name), np.asarray(pa, float), np.asarray(pb, float), np.asarray(y, float)
    out["bootstrap"] = paired_bootstrap(score, truth, ya, yb, seed=seed)
    metric_name = "accuracy" if first.task != "regression" else name
    out["verdict"] = verdict(out["bootstrap"], metric_name, higher_is_better=metric_name not in LOWER_IS_BETTER,
                             names=names)  # fmt: skip
    return out


def _accuracy(truth: np.ndarray, right: np.ndarray) -> float:
    return float(np.mean(right))


def _error(name: str) -> Any:
    if name not in ("mae", "rmse"):
        raise RecipeError(f"--metric {name!r}: comparing two regression models on rows takes mae or rmse")
    if name == "mae":
        return lambda y, p: float(np.mean(np.abs(y - p)))
    return lambda y, p: float(np.sqrt(np.mean((y - p) ** 2)))
