"""Forecast evaluation: metrics in the target's units, naive baselines, conformal intervals, a plot.

A forecast is always scored beside two baselines that need no training, on the same windows:
naive (repeat the last observed value) and seasonal naive (repeat the value one season back).
A model that does not beat them has learned nothing worth deploying, whatever its MAE looks like.

Arrays are (N windows, horizon steps) in the target's own units (see `timeseries.unscale`).

>>> truth, model = np.array([[10.0, 12.0]]), np.array([[11.0, 12.0]])
>>> m = forecast_metrics(truth, model, scale_naive=2.0, scale_seasonal=None)
>>> m["mae"], m["mase_naive"], m["mae_by_step"], m["notes"]["mase_seasonal"]
(0.5, 0.25, [1.0, 0.0], 'no seasonal in-sample error to scale by: no training series is long enough')
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from strata.evaluation.metrics import nonzero_targets

if TYPE_CHECKING:
    import pandas as pd

    from strata.data.timeseries import Windows


def forecast_metrics(
    truth: np.ndarray, predicted: np.ndarray, scale_naive: float | None, scale_seasonal: float | None
) -> dict[str, Any]:
    """MAE, RMSE, MAPE, sMAPE and MASE over every window and horizon step, and MAE per step.

    MASE (Hyndman and Koehler 2006) divides the MAE by `scale_*`, the in-sample MAE of the one-step
    naive or seasonal-naive forecast over the training period (see `scales`): below 1, the model's
    errors are smaller than that baseline's one-step errors on data it had seen. A metric that is
    undefined is None, with the reason under `notes`.
    """
    truth, predicted = _pair(truth, predicted)
    if not np.isfinite(predicted).all():
        bad = int((~np.isfinite(predicted)).any(axis=1).sum())
        return {"error": f"the forecast has NaN or infinity in {bad} of {len(predicted)} windows"}
    error = predicted - truth
    mae = float(np.abs(error).mean())
    notes: dict[str, str] = {}
    metrics = {
        "mae": mae,
        "rmse": float(np.sqrt((error**2).mean())),
        "mape": _mape(truth, error, notes),
        "smape": _smape(truth, predicted),
        "mase_naive": _mase(mae, scale_naive, "naive", notes),
        "mase_seasonal": _mase(mae, scale_seasonal, "seasonal", notes),
        "mae_by_step": np.abs(error).mean(axis=0).tolist(),
        "windows": int(truth.shape[0]),
        "horizon": int(truth.shape[1]),
    }
    return {**metrics, "notes": notes}


def _pair(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    if truth.shape != predicted.shape or truth.ndim not in (1, 2) or not truth.size:
        raise ValueError(f"truth and forecast must share a non-empty (N, horizon) shape; got {truth.shape} and "
                         f"{predicted.shape}")  # fmt: skip
    return truth.reshape(len(truth), -1), predicted.reshape(len(predicted), -1)


def _mape(truth: np.ndarray, error: np.ndarray, notes: dict[str, str]) -> float | None:
    """A fraction (0.05 is 5%), as MAPE is for regression. Undefined where the truth is zero, so None
    for the whole set rather than a number that silently leaves those steps out (or an infinity)."""
    zeros = int((~nonzero_targets(truth.ravel())).sum())
    if zeros:
        notes["mape"] = f"the truth is zero at {zeros} of {truth.size} steps, where a percentage error is undefined"
        return None
    return float(np.abs(error / truth).mean())


def _smape(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Symmetric MAPE as a fraction, 0 to 2 (0 to 200%); a step where truth and forecast are both zero is exact."""
    scale = np.abs(truth) + np.abs(predicted)
    ratio = np.divide(2 * np.abs(predicted - truth), scale, out=np.zeros_like(scale), where=scale > 0)
    return float(ratio.mean())


def _mase(mae: float, scale: float | None, name: str, notes: dict[str, str]) -> float | None:
    if scale is None:
        notes[f"mase_{name}"] = f"no {name} in-sample error to scale by: no training series is long enough"
        return None
    if scale == 0:
        notes[f"mase_{name}"] = f"the {name} in-sample error is 0 (the training series do not vary)"
        return None
    return mae / scale


def scales(frame: pd.DataFrame, plan: dict[str, Any]) -> dict[str, Any]:
    """The MASE denominators: in-sample MAE of the one-step naive (y[t-1]) and seasonal-naive
    (y[t-season]) forecasts over the training period, pooled over every series' own differences.
    A series no longer than one season adds nothing to the seasonal one; None when none is longer."""
    from strata.data.timeseries import history

    season = plan["season"]
    naive, seasonal = [], []
    for _, values in history(frame, plan, ("train",)).values():
        naive.append(np.abs(np.diff(values)))
        if len(values) > season:
            seasonal.append(np.abs(values[season:] - values[:-season]))
    return {"naive": _pooled_mean(naive), "seasonal": _pooled_mean(seasonal), "season": season}


def _pooled_mean(parts: list[np.ndarray]) -> float | None:
    joined = np.concatenate(parts) if parts else np.array([])
    return float(joined.mean()) if len(joined) else None


def baselines(frame: pd.DataFrame, plan: dict[str, Any], windows: Windows) -> dict[str, np.ndarray]:
    """Naive and seasonal-naive forecasts (N, h) for `windows`, from the true history in `frame`.

    Naive repeats the value at each window's origin. Seasonal naive forecasts step k (1-based)
    with y[origin + k - season * ceil(k / season)], the latest value of the same phase; with
    season 1 it is naive. Where a series has less than a season of history before the origin,
    it falls back to naive (there is nothing a season back to copy).
    """
    from strata.data.timeseries import lagged_targets

    season, h = plan["season"], windows.times.shape[1]
    past = lagged_targets(frame, plan, windows, season)  # column j: j steps before the origin
    naive = np.repeat(past[:, :1], h, axis=1)
    k = np.arange(1, h + 1)
    seasonal = past[:, season * np.ceil(k / season).astype(int) - k]
    return {"naive": naive, "seasonal_naive": np.where(np.isnan(seasonal), naive, seasonal)}


def compare(
    truth: np.ndarray, model: np.ndarray, baseline_preds: dict[str, np.ndarray], scale: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """{"model": metrics, "naive": metrics, "seasonal_naive": metrics}, each from `forecast_metrics`
    with the same MASE scales (`scales`), so the rows of a report compare like with like."""
    forecasts = {"model": model, **baseline_preds}
    return {name: forecast_metrics(truth, pred, scale["naive"], scale["seasonal"]) for name, pred in forecasts.items()}


def intervals(val_truth: np.ndarray, val_pred: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Per horizon step, the (lower, upper) offsets to add to a forecast for a `confidence` interval.

    Split conformal prediction: the offsets are order statistics of the validation residuals
    (truth - forecast) of each step, with the finite-sample correction, so each tail misses at most
    (1 - confidence) / 2 of new residuals that are exchangeable with them. Forecast residuals are
    serially correlated and windows overlap, so the coverage is approximate; check it on the test
    period with `coverage`. With too few validation windows for the level asked, the extreme
    residuals are used and the interval may be narrower than asked.

    >>> lower, upper = intervals(np.arange(10.0)[:, None], np.full((10, 1), 4.5), 0.8)
    >>> lower.tolist(), upper.tolist()
    ([-4.5], [4.5])
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    truth, pred = _pair(val_truth, val_pred)
    residuals = np.sort(truth - pred, axis=0)
    n, tail = len(residuals), (1 - confidence) / 2
    upper = min(math.ceil((n + 1) * (1 - tail) - 1e-9), n)  # 1-based ranks among n residuals
    lower = max(math.floor((n + 1) * tail + 1e-9), 1)
    return residuals[lower - 1], residuals[upper - 1]


def coverage(truth: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """The share of true values inside [lower, upper]."""
    truth = np.asarray(truth, dtype=np.float64)
    return float(((truth >= lower) & (truth <= upper)).mean())


def forecast_plot(
    history_times: np.ndarray,
    history: np.ndarray,
    truth_times: np.ndarray,
    truth: np.ndarray | None,
    forecast: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    title: str = "",
    confidence: float | None = None,
) -> bytes:
    """One series as PNG bytes: its history, the forecast (with its interval shaded) and, when
    known, what really happened over the forecast's time steps."""
    from strata.evaluation.plots import _figure, _png

    fig = _figure(9, 4.2)
    ax = fig.subplots()
    ax.plot(history_times, history, color="tab:gray", linewidth=1, label="history")
    marker = "o" if len(truth_times) <= 30 else None  # a short horizon still shows its points
    if truth is not None:
        ax.plot(truth_times, truth, color="black", linewidth=1.2, marker=marker, ms=3, label="actual")
    ax.plot(truth_times, forecast, color="tab:blue", linewidth=1.5, marker=marker, ms=3, label="forecast")
    if lower is not None and upper is not None:
        label = f"{confidence:.0%} interval" if confidence else "interval"
        ax.fill_between(truth_times, lower, upper, color="tab:blue", alpha=0.2, linewidth=0, label=label)
    if len(history_times):
        ax.axvline(history_times[-1], color="tab:red", linestyle="--", linewidth=1, label="forecast origin")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    if np.issubdtype(np.asarray(truth_times).dtype, np.datetime64):
        fig.autofmt_xdate()
    if title:
        ax.set_title(title)
    return _png(fig)
