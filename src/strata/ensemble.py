"""Ensembles: several trained models that predict as one, saved as a folder of bundles.

    ensemble.json     format, method, weights, meta-model coefficients, member folders, task, classes
    members/<i>/      one ordinary bundle per member

Three ways to combine the members:

- `mean`: the (optionally weighted) mean of the class probabilities, or of the values for regression;
- `vote`: the majority of the members' labels (weighted when weights are given), ties broken by the
  mean probability; `predict_proba` gives the vote shares;
- `stacking`: a logistic regression (classifiers, on the members' probabilities) or a ridge
  regression (regression, on their values) fitted on out-of-fold predictions by `Ensemble.stack`.
  Its coefficients are plain JSON, applied with numpy: nothing is unpickled.

`bagging` trains the members itself, each on a bootstrap resample of the data.

>>> from strata.ensemble import Ensemble
>>> ensemble = Ensemble([model_a, model_b, model_c], method="mean")  # doctest: +SKIP
>>> ensemble.save("models/iris-ensemble")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from strata._labels import level_key
from strata.bundle import TrainedModel, _share, _swap_in, check_destination
from strata.errors import BundleError, DataError, RecipeError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

    from strata.recipe import Recipe

FORMAT = 1
MANIFEST = "ensemble.json"
METHODS = ("mean", "vote", "stacking")


class Ensemble:
    """Trained models with the same task, target and classes, predicting as one. Same interface as
    `TrainedModel`: `predict`, `predict_proba`, `predict_frame`, `evaluate`, `save`."""

    def __init__(
        self,
        members: list[TrainedModel],
        method: str = "mean",
        weights: list[float] | None = None,
        meta_model: dict[str, Any] | None = None,
    ):
        _check_members(members)
        _check_method(method, weights, meta_model, members)
        self.members, self.method = list(members), method
        self.weights = None if weights is None else [float(w) for w in weights]
        self.meta_model = meta_model
        self.path: Path | None = None

    def __repr__(self) -> str:
        where = f" at '{self.path}'" if self.path else ""
        return f"<Ensemble {self.method} of {len(self.members)} models: {self.task}{where}>"

    # ---- construction
    @classmethod
    def stack(
        cls, members: list[TrainedModel], oof_predictions: list[np.ndarray], y: Any, *, alpha: float = 1.0
    ) -> Ensemble:
        """A stacking ensemble whose meta-model is fitted on OUT-OF-FOLD predictions: for each member,
        what it predicted for rows it was not trained on (probabilities (N, classes) for classifiers,
        values (N,) or (N, targets) in the target's units for regression), and `y`, those rows' true
        labels or values. Predictions on the members' own training rows would teach the meta-model to
        trust whichever member overfits most. `alpha` is the L2 penalty (1/C for the classifier)."""
        _check_members(members)
        first = members[0]
        if first.task == "regression":
            values = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
            features = _oof_features(members, oof_predictions, len(values))
            meta_model = _fit_ridge(features, values, alpha)
        else:
            codes = _codes(first, y)
            features = _oof_features(members, oof_predictions, len(codes))
            meta_model = _fit_logistic(features, codes, len(first.classes), alpha)
        return cls(members, "stacking", meta_model=meta_model)

    @classmethod
    def from_bundles(
        cls,
        paths: list[str | Path],
        method: str = "mean",
        weights: list[float] | None = None,
        tracking_uri: str | None = None,
    ) -> Ensemble:
        """An ensemble of saved models: bundle folders or registered models (`models:/NAME@ALIAS`)."""
        from strata.api import load

        return cls([load(p, tracking_uri) for p in paths], method, weights)

    # ---- facts (those of every member)
    @property
    def task(self) -> str:
        return self.members[0].task

    @property
    def classes(self) -> list:
        return self.members[0].classes

    @property
    def recipe(self) -> Recipe:
        """The first member's recipe: how the input is read (`data.sequences`, the target's name)."""
        return self.members[0].recipe

    def read(self, data: Any) -> pd.DataFrame:
        return self.members[0].read(data)

    # ---- predictions
    def outputs(self, data: Any) -> np.ndarray:
        """Every member's predictions, (members, N, classes) probabilities or (members, N, targets)
        values in the target's units (each member decodes its own scaling)."""
        frame = self.read(data)
        outputs = []
        for member in self.members:
            predictions = member._predictions(member.read(frame))
            outputs.append(predictions if self.task != "regression" else member._values(predictions))
        return np.stack(outputs)

    def _combined(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(the members' outputs, their combination): probabilities (N, classes) or vote shares, or
        values (N, targets) in the target's units."""
        outputs = self.outputs(frame)
        if self.method == "stacking":
            return outputs, _apply(self.meta_model, _features(outputs))
        weights = np.ones(len(self.members)) if self.weights is None else np.asarray(self.weights)
        weights = weights / weights.sum()
        if self.method == "vote":
            return outputs, _vote_shares(outputs, weights)
        return outputs, np.tensordot(weights, outputs, axes=1)  # (N, K): the weighted mean over members

    def _labels(self, outputs: np.ndarray, combined: np.ndarray) -> np.ndarray:
        if self.method != "vote":
            return self.members[0]._labels(combined)
        tied = np.isclose(combined, combined.max(1, keepdims=True))  # classes with the most votes
        mean = outputs.mean(0)  # (N, classes): the mean probability decides between tied classes
        return np.asarray(self.classes, dtype=object)[np.where(tied, mean, -np.inf).argmax(1)]

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, (N, classes), columns in the order of `classes` (vote shares for `vote`)."""
        if self.task == "regression":
            raise DataError("predict_proba needs classifiers; this ensemble does regression (use predict)")
        return self._combined(self.read(data))[1]

    def predict(self, data: Any) -> np.ndarray:
        """Class labels, or values in the target's units ((N,) for one target, (N, targets) for several)."""
        outputs, combined = self._combined(self.read(data))
        if self.task != "regression":
            return self._labels(outputs, combined)
        return combined[:, 0] if combined.shape[1] == 1 else combined

    def predict_frame(self, data: Any) -> pd.DataFrame:
        """Predictions as a table with the input's index, with the columns `TrainedModel.predict_frame` has."""
        from strata._labels import prediction_table

        frame = self.read(data)
        names = self.members[0].pipeline.target["columns"]
        return prediction_table(frame.index, self.classes, names, *self.predict_arrays(frame))

    def predict_arrays(self, data: Any) -> tuple[np.ndarray | None, np.ndarray]:
        """(labels, probabilities or vote shares) for classifiers, (None, values (N, targets)) for
        regression: what `predict_frame` tabulates, without the table."""
        outputs, combined = self._combined(self.read(data))
        return (self._labels(outputs, combined) if self.task != "regression" else None), combined

    def evaluate(self, data: Any, *, bootstrap: int | None = 0, confidence: float | None = None) -> dict[str, Any]:
        """Metrics on labelled data, as `TrainedModel.evaluate` gives them, with bootstrap intervals
        (`ci`) from `bootstrap` resamples (0: none; None: the first member's `evaluate.bootstrap`).
        The target is encoded by the first member."""
        from strata.evaluation.bootstrap import attach
        from strata.evaluation.metrics import score

        first = self.members[0]
        bootstrap = first.recipe.evaluate.bootstrap if bootstrap is None else bootstrap
        if bootstrap < 0:
            raise DataError(f"bootstrap: expected a number of resamples >= 0, got {bootstrap}")
        level = first.recipe.evaluate.confidence if confidence is None else confidence
        if not 0.5 < level < 1:
            raise DataError(f"confidence: expected a level between 0.5 and 1, got {level}")
        frame = self.read(data)
        state = first.pipeline.target
        y, predictions = first.pipeline.encode_target(frame), self._combined(frame)[1]
        if self.task == "regression":  # back to the first member's scaling, which `score` decodes
            predictions = (predictions - np.asarray(state["mean"])) / np.asarray(state["std"])
        metrics = score(self.task, state, y, predictions)
        attach(metrics, state, y, predictions, bootstrap, first.recipe.seeds.data, level)
        return metrics

    # ---- files
    def manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "method": self.method,
            "weights": self.weights,
            "meta_model": self.meta_model,
            "members": [f"members/{i}" for i in range(len(self.members))],
            "task": self.task,
            "target": list(self.members[0].pipeline.target["columns"]),
            "classes": self.classes,
        }

    def save(self, path: str | Path) -> Path:
        """Write `ensemble.json` and one bundle per member under `members/`, atomically: a reader sees
        the old folder or the new one, never half."""
        path = Path(path)
        if not (path / MANIFEST).is_file():  # an ensemble may replace an ensemble, or a single bundle
            check_destination(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            (tmp / MANIFEST).write_text(json.dumps(self.manifest(), indent=1, allow_nan=False))
            _share(tmp)  # before members/ exists: _share gives file permissions to what it finds
            for i, member in enumerate(self.members):
                member.save(tmp / "members" / str(i))
            _swap_in(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for i, member in enumerate(self.members):
            member.path = path / "members" / str(i)
        self.path = path
        return path


def load(path: str | Path) -> Ensemble:
    """Load an ensemble folder (one with `ensemble.json`). Raises BundleError naming what is wrong."""
    from strata.bundle import load as load_bundle

    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise BundleError(f"ensemble '{path}' not found (expected a folder with {MANIFEST} and members/)")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BundleError(f"ensemble '{path}' is corrupt: {MANIFEST}: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("members"), list):
        raise BundleError(f"ensemble '{path}' is corrupt: {MANIFEST} has no list of members")
    version = manifest.get("format")
    if not isinstance(version, int) or version > FORMAT:
        raise BundleError(f"ensemble '{path}' has format {version!r}; this Strata reads up to format {FORMAT}")
    members = [load_bundle(_inside(path, folder)) for folder in manifest["members"]]
    try:
        method, weights, meta_model = manifest.get("method"), manifest.get("weights"), manifest.get("meta_model")
        ensemble = Ensemble(members, method, weights, meta_model)
    except (DataError, RecipeError) as err:
        raise BundleError(f"ensemble '{path}' is corrupt: {err}") from None
    if ensemble.task != manifest.get("task") or _keys(ensemble.classes) != _keys(manifest.get("classes") or []):
        raise BundleError(f"ensemble '{path}' is corrupt: its members' task or classes differ from {MANIFEST}'s")
    ensemble.path = path
    return ensemble


def bagging(
    recipe: Recipe | dict[str, Any] | str | Path,
    data: pd.DataFrame | str | Path | None = None,
    n: int = 5,
    seed: int = 0,
    out: str | Path | None = None,
) -> Ensemble:
    """Train `n` members, each on a bootstrap resample of the data (rows drawn with replacement,
    seeded by `seed`), member i with `recipe.seed + i`; return their mean ensemble, saved to `out`
    when given. Tracking is off unless the recipe sets `track:` itself.

    Each member splits its own resample, so a row drawn twice can fall in a member's training and
    test split: the members' held-out metrics are optimistic. Evaluate the ensemble on rows held
    out before bagging."""
    from strata.api import as_recipe, train
    from strata.data.sources import load_frame

    recipe = as_recipe(recipe)
    if n < 2:
        raise RecipeError(f"bagging: n must be at least 2 members, got {n}")
    if recipe.data.sequences is not None or recipe.forecast is not None:
        raise RecipeError("bagging resamples rows; it does not take data.sequences or forecast recipes")
    if out is not None and not (Path(out) / MANIFEST).is_file():
        check_destination(Path(out))  # before the work, not after it
    frame = load_frame(recipe.data, data)
    rows = resamples(len(frame), n, seed)
    tracked = "track" in recipe.model_fields_set and recipe.track.enabled
    members = []
    for i, drawn in enumerate(rows):
        member_recipe = recipe.override({"seed": recipe.seed + i, "track.enabled": tracked})
        sample = frame.iloc[drawn].reset_index(drop=True)
        model = train(member_recipe, data=sample, quiet=True, run_tags={"strata.bagging.member": str(i)}).model
        model.meta["bagging"] = {"member": i, "members": n, "seed": seed, "rows": len(sample)}
        members.append(model)
    ensemble = Ensemble(members, "mean")
    if out is not None:
        ensemble.save(out)
    return ensemble


def resamples(n_rows: int, n: int, seed: int) -> np.ndarray:
    """(n, n_rows) row positions: `n` bootstrap resamples, each drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n_rows, size=(n, n_rows))


# ---------------------------------------------------------------------------------- checks
def _keys(classes: list) -> list[str]:
    return [level_key(c) for c in classes]


def _check_members(members: Any) -> None:
    """Every member is a TrainedModel with the first one's task, target columns and classes."""
    if not isinstance(members, list | tuple) or len(members) < 2:
        raise DataError(f"an ensemble needs a list of at least 2 trained models, got {members!r:.80}")
    for i, member in enumerate(members):
        if not isinstance(member, TrainedModel):
            raise DataError(f"ensemble member {i} is a {type(member).__name__}, not a TrainedModel (a trained bundle)")
    first = members[0]
    if first.task == "forecast":
        raise DataError("ensembles take classifiers or regression models; member 0 forecasts")
    facts = {
        "task": lambda m: m.task,
        "target": lambda m: list(m.pipeline.target["columns"]),
        "classes": lambda m: _keys(m.classes),
    }
    for i, member in enumerate(members[1:], start=1):
        for name, fact in facts.items():
            if fact(member) != fact(first):
                raise DataError(
                    f"ensemble member {i} ({_name(member)}) has {name} {fact(member)}, but member 0 "
                    f"({_name(first)}) has {fact(first)}; members must share task, target and classes"
                )


def _name(member: TrainedModel) -> str:
    return f"'{member.path}'" if member.path else repr(member.recipe.display_name)


def _check_method(method: str, weights: Any, meta_model: Any, members: list[TrainedModel]) -> None:
    if method not in METHODS:
        raise RecipeError(f"ensemble method {method!r} is unknown{did_you_mean(method, METHODS)}; "
                          f"choose one of {', '.join(METHODS)}")  # fmt: skip
    if method == "vote" and members[0].task == "regression":
        raise RecipeError("ensemble method 'vote' needs classifiers; for regression use 'mean' or 'stacking'")
    if method == "stacking":
        if weights is not None:
            raise RecipeError("weights apply to 'mean' and 'vote'; 'stacking' learns its own from the meta-model")
        _check_meta_model(meta_model, members)
    elif meta_model is not None:
        raise RecipeError(f"a meta-model is used by 'stacking' only, not by {method!r}")
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64) if isinstance(weights, list | tuple) else np.array([np.nan])
        if w.shape != (len(members),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise RecipeError(f"ensemble weights: expected {len(members)} numbers >= 0, not all 0, got {weights!r:.80}")


def _check_meta_model(meta_model: Any, members: list[TrainedModel]) -> None:
    if meta_model is None:
        raise RecipeError("'stacking' needs a meta-model fitted on out-of-fold predictions: build the ensemble "
                          "with Ensemble.stack(members, oof_predictions, y)")  # fmt: skip
    first = members[0]
    kind = "ridge" if first.task == "regression" else "logistic"
    width = len(first.classes) if kind == "logistic" else len(first.pipeline.target["columns"])
    rows = width if kind == "ridge" or width > 2 else 1  # a binary logistic regression has one row
    try:
        coef, intercept = np.asarray(meta_model["coef"], dtype=float), np.asarray(meta_model["intercept"], dtype=float)
        ok = meta_model["kind"] == kind and coef.shape == (rows, len(members) * width) and intercept.shape == (rows,)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise RecipeError(f"the stacking meta-model does not fit these members: expected a {kind} model "
                          f"with coef of shape ({rows}, {len(members) * width}) and intercept ({rows},)")  # fmt: skip


# ------------------------------------------------------------------------------- combining
def _vote_shares(outputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, classes): each class's (weighted) share of the members' votes."""
    votes = np.eye(outputs.shape[2])[outputs.argmax(2)]  # (members, N, classes) one-hot
    return np.tensordot(weights, votes, axes=1)


def _features(outputs: np.ndarray) -> np.ndarray:
    """(members, N, K) -> (N, members * K): member 0's columns first."""
    return outputs.transpose(1, 0, 2).reshape(outputs.shape[1], -1)


def _apply(meta_model: dict[str, Any], features: np.ndarray) -> np.ndarray:
    z = features @ np.asarray(meta_model["coef"]).T + np.asarray(meta_model["intercept"])  # (N, outputs)
    if meta_model["kind"] == "ridge":
        return z
    if z.shape[1] == 1:  # binary: the positive class's logit
        p = 1 / (1 + np.exp(-z))
        return np.hstack([1 - p, p])
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def _codes(first: TrainedModel, y: Any) -> np.ndarray:
    import pandas as pd

    from strata.features import target

    column = first.pipeline.target["columns"][0]
    return target.encode(pd.DataFrame({column: np.asarray(y, dtype=object).ravel()}), first.pipeline.target)


def _oof_features(members: list[TrainedModel], oof: Any, n_rows: int) -> np.ndarray:
    """Check the out-of-fold predictions against the members and stack them into (N, members * K)."""
    first = members[0]
    regression = first.task == "regression"
    width = len(first.pipeline.target["columns"]) if regression else len(first.classes)
    what = f"values (N, {width})" if regression else f"probabilities (N, {width})"
    if not isinstance(oof, list | tuple) or len(oof) != len(members):
        got = f"{len(oof)} arrays" if isinstance(oof, list | tuple) else type(oof).__name__
        raise DataError(f"stacking: expected out-of-fold predictions as a list of {len(members)} arrays, one per "
                        f"member, got {got}")  # fmt: skip
    arrays = []
    for i, predictions in enumerate(oof):
        a = np.asarray(predictions, dtype=np.float64)
        a = a.reshape(-1, 1) if regression and a.ndim == 1 else a
        if a.shape != (n_rows, width) or not np.isfinite(a).all():
            raise DataError(f"stacking: out-of-fold predictions of member {i} have shape {a.shape}; expected "
                            f"{what} with N = {n_rows} (the length of y), all finite")  # fmt: skip
        if not regression and not np.allclose(a.sum(1), 1, atol=1e-3):
            raise DataError(f"stacking: out-of-fold predictions of member {i} are not probabilities (rows must "
                            "sum to 1); pass predict_proba's output")  # fmt: skip
        arrays.append(a)
    return _features(np.stack(arrays))


def _fit_logistic(features: np.ndarray, codes: np.ndarray, k: int, alpha: float) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    missing = sorted(set(range(k)) - set(codes.tolist()))
    if missing:
        raise DataError(f"stacking: y has no rows of class number {missing[0]}; the meta-model needs every class")
    fitted = LogisticRegression(C=1 / alpha, max_iter=1000).fit(features, codes)  # multinomial for 3+ classes
    return {"kind": "logistic", "coef": fitted.coef_.tolist(), "intercept": fitted.intercept_.tolist()}


def _fit_ridge(features: np.ndarray, values: np.ndarray, alpha: float) -> dict[str, Any]:
    from sklearn.linear_model import Ridge

    fitted = Ridge(alpha=alpha).fit(features, values)
    coef = np.atleast_2d(fitted.coef_)
    return {"kind": "ridge", "coef": coef.tolist(), "intercept": np.atleast_1d(fitted.intercept_).tolist()}


def _inside(root: Path, folder: Any) -> Path:
    """A member folder named in the manifest, which must lie inside the ensemble's folder."""
    if not isinstance(folder, str) or Path(folder).is_absolute() or ".." in Path(folder).parts:
        raise BundleError(f"ensemble '{root}' is corrupt: member folder {folder!r} is not inside it")
    return root / folder


def stack(
    recipes: list[Recipe | dict[str, Any] | str | Path],
    data: pd.DataFrame | str | Path | None = None,
    *,
    folds: int = 5,
    out: str | Path | None = None,
) -> Ensemble:
    """Stacking from recipes: each recipe is cross-validated on the same folds (the first recipe's
    data seed) for its out-of-fold predictions, then trained on all the data; the meta-model learns
    from the out-of-fold predictions how much to trust each. Saved to `out` when given."""
    from strata.api import as_recipe, train
    from strata.crossval import cross_validate
    from strata.data.sources import load_frame

    specs = [as_recipe(r) for r in recipes]
    if len(specs) < 2:
        raise RecipeError("stack: give at least two recipes to combine")
    frame = load_frame(specs[0].data, data)
    oof, members = [], []
    for spec in specs:
        result = cross_validate(spec, frame, folds=folds, fold_seed=specs[0].seeds.data)
        rows = result.oof.sort_values("row")
        probabilities = [c for c in rows.columns if c.startswith("proba_")]
        oof.append(rows[probabilities].to_numpy() if probabilities else rows["prediction"].to_numpy())
        members.append(train(spec.override({"split.test": 0.0}), frame, quiet=True).model)
    y = frame[specs[0].data.targets[0]].to_numpy()
    ensemble = Ensemble.stack(members, oof, y)
    if out is not None:
        ensemble.save(out)
    return ensemble
