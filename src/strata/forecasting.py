"""Forecasting runs: the steps of `strata.workflow` for a recipe with a `forecast:` section.

The table is cut by time (never at random), windowed into `lookback` steps of the past and the
`horizon` steps that follow, scaled per series with the training period's statistics, and a
sequence model learns the windows. Evaluation is in the target's units, on every test window, next
to the naive and seasonal-naive forecasts of the same windows (always reported: a forecast that
does not beat them is not worth deploying), with MASE and a split-conformal interval from the
validation residuals.

`ForecastPipeline` is the fitted plan behind the interface the rest of Strata reads from a
`Pipeline` (columns, target, notes, JSON), so bundles, tracking and cards need no special case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from strata.errors import DataError, did_you_mean

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from strata.recipe import Recipe
    from strata.workflow import Fitted, Prepared

FORMAT = 1
PLOTTED_SERIES = 3  # forecast plots drawn, one per series, for the first few series


@dataclass
class ForecastPipeline:
    plan: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    # ---- the Pipeline interface
    @property
    def columns(self) -> list[dict[str, Any]]:
        """One `sequence` input: the target's past and each covariate's, `lookback` steps."""
        names = [self.plan["target"], *self.plan["covariates"]]
        state = {"names": names, "features": len(names), "max_length": self.plan["lookback"]}
        return [{"name": "window", "kind": "sequence", "state": state}]

    @property
    def target(self) -> dict[str, Any]:
        return {"task": "forecast", "columns": [self.plan["target"]], "horizon": self.plan["horizon"]}

    @property
    def task(self) -> str:
        return "forecast"

    @property
    def numeric_width(self) -> int:
        return 0

    @property
    def embeddings(self) -> list[tuple[int, int]]:
        return []

    @property
    def input_names(self) -> list[str]:
        plan = self.plan
        return [plan["time"], *([plan["series"]] if plan["series"] else []), plan["target"], *plan["covariates"]]

    @property
    def outputs(self) -> int:
        """What the network predicts: every horizon step (direct), or the next one (recursive)."""
        return 1 if self.plan["strategy"] == "recursive" else self.plan["horizon"]

    def column_for(self, slot: str) -> dict[str, Any] | None:
        return self.columns[0] if slot == "sequence" else None

    def check_columns(self, frame: pd.DataFrame) -> None:
        missing = [n for n in self.input_names if n not in frame.columns]
        if missing:
            hint = did_you_mean(missing[0], [c for c in frame.columns if c not in self.input_names])
            raise DataError(f"data is missing column '{missing[0]}'{hint}; a forecast needs the history of: "
                            f"{', '.join(self.input_names)}")  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": "forecast", "plan": self.plan}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> ForecastPipeline:
        if state.get("format") != FORMAT:
            raise DataError(f"pipeline.json has format {state.get('format')!r}; this Strata reads format {FORMAT}")
        return cls(plan=state["plan"])


@dataclass
class Evaluation:
    """The windows a forecast is judged on (all `horizon` steps), with the frame they came from."""

    frame: pd.DataFrame
    windows: dict[str, Any]  # part -> timeseries.Windows
    confidence: float  # of the interval fitted on the validation residuals
    interval: tuple[np.ndarray, np.ndarray] | None = None  # scaled offsets per horizon step, once fitted


def anchored(x: np.ndarray, y: np.ndarray | None, plan: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Windows as the network sees them: with `anchor: last`, the target's past and future minus
    its last observed value (the level is added back to the forecasts by `forecast_windows`)."""
    if plan.get("anchor", "none") != "last":
        return x, y
    level = x[:, -1:, 0]  # (N, 1)
    x = x.copy()
    x[:, :, 0] -= level
    return x, None if y is None else y - level


def _tensors(windows: Any, plan: dict[str, Any]) -> Any:
    import torch

    from strata.data.batches import TensorSet

    x, y = anchored(windows.x, windows.y, plan)
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    lengths = torch.full((len(x),), x.shape[1], dtype=torch.int64)
    return TensorSet({"sequence": x, "lengths": lengths}, torch.from_numpy(np.asarray(y, dtype=np.float32)))


def prepare(recipe: Recipe, frame: pd.DataFrame) -> Prepared:
    """Cut by time, fit the plan on the training period, window every part."""
    from strata.data import timeseries
    from strata.data.sources import frame_hash
    from strata.data.split import Split
    from strata.workflow import Prepared

    target = recipe.data.targets[0]
    plan = timeseries.fit_plan(frame, recipe.forecast, target, recipe.split.test, recipe.split.val)
    plan["anchor"] = recipe.forecast.anchor
    pipeline = ForecastPipeline(plan, list(plan.get("notes", [])))
    sets, judged = {}, {}
    for part in ("train", "val", "test"):
        judged[part] = timeseries.windows(frame, plan, part)
        one_step = plan["strategy"] == "recursive" and part != "train"
        sets[part] = _tensors(timeseries.windows(frame, plan, part, horizon=1) if one_step else judged[part], plan)
    empty = np.array([], dtype=np.int64)
    why = f"{plan['horizon']} step(s) ahead from {plan['lookback']} past steps, {plan['strategy']}"
    prep = Prepared("forecast", why, pipeline, Split(empty, empty, empty), sets, frame_hash(frame))
    prep.forecast = Evaluation(frame, judged, recipe.evaluate.confidence)
    return prep


# ------------------------------------------------------------------------------------- predict
def forecast_windows(network: Any, plan: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Scaled forecasts (N, horizon) of scaled windows (N, lookback, F): all steps at once (direct),
    or one step at a time with each prediction fed back (recursive)."""
    import torch

    from strata.data.timeseries import recursive_forecast
    from strata.models.heads import run

    def predict(windows: np.ndarray) -> np.ndarray:
        seen, _ = anchored(windows, None, plan)
        inputs = torch.from_numpy(np.ascontiguousarray(seen, dtype=np.float32))
        lengths = torch.full((len(inputs),), inputs.shape[1], dtype=torch.int64)
        out = run(network, {"sequence": inputs, "lengths": lengths}, 1).numpy().astype(np.float64)
        return out + windows[:, -1:, 0] if plan.get("anchor", "none") == "last" else out

    if plan["strategy"] == "recursive":
        return recursive_forecast(lambda w: predict(w)[:, 0], x, plan["horizon"])
    return predict(x)


def _forecasts(fitted: Fitted, prep: Prepared, part: str) -> np.ndarray:
    """Forecasts of a part's windows in the target's units, made once per part."""
    from strata.data.timeseries import unscale

    key = ("forecast", part)
    if key not in fitted.seen:
        w = prep.forecast.windows[part]
        scaled = forecast_windows(fitted.trainer.model, prep.pipeline.plan, w.x)
        fitted.seen[key] = (w, unscale(scaled, w.series, prep.pipeline.plan))
    return fitted.seen[key][1]


def held_out_metrics(fitted: Fitted, prep: Prepared) -> dict[str, dict[str, Any]]:
    """Per part: the model's metrics in the target's units, the baselines' beside them, and the
    coverage of the interval fitted on validation residuals (test only)."""
    from strata.data.timeseries import unscale
    from strata.evaluation import forecast

    plan, frame = prep.pipeline.plan, prep.forecast.frame
    scales = forecast.scales(frame, plan)
    out: dict[str, dict[str, Any]] = {}
    for part in ("val", "test"):
        w = prep.forecast.windows[part]
        if not len(w.y):
            continue
        truth, predicted = unscale(w.y, w.series, plan), _forecasts(fitted, prep, part)
        if not np.isfinite(predicted).all():
            out[part] = {"error": "the model forecasts NaN or infinity"}
            continue
        compared = forecast.compare(truth, predicted, forecast.baselines(frame, plan, w), scales)
        out[part] = {**compared["model"], "baselines": {k: v for k, v in compared.items() if k != "model"}}
    if "val" in out and "test" in out and "error" not in out["test"]:
        out["test"].update(_interval_coverage(prep, fitted))
    return out


def _interval_coverage(prep: Prepared, fitted: Fitted) -> dict[str, Any]:
    """Fit the interval on the validation residuals in each series' own scale (so a small series
    gets a narrow band and a large one a wide band), and measure its coverage on the test period."""
    from strata.data.timeseries import scale_target, unscale
    from strata.evaluation import forecast

    plan, level = prep.pipeline.plan, prep.forecast.confidence
    val, test = prep.forecast.windows["val"], prep.forecast.windows["test"]
    predicted_val = scale_target(_forecasts(fitted, prep, "val"), val.series, plan)
    low, high = forecast.intervals(val.y.astype(np.float64), predicted_val, level)
    prep.forecast.interval = (low, high)
    lower, upper = band(_forecasts(fitted, prep, "test"), test.series, plan, low, high)
    truth = unscale(test.y, test.series, plan)
    return {"interval_level": level, "coverage": float(forecast.coverage(truth, lower, upper))}


def band(
    predicted: np.ndarray, series: np.ndarray, plan: dict[str, Any], low: Any, high: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) in the target's units: the scaled offsets per step times each row's series scale."""
    from strata.data.timeseries import unscale

    scale = unscale(np.ones_like(predicted), series, plan) - unscale(np.zeros_like(predicted), series, plan)
    return predicted + np.asarray(low) * scale, predicted + np.asarray(high) * scale


def plots(recipe: Recipe, prep: Prepared, fitted: Fitted) -> dict[str, Callable[[], bytes]]:
    """A forecast plot per series (the first few) at the last test window: history, truth, forecast
    and the validation-fitted interval."""
    from functools import partial

    from strata.data.timeseries import history, unscale
    from strata.evaluation import forecast

    plan, frame = prep.pipeline.plan, prep.forecast.frame
    w = prep.forecast.windows["test"]
    if not len(w.y):
        return {}
    predicted = _forecasts(fitted, prep, "test")
    truth = unscale(w.y, w.series, plan)
    lower, upper = band(predicted, w.series, plan, *prep.forecast.interval) if prep.forecast.interval else (None, None)
    past = history(frame, plan)
    out: dict[str, Callable[[], bytes]] = {}
    for k, code in enumerate(list(dict.fromkeys(w.series.tolist()))[:PLOTTED_SERIES]):
        last = int(np.flatnonzero(w.series == code)[-1])
        sid = plan["series_ids"][code]
        times, values = past[sid]
        before = times < w.times[last][0]
        span = max(3 * plan["lookback"], 2 * plan["season"], 4 * plan["horizon"])
        name = "forecast.png" if k == 0 else f"forecast_{k + 1}.png"
        title = f"{recipe.display_name}: {plan['target']}" + (f" ({plan['series']} {sid})" if plan["series"] else "")
        out[name] = partial(
            forecast.forecast_plot, times[before][-span:], values[before][-span:], w.times[last], truth[last],
            predicted[last], None if lower is None else lower[last], None if upper is None else upper[last],
            title=title, confidence=prep.forecast.confidence,
        )  # fmt: skip
    return out


def data_summary(source: str, prep: Prepared) -> dict[str, Any]:
    """Where the data came from, its series, frequency, season, time cuts and windows per part."""
    plan = prep.pipeline.plan
    split = {k: v for k, v in plan["split"].items() if k != "times"}
    return {
        "source": source,
        "series": len(plan["series_ids"]),
        "frequency": plan.get("freq") or plan.get("step"),
        "season": plan["season"],
        "split": split,
        "windows": {part: len(prep.forecast.windows[part]) for part in ("train", "val", "test")},
    }


# ------------------------------------------------------------------------------------ the bundle
def predict_frame(network: Any, pipeline: ForecastPipeline, frame: pd.DataFrame, interval: dict | None) -> Any:
    """The next `horizon` steps after the end of each series in `frame` (its history), as a long
    table: series, time, step, forecast (and lower/upper with the run's interval)."""
    import pandas as pd

    from strata.data.timeseries import latest_windows, unscale

    plan = pipeline.plan
    pipeline.check_columns(frame)
    w = latest_windows(frame, plan)
    values = unscale(forecast_windows(network, plan, w.x), w.series, plan)
    h = plan["horizon"]
    names = np.asarray(plan["series_ids"], dtype=object)[w.series]
    table = pd.DataFrame(
        {
            **({plan["series"]: np.repeat(names, h)} if plan["series"] else {}),
            plan["time"]: np.asarray(w.times).reshape(-1),
            "step": np.tile(np.arange(1, h + 1), len(w)),
            "forecast": values.reshape(-1),
        }
    )
    if interval is not None:  # offsets in each series' scaled units, fitted on the validation residuals
        lower, upper = band(values, w.series, plan, interval["lower"], interval["upper"])
        table["lower"], table["upper"] = lower.reshape(-1), upper.reshape(-1)
    return table
