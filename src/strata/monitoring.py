"""Data drift: how far new rows (and the model's predictions on them) have moved from the training rows.

At training time `reference` summarises the training rows as plain JSON: decile bins and a quantile
sample per numeric column (text columns by their length in characters), level shares per categorical
or binary column, and the distribution of the predictions. Later, `drift` compares any table against
it, feature by feature:

    PSI          population stability index over the bins/levels (+ missing), the verdict's measure
    KS           two-sample Kolmogorov-Smirnov statistic and p-value (numeric), against the stored sample
    chi-square   observed level counts against the reference shares (categorical, binary)
    missing      the change in the share of missing values

`Monitor` keeps a bounded window of recent rows for a server, and `drift_plot` draws a report.

    >>> import numpy as np, pandas as pd
    >>> train = pd.DataFrame({"x": np.arange(100.0)})
    >>> ref = reference(train, [{"name": "x", "kind": "numeric"}], np.zeros(100), "regression", None)
    >>> drift(ref, train, None)["verdict"]
    'stable'
"""

from __future__ import annotations

import itertools
import math
import threading
from typing import Any

import numpy as np
import pandas as pd

from strata._labels import level_key
from strata.errors import DataError, plural
from strata.features._columns import take

FORMAT = 1
PSI_MODERATE, PSI_MAJOR = 0.1, 0.25  # the usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major
P_VALUE = 0.01  # tests below this are reported as significant (the verdict itself comes from PSI)
EPSILON = 1e-4  # an empty bin's share in PSI, so ln(0) never happens
SAMPLE_SIZE = 500  # quantiles of the training values kept for the KS test
TOP_LEVELS = 50  # categorical levels kept by name; the rest share one "<other>" bucket
FEW_ROWS = 30
OTHER, MISSING = "<other>", "<missing>"
VERDICTS = ("stable", "moderate drift", "major drift")
NO_DATA = "no data"
PREDICTIONS = "<predictions>"
THRESHOLDS = {"psi_moderate": PSI_MODERATE, "psi_major": PSI_MAJOR, "p_value": P_VALUE, "epsilon": EPSILON}


# ---- reading values the same way at training and at serving time
def _numbers(column: pd.Series, measure: str) -> np.ndarray:
    """float64 with NaN for missing; text that is not a number and infinities count as missing
    (a monitor reports odd values, it does not refuse them)."""
    if measure == "length":
        lengths = column.astype(str).str.len().to_numpy(dtype=np.float64)
        return np.where(column.isna().to_numpy(), np.nan, lengths)
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isinf(values), np.nan, values)


def _levels(column: pd.Series) -> np.ndarray:
    """String keys (as the feature pipeline reads levels), MISSING for missing values."""
    missing = column.isna().to_numpy()
    keys = np.array([level_key(v) for v in column.to_numpy(dtype=object)], dtype=object)
    keys[missing] = MISSING
    return keys


def _values(entry: dict[str, Any], column: pd.Series) -> np.ndarray:
    return _numbers(column, entry["measure"]) if entry["kind"] == "numeric" else _levels(column)


# ---- reference summaries
def _numeric_summary(values: np.ndarray) -> dict[str, Any]:
    present = np.sort(values[~np.isnan(values)])
    if len(present):
        deciles = np.unique(np.quantile(present, np.linspace(0, 1, 11)))  # min, 10%, ..., max
        # a last edge just above the max: the max is a bin of its own, and values beyond the training
        # range (either side) fall into bins that were empty in training, so a constant or discrete
        # column that moves still changes bins
        edges = np.append(deciles, np.nextafter(deciles[-1], np.inf))
        size = min(SAMPLE_SIZE, len(present))
        sample = present if size == len(present) else np.quantile(present, np.linspace(0, 1, size))
    else:
        edges, sample = np.array([]), np.array([])
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    n = max(len(values), 1)
    return {
        "kind": "numeric",
        "edges": edges.tolist(),  # bins: (-inf, min), [min, d1), ..., [d9, max), [max], (max, inf)
        "shares": (counts / n).tolist(),  # of all rows, so shares + missing sum to 1
        "missing": float((len(values) - len(present)) / n),
        "sample": sample.tolist(),
        "rows": len(values),
    }


def _categorical_summary(keys: np.ndarray) -> dict[str, Any]:
    present = keys[keys != MISSING]
    levels, counts = np.unique(present.astype(str), return_counts=True)
    order = np.lexsort((levels, -counts))[:TOP_LEVELS]  # most frequent first, ties by name
    n = max(len(keys), 1)
    return {
        "kind": "categorical",
        "levels": [str(level) for level in levels[order]],
        "shares": (counts[order] / n).tolist(),
        "other": float((counts.sum() - counts[order].sum()) / n),
        "missing": float((len(keys) - len(present)) / n),
        "rows": len(keys),
    }


def _summary(kind: str, column: pd.Series) -> dict[str, Any]:
    measure = {"numeric": "value", "text": "length"}.get(kind, "level")
    summary = (
        _numeric_summary(_numbers(column, measure)) if measure != "level" else _categorical_summary(_levels(column))
    )
    return {**summary, "type": kind, "measure": measure}


def _prediction_values(entry: dict[str, Any], predictions: np.ndarray) -> np.ndarray:
    """Predicted labels (classification: argmax of (N, classes) scores, or labels as given when 1-D)
    or the first target's values (regression)."""
    predictions = np.asarray(predictions)
    if entry["kind"] == "numeric":
        values = predictions.reshape(len(predictions), -1)[:, 0] if predictions.ndim > 1 else predictions
        return values.astype(np.float64)
    classes = entry["classes"]
    if predictions.ndim == 1:
        return np.array([level_key(v) for v in predictions], dtype=object)
    if predictions.shape[1] == 1 and len(classes) == 2:  # one probability: of the second class
        index = (predictions[:, 0] >= 0.5).astype(np.int64)
    else:
        index = predictions.argmax(axis=1)
    return np.asarray(classes, dtype=object)[index]


def _prediction_reference(predictions: np.ndarray, task: str, classes: list | None) -> dict[str, Any] | None:
    if task == "regression":
        entry: dict[str, Any] = {"kind": "numeric", "measure": "value"}
        return {**entry, **_numeric_summary(_prediction_values(entry, predictions)), "task": task}
    if task in ("binary", "multiclass", "classification"):
        if not classes:
            raise DataError(f"reference: task {task!r} needs the list of classes (got {classes!r})")
        entry = {"kind": "categorical", "classes": [level_key(c) for c in classes], "measure": "level"}
        labels = _prediction_values(entry, predictions)
        n = max(len(labels), 1)
        # every class keeps its bucket, in class order, even when it is never predicted
        shares = [float(np.sum(labels == c) / n) for c in entry["classes"]]
        other = float(np.sum(~np.isin(labels, entry["classes"])) / n)
        summary = {"levels": entry["classes"], "shares": shares, "other": other, "missing": 0.0, "rows": len(labels)}
        return {**entry, **summary, "task": task}
    return None


def reference(
    frame: pd.DataFrame,
    columns: list[dict[str, Any]],
    predictions: np.ndarray | None,
    task: str,
    classes: list | None,
    rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """The training rows' distributions, as plain JSON, for `drift` to compare new rows against.

    `columns` are the pipeline's (`[{"name", "kind", ...}]`); image and sequence columns are skipped
    (noted). `predictions` are the model's outputs on the same rows: (N, classes) scores for a
    classifier, values ((N,) or (N, targets)) for regression. `rows` (positions) summarises those
    rows of `frame` only, a column at a time (no copy of the table)."""
    return with_predictions(feature_reference(frame, columns, task, rows), predictions, classes)


def feature_reference(
    frame: pd.DataFrame, columns: list[dict[str, Any]], task: str, rows: np.ndarray | None = None
) -> dict[str, Any]:
    """`reference` without the predictions, which `with_predictions` adds: training summarises the
    table before it trains, so it need not keep the table until the model can predict."""
    features, notes = {}, []
    for col in columns:
        name, kind = col["name"], col["kind"]
        if kind in ("image", "sequence"):
            notes.append(f"{name}: {kind} column, not monitored (drift is measured on tabular and text columns)")
            continue
        if name not in frame.columns:
            raise DataError(f"reference: column '{name}' is not in the training rows given")
        features[name] = _summary(kind, take(frame, name, rows))
        if kind == "text":
            notes.append(f"{name}: text column, monitored by its length in characters")
    n_rows = len(frame) if rows is None else len(rows)
    return {"format": FORMAT, "rows": n_rows, "task": task, "features": features, "predictions": None, "notes": notes}


def with_predictions(ref: dict[str, Any], predictions: np.ndarray | None, classes: list | None) -> dict[str, Any]:
    """`ref` (from `feature_reference`) with the distribution of the model's predictions on its rows."""
    if predictions is not None and len(predictions) != ref["rows"]:
        raise DataError(f"reference: {len(predictions)} predictions for {plural(ref['rows'], 'row')}; "
                        f"give one per row")  # fmt: skip
    preds = _prediction_reference(predictions, ref["task"], classes) if predictions is not None else None
    note = f"predictions: not monitored (task {ref['task']!r})" if predictions is not None else "no predictions"
    return {**ref, "predictions": preds, "notes": ref["notes"] + ([note] if preds is None else [])}


# ---- comparing
def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population stability index: sum((a - e) * ln(a / e)) over buckets, empty shares set to `epsilon`.

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])), 4)
    0.2747
    """
    e = np.clip(np.asarray(expected, dtype=np.float64), epsilon, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def verdict(value: float | None) -> str:
    if value is None:
        return NO_DATA
    return VERDICTS[2] if value > PSI_MAJOR else VERDICTS[1] if value >= PSI_MODERATE else VERDICTS[0]


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _buckets(entry: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """Bucket labels and reference shares: the bins or levels, then <other> (categorical) and <missing>."""
    if entry["kind"] == "numeric":
        edges = [f"{e:.3g}" for e in entry["edges"][:-1]]  # the last edge is the max's upper side
        inner = [f"{a}-{b}" for a, b in itertools.pairwise(edges)]
        labels = [f"<{edges[0]}", *inner, edges[-1], f">{edges[-1]}"] if edges else ["all"]
        return [*labels, MISSING], np.array([*entry["shares"], entry["missing"]])
    return [*entry["levels"], OTHER, MISSING], np.array([*entry["shares"], entry["other"], entry["missing"]])


def _counts(entry: dict[str, Any], values: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Counts per bucket of `_buckets`, and the levels never seen in training (pooled into <other>)."""
    if entry["kind"] == "numeric":
        missing = np.isnan(values)
        bins = np.searchsorted(np.asarray(entry["edges"]), values[~missing], side="right")
        return np.append(np.bincount(bins, minlength=len(entry["edges"]) + 1), missing.sum()), {}
    index = {level: i for i, level in enumerate(entry["levels"])}
    other, missing = len(index), len(index) + 1
    codes = np.array([missing if k == MISSING else index.get(k, other) for k in values], dtype=np.int64)
    counts = np.bincount(codes, minlength=len(index) + 2)
    levels, seen = np.unique(values[codes == other].astype(str), return_counts=True)
    unseen = dict(sorted(zip(levels.tolist(), seen.tolist(), strict=True), key=lambda kv: -kv[1])[:10])
    return counts, unseen if entry.get("other", 0) == 0 else {}  # with an <other> bucket, rare levels are not news


def _tests(entry: dict[str, Any], values: np.ndarray, counts: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    from scipy import stats

    if entry["kind"] == "numeric":
        present = values[~np.isnan(values)]
        if not len(present) or not entry["sample"]:
            return {"ks_statistic": None, "ks_p_value": None}
        result = stats.ks_2samp(np.asarray(entry["sample"]), present)
        return {"ks_statistic": _finite(result.statistic), "ks_p_value": _finite(result.pvalue)}
    # a bucket empty in training gets half a row's share (a pseudo-count), so one new level is not infinitely unlikely
    shares = np.maximum(expected, 0.5 / max(entry["rows"], 1))
    result = stats.chisquare(counts, counts.sum() * shares / shares.sum())
    return {"chi2": _finite(result.statistic), "chi2_p_value": _finite(result.pvalue)}


def _compare(entry: dict[str, Any], values: np.ndarray) -> dict[str, Any]:
    """One feature's (or the predictions') drift: PSI, its verdict, a test, the shares compared."""
    labels, expected = _buckets(entry)
    counts, unseen = _counts(entry, values)
    n = int(counts.sum())
    if n == 0:
        return {"type": entry.get("type", entry["kind"]), "rows": 0, "psi": None, "verdict": NO_DATA}
    actual = counts / n
    value = psi(expected, actual)
    return {
        "type": entry.get("type", entry["kind"]),
        "rows": n,
        "psi": value,
        "verdict": verdict(value),
        **_tests(entry, values, counts, expected),
        "missing_reference": float(entry["missing"]),
        "missing_current": float(actual[-1]),
        "missing_change": float(actual[-1] - entry["missing"]),
        "buckets": labels,
        "reference": expected.tolist(),
        "current": actual.tolist(),
        **({"unseen": unseen} if unseen else {}),
    }


def _assemble(results: dict[str, Any], preds: dict | None, absent: list[str]) -> dict[str, Any]:
    rows = max((r["rows"] for r in results.values()), default=preds["rows"] if preds else 0)
    everything = [*results.values(), *([preds] if preds else [])]
    seen = [r["verdict"] for r in everything if r["verdict"] != NO_DATA]
    notes = []
    if absent:
        notes.append(f"columns not in the data, not compared: {', '.join(absent)}")
    if 0 < rows < FEW_ROWS:
        notes.append(f"only {plural(rows, 'row')}: the tests have little power, read PSI and p-values with care")
    return {
        "verdict": max(seen, key=VERDICTS.index) if seen else NO_DATA,
        "drifted": [name for name, r in results.items() if r["verdict"] in VERDICTS[1:]],
        "rows": rows,
        "thresholds": THRESHOLDS,
        "features": results,
        "predictions": preds,
        "missing_columns": absent,
        "notes": notes,
    }


def drift(ref: dict[str, Any], frame: pd.DataFrame, predictions: np.ndarray | None) -> dict[str, Any]:
    """How far `frame` (and the `predictions` on it) moved from `ref`, as plain JSON.

    `verdict` is the worst of the features' and the predictions' (by PSI against `thresholds`),
    `drifted` lists the features that are not stable; columns absent from `frame` are listed in
    `missing_columns`."""
    values = {name: _values(entry, frame[name]) for name, entry in ref["features"].items() if name in frame.columns}
    preds = None
    if predictions is not None and ref.get("predictions"):
        preds = _prediction_values(ref["predictions"], predictions)
    return _drift_from_values(ref, values, preds)


def _drift_from_values(ref: dict[str, Any], values: dict[str, np.ndarray], preds: np.ndarray | None) -> dict[str, Any]:
    results = {name: _compare(entry, values[name]) for name, entry in ref["features"].items() if name in values}
    absent = [name for name in ref["features"] if name not in values]
    pred_result = _compare(ref["predictions"], preds) if preds is not None else None
    return _assemble(results, pred_result, absent)


class Monitor:
    """Drift over the most recent `window` rows, for a server: `update` after each prediction,
    `report` whenever asked. Thread-safe; memory is bounded by `window` values per feature."""

    def __init__(self, ref: dict[str, Any], window: int = 1000):
        if window < 1:
            raise ValueError(f"Monitor: window must be at least 1 row, got {window}")
        self.ref = ref
        self.window = window
        self._lock = threading.Lock()
        self._values: dict[str, np.ndarray] = {}
        self._predictions: np.ndarray | None = None
        self._rows_seen = 0

    def _keep(self, old: np.ndarray | None, new: np.ndarray) -> np.ndarray:
        joined = new if old is None else np.concatenate([old, new])
        return joined[-self.window :].copy()  # a copy, so the dropped rows are freed

    def update(self, frame: pd.DataFrame, predictions: np.ndarray | None = None) -> None:
        """Add the rows of `frame` (and the model's `predictions` on them) to the window."""
        # read outside the lock: the slow part, and it touches nothing shared
        new = {name: _values(e, frame[name]) for name, e in self.ref["features"].items() if name in frame.columns}
        preds = None
        if predictions is not None and self.ref.get("predictions"):
            preds = _prediction_values(self.ref["predictions"], predictions)
        with self._lock:
            for name, values in new.items():
                self._values[name] = self._keep(self._values.get(name), values)
            if preds is not None:
                self._predictions = self._keep(self._predictions, preds)
            self._rows_seen += len(frame)

    def report(self) -> dict[str, Any]:
        """`drift` on the window, with `rows_seen` (all rows ever added) and `window`."""
        with self._lock:  # arrays are replaced, never changed in place, so references are a snapshot
            values, preds, seen = dict(self._values), self._predictions, self._rows_seen
        return {**_drift_from_values(self.ref, values, preds), "rows_seen": seen, "window": self.window}


# ---- plot
COLOURS = {"stable": "tab:green", "moderate drift": "tab:orange", "major drift": "tab:red", NO_DATA: "tab:gray"}
MAX_PANELS = 12
MAX_BARS = 14


def _bars(result: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """At most MAX_BARS buckets: the largest (by either share) kept by name, the rest summed into one bar."""
    ref, cur = np.asarray(result["reference"]), np.asarray(result["current"])
    shown = np.flatnonzero(np.maximum(ref, cur) >= 0.002)  # empty tails and buckets are only clutter
    labels, ref, cur = [result["buckets"][i] for i in shown], ref[shown], cur[shown]
    if len(labels) <= MAX_BARS:
        return labels, ref, cur
    keep = np.sort(np.argsort(-np.maximum(ref, cur))[: MAX_BARS - 1])
    rest = np.setdiff1d(np.arange(len(labels)), keep)
    merged = [*(labels[i] for i in keep), "(rest)"]
    return merged, np.append(ref[keep], ref[rest].sum()), np.append(cur[keep], cur[rest].sum())


def _panel(ax: Any, name: str, result: dict[str, Any]) -> None:
    colour = COLOURS[result["verdict"]]
    if result["psi"] is None:
        ax.set_title(f"{name}\nno data", fontsize=9, color=colour)
        ax.set_axis_off()
        return
    labels, ref, cur = _bars(result)
    x = np.arange(len(labels))
    ax.bar(x - 0.2, ref, width=0.4, color="tab:gray", label="reference")
    ax.bar(x + 0.2, cur, width=0.4, color=colour, label="current (colour: verdict)")
    ax.set_xticks(x, [label[:12] for label in labels], rotation=60, ha="right", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(f"{name} ({result['type']})\nPSI {result['psi']:.3f}: {result['verdict']}", fontsize=9, color=colour)
    ax.grid(axis="y", alpha=0.3)


def drift_plot(ref: dict[str, Any], frame: pd.DataFrame | None = None, report: dict[str, Any] | None = None) -> bytes:
    """PNG: reference vs current shares per bin or level, one panel per feature (the 12 with the
    highest PSI) and one for the predictions. Draws `report`, or `drift(ref, frame, None)` when it is None."""
    from strata.evaluation.plots import _figure, _png

    if report is None:
        if frame is None:
            raise ValueError("drift_plot needs a drift report or the frame to compute one from")
        report = drift(ref, frame, None)
    ranked = sorted(report["features"].items(), key=lambda kv: -(kv[1]["psi"] or 0.0))
    panels = ranked[:MAX_PANELS] + ([("predictions", report["predictions"])] if report.get("predictions") else [])
    cols = min(4, max(len(panels), 1))
    rows = max(math.ceil(len(panels) / cols), 1)
    fig = _figure(3.2 * cols, 2.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, result) in zip(axes, panels, strict=False):
        _panel(ax, name, result)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    hidden = len(ranked) - MAX_PANELS
    more = f" ({hidden} more features not shown)" if hidden > 0 else ""
    title = f"Drift on {plural(report['rows'], 'row')}: {report['verdict']}{more}"
    fig.suptitle(title, color=COLOURS[report["verdict"]])
    if panels:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    return _png(fig)
