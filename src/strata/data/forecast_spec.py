"""The `forecast:` section of a recipe: how a long table of time steps becomes forecasting windows.

Kept free of torch (like `augment_spec`) so a recipe can be checked before anything heavy is
imported; `strata.data.timeseries` turns the table into windows with it.

A window is `lookback` consecutive steps of one series (the target's past, then each covariate)
and the `horizon` target values that follow. Windows start every `stride` steps.

>>> ForecastConfig(time="date", lookback=12, horizon=3).strategy
'direct'
>>> ForecastConfig(time="date", covariates=["date"])
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for ForecastConfig
...
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ForecastConfig(BaseModel):
    """Which columns hold time, series and covariates, and the shape of the windows.

    - `time`: the time column: dates (or text a date parser reads), or numbers such as a year.
      Steps must be evenly spaced within each series; the spacing is inferred from the data.
    - `series`: optional id column; each value is its own series (a store, a sensor). One model
      is trained on all of them, each scaled on its own.
    - `covariates`: other numeric columns the model reads beside the target's past. Only their past
      is used: the model never sees a covariate's value at a time it is forecasting.
    - `lookback`: past steps the model sees; `horizon`: future steps it predicts; `stride`: steps
      between consecutive window starts (1 uses every window; more thins out overlapping ones).
    - `season`: the seasonal period in steps, for the seasonal-naive baseline and MASE. None infers
      it from the frequency (hourly 24, daily 7, weekly 52, monthly 12, quarterly 4, otherwise 1).
    - `strategy`: `direct` predicts all `horizon` steps at once; `recursive` trains a one-step model
      and feeds its predictions back as inputs, one step at a time.
    - `scale`: `zscore` standardises the target and each covariate per series, with the mean and
      standard deviation of that series' training period only (so evaluation data never leaks in).
    - `anchor`: `last` makes the model read and predict the target relative to the window's last
      observed value, so a level the training period never reached (a trending series such as
      co2) is no harder than one it did; `none` feeds the scaled values as they are.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: str
    series: str | None = None
    covariates: list[str] = Field(default_factory=list)
    lookback: int = Field(24, ge=1)
    horizon: int = Field(1, ge=1)
    stride: int = Field(1, ge=1)
    season: int | None = Field(None, ge=1)
    strategy: Literal["direct", "recursive"] = "direct"
    scale: Literal["zscore", "none"] = "zscore"
    anchor: Literal["last", "none"] = "last"

    @model_validator(mode="after")
    def _distinct_columns(self) -> ForecastConfig:
        seen: dict[str, str] = {}
        named = [("time", self.time), ("series", self.series)]
        named += [(f"covariates[{i}]", c) for i, c in enumerate(self.covariates)]
        for key, column in named:
            if column is None:
                continue
            if column in seen:
                raise ValueError(f"column '{column}' is both {seen[column]} and {key}; each column has one role")
            seen[column] = key
        return self

    @model_validator(mode="after")
    def _recursive_without_covariates(self) -> ForecastConfig:
        # A recursive model's next input row holds every feature; only the target's is predicted.
        if self.strategy == "recursive" and self.covariates:
            raise ValueError(
                "strategy: recursive feeds the model its own predictions, and future values of covariates "
                f"({', '.join(self.covariates)}) are unknown; use strategy: direct, or remove the covariates"
            )
        return self
