"""Cross-validation: the recipe trained once per fold, the whole feature pipeline fitted inside
each fold (on that fold's training rows only), metrics on each fold's held-out rows, their mean,
standard deviation and 95% t-interval, and the out-of-fold predictions of every row.

>>> import strata
>>> cv = strata.cross_validate({"data": {"dataset": "iris", "target": "species"},
...                             "train": {"epochs": 20}, "track": False}, folds=3)  # doctest: +SKIP
>>> cv.summary["accuracy"]["mean"] > 0.8  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from strata.errors import DataError, RecipeError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

    from strata.recipe import Recipe

KINDS = ("auto", "kfold", "stratified", "group", "repeated", "timeseries")


@dataclass
class CVResult:
    task: str
    kind: str
    folds: list[dict[str, Any]]  # per fold: fold, repeat, rows per part, held-out metrics
    summary: dict[str, dict[str, float]]  # metric -> mean, std, ci_low, ci_high, n
    oof: pd.DataFrame  # every held-out row's prediction, with its fold (repeats: one row per repeat)
    scores: dict[str, list[float]]  # metric -> per-fold values, in fold order (for strata compare)
    n_train: float  # mean training rows per fold (the corrected t-test needs it)
    n_test: float  # mean held-out rows per fold

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "kind": self.kind, "folds": self.folds, "summary": self.summary,
                "n_train": self.n_train, "n_test": self.n_test}  # fmt: skip


def resolve_kind(kind: str, task: str, group: str | None, repeats: int) -> str:
    """`auto`: group folds with a group column, repeated with repeats > 1, stratified for classes,
    plain k-fold for values."""
    if kind not in KINDS:
        raise RecipeError(f"--kind {kind!r}: expected one of {', '.join(KINDS)}{did_you_mean(kind, KINDS)}")
    if kind != "auto":
        return kind
    if group:
        return "group"
    if repeats > 1:
        return "repeated"
    return "kfold" if task == "regression" else "stratified"


def cross_validate(
    recipe: Recipe | dict[str, Any] | str | Path,
    data: pd.DataFrame | str | Path | None = None,
    *,
    folds: int = 5,
    kind: str = "auto",
    group: str | None = None,
    repeats: int = 1,
    quiet: bool = True,
    out: str | Path | None = None,
    fold_seed: int | None = None,
) -> CVResult:
    """Train and evaluate `recipe` on `folds` folds of the data (the recipe's `split.val` share of
    each fold's other rows validates for early stopping; `split.test` is not used). With `out`,
    writes cv.json, oof.csv and one bundle per fold (fold-<i>/) there. `fold_seed` (default: the
    recipe's data seed) lets two recipes be cross-validated on the same folds."""
    from strata import workflow
    from strata._console import Reporter
    from strata.api import as_recipe
    from strata.data.sources import load_frame
    from strata.features import target

    recipe = as_recipe(recipe)
    if group is not None and kind not in ("auto", "group"):
        raise RecipeError(f"--group applies to group folds; --kind {kind} would ignore it (use --kind group)")
    listed = {c.name for c in recipe.features.columns or []}
    if group is not None and group not in (*recipe.data.drop, *recipe.data.targets, *listed):
        recipe = recipe.override({"data.drop": [*recipe.data.drop, group]})  # an id to group by, not an input
    if recipe.forecast is not None:
        raise RecipeError("cross-validation of a forecast: use forecast's own time split (rolling origins are "
                          "not available yet); remove the forecast section or use strata train")  # fmt: skip
    frame = load_frame(recipe.data, data)
    target.check_present(frame, recipe.data.targets)
    task, _ = target.infer_task(frame, recipe.data.targets, recipe.data.task)
    kind = resolve_kind(kind, task, group, repeats)
    seed = recipe.seeds.data if fold_seed is None else fold_seed
    parts = _folds(recipe, frame, task, kind, folds, group, repeats, seed)
    report = Reporter(quiet)
    records, oof, scores = [], [], {}
    for i, fold in enumerate(parts):
        prep = workflow.prepare(recipe, frame, _as_split(fold))
        fitted = workflow.fit(recipe, prep, quiet=True, extra=[])
        metrics = workflow.held_out_metrics(fitted, prep)["test"]
        records.append({"fold": i, "repeat": int(fold.repeat), "rows": {k: len(v) for k, v in prep.sets.items()},
                        "metrics": _plain(metrics)})  # fmt: skip
        oof.append(_oof(prep, fitted, fold, i, frame))
        for name, value in metrics.items():
            if isinstance(value, int | float) and value is not None and np.isfinite(value):
                scores.setdefault(name, []).append(float(value))
        report.note(f"fold {i + 1}/{len(parts)}: " + _headline(metrics))
        if out is not None:
            _save_fold(recipe, prep, fitted, Path(out) / f"fold-{i}")
    result = CVResult(task, kind, records, _summary(scores, len(parts)), _joined(oof), scores,
                      float(np.mean([len(f.train) + len(f.val) for f in parts])),
                      float(np.mean([len(f.test) for f in parts])))  # fmt: skip
    if out is not None:
        write(result, Path(out))
    return result


def _folds(recipe: Recipe, frame: pd.DataFrame, task: str, kind: str, k: int, group: str | None, repeats: int,
           seed: int) -> list:  # fmt: skip
    from strata.data.folds import folds
    from strata.workflow import _class_codes

    labels, names = _class_codes(frame, recipe.data.targets[0]) if task != "regression" else (None, None)
    groups = None
    if kind == "group":
        if group is None:
            raise RecipeError("--kind group needs --group COLUMN (rows of one group stay in one fold)")
        if group not in frame.columns:
            raise DataError(f"--group: column '{group}' is not in the data{did_you_mean(group, frame.columns)}")
        groups = frame[group].astype(str).to_numpy()
    return folds(len(frame), kind=kind, k=k, seed=seed, labels=labels, groups=groups, repeats=repeats,
                 val=recipe.split.val, class_names=names)  # fmt: skip


def _as_split(fold: Any) -> Any:
    from strata.data.split import Split

    return Split(np.asarray(fold.train), np.asarray(fold.val), np.asarray(fold.test))


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in ("confusion_matrix",)}


def _headline(metrics: dict[str, Any]) -> str:
    shown = [m for m in ("accuracy", "f1", "roc_auc", "mae", "rmse", "r2") if isinstance(metrics.get(m), float)]
    return ", ".join(f"{m} {metrics[m]:.4f}" for m in shown[:3])


def _summary(scores: dict[str, list[float]], n_folds: int) -> dict[str, dict[str, float]]:
    from strata.evaluation.metrics import HEADLINE
    from strata.evaluation.stats import mean_ci

    return {name: mean_ci(values) for name, values in scores.items() if name in HEADLINE and len(values) == n_folds
            and n_folds > 1}  # fmt: skip


def _oof(prep: Any, fitted: Any, fold: Any, index: int, frame: pd.DataFrame) -> pd.DataFrame:
    """The fold's held-out predictions: labels and class probabilities, or values in the target's units."""
    import pandas as pd

    from strata import workflow
    from strata._labels import level_key
    from strata.features import target

    predicted = workflow.predictions(fitted, prep.sets["test"])
    rows = np.asarray(fold.test)
    out = pd.DataFrame({"row": rows, "fold": index, "repeat": int(fold.repeat)}, index=frame.index[rows])
    if prep.task != "regression":
        classes = np.asarray(prep.classes, dtype=object)
        out["prediction"] = classes[predicted.argmax(1)]
        for i, c in enumerate(prep.classes):
            out[f"proba_{level_key(c)}"] = predicted[:, i]
        return out
    values = target.decode(predicted, prep.pipeline.target)
    names = prep.pipeline.target["columns"]
    for i, name in enumerate(names):
        out["prediction" if len(names) == 1 else f"prediction_{name}"] = values[:, i]
    return out


def _joined(parts: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    return pd.concat(parts).sort_values(["repeat", "row"], kind="stable") if parts else pd.DataFrame()


def _save_fold(recipe: Recipe, prep: Any, fitted: Any, path: Path) -> None:
    from strata import workflow
    from strata.bundle import TrainedModel

    meta = workflow.describe(recipe, prep, fitted, "cross-validation fold")
    meta["metrics"] = workflow.held_out_metrics(fitted, prep)
    TrainedModel(fitted.trainer.model, prep.pipeline, recipe, meta).save(path)


def write(result: CVResult, folder: Path) -> None:
    """cv.json (per-fold metrics and the summary) and oof.csv (out-of-fold predictions)."""
    import json

    from strata._files import write_atomically

    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / "cv.json", json.dumps(result.to_json(), indent=1, default=float).encode())
    write_atomically(folder / "oof.csv", result.oof.to_csv(index=False).encode())
