"""Writing one run: params, per-epoch and final metrics, tags, artifacts, status."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.track.store import Store, _explained
from strata.training.callbacks import Callback

if TYPE_CHECKING:
    from strata.training.trainer import Trainer

LINKS_ENV = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
# MLflow's batch limits per call
MAX_PARAMS, MAX_METRICS, MAX_TAGS = 100, 1000, 100


class TrackedRun:
    def __init__(self, store: Store, run_id: str, experiment: str):
        self.store, self.id, self.experiment = store, run_id, experiment

    @classmethod
    def start(
        cls, store: Store, experiment: str, name: str, tags: dict[str, str], parent: str | None = None
    ) -> TrackedRun:
        tags = {"mlflow.runName": name, **tags, **({"mlflow.parentRunId": parent} if parent else {})}
        with _explained(f"cannot start a run in '{store.uri}'"):
            run = store.client.create_run(store.experiment_id(experiment), tags=tags, run_name=name)
        return cls(store, run.info.run_id, experiment)

    @property
    def client(self) -> Any:
        return self.store.client

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _text(v)) for k, v in params.items()]
        with _explained(f"cannot log params of run {self.id[:12]}"):
            for i in range(0, len(items), MAX_PARAMS):
                self.client.log_batch(self.id, params=items[i : i + MAX_PARAMS])

    def log_metrics(self, metrics: dict[str, Any], step: int = 0) -> None:
        """Finite numbers only (NaN and missing metrics are left out, not written as garbage)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if _finite(v)]
        with _explained(f"cannot log metrics of run {self.id[:12]}"):
            for i in range(0, len(items), MAX_METRICS):
                self.client.log_batch(self.id, metrics=items[i : i + MAX_METRICS])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, _text(v)) for k, v in tags.items()]
        with _explained(f"cannot tag run {self.id[:12]}"):
            for i in range(0, len(items), MAX_TAGS):
                self.client.log_batch(self.id, tags=items[i : i + MAX_TAGS])

    def log_artifacts(self, path: Path, artifact_path: str | None = None) -> None:
        with _explained(f"cannot store artifacts of run {self.id[:12]}"):
            if path.is_dir():
                self.client.log_artifacts(self.id, str(path), artifact_path)
            else:
                self.client.log_artifact(self.id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        with _explained(f"cannot close run {self.id[:12]}"), _no_links():
            self.client.set_terminated(self.id, status=status)

    def epoch_logger(self) -> Callback:
        return _EpochLogger(self)


class _EpochLogger(Callback):
    """Each epoch's losses, metrics and learning rate as metric steps, so the MLflow UI draws curves live."""

    def __init__(self, run: TrackedRun):
        self.run = run

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.run.log_metrics({k: v for k, v in logs.items() if k not in ("epoch", "seconds")}, step=int(logs["epoch"]))


@contextlib.contextmanager
def _no_links() -> Iterator[None]:
    """MLflow prints "🏃 View run ... / 🧪 View experiment ..." to stdout when a run on a server ends;
    Strata says where the run went itself (and `-q` means quiet). A user's own setting is kept."""
    if LINKS_ENV in os.environ:
        yield
        return
    os.environ[LINKS_ENV] = "true"
    try:
        yield
    finally:
        os.environ.pop(LINKS_ENV, None)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value)
    return text[:6000]  # MLflow's limit for a param value
