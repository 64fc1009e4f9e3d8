"""One MLflow store (runs and registry), opened with a clear error when it cannot be reached."""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import TrackingError, did_you_mean

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

ENV = "STRATA_TRACKING_URI"
DEFAULT_URI = "sqlite:///strata-runs/mlflow.db"  # relative to the working directory, as `mlflow ui` reads it


def resolve_uri(uri: str | None = None) -> str:
    """The store to use: the given URI (from the recipe or a flag), else $STRATA_TRACKING_URI, else
    the local SQLite store under ./strata-runs/."""
    return uri or os.environ.get(ENV) or DEFAULT_URI


class Store:
    """Runs and registered models in one MLflow tracking store. `Store.open(uri)` reuses an opened
    store (opening a SQLite store costs about two seconds of schema checks)."""

    _opened: dict[str, Store] = {}  # a per-process cache, by URI

    @classmethod
    def open(cls, uri: str | None = None) -> Store:
        key = _absolute(resolve_uri(uri))  # a relative SQLite path means the current directory's
        if key not in cls._opened:
            cls._opened[key] = cls(key)
        return cls._opened[key]

    def __init__(self, uri: str | None = None):
        self.uri = resolve_uri(uri)
        _preflight(self.uri)
        for name in ("alembic", "mlflow.store.db.utils", "mlflow.store.sqlalchemy_store"):
            logger = logging.getLogger(name)  # database set-up chatter; a user's own levels are kept
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)
        from mlflow import MlflowClient

        with _explained(f"cannot open the tracking store '{self.uri}'"):
            self.client: MlflowClient = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            self.client.search_experiments(max_results=1)  # touches the store: fails here, not mid-run

    # ---- experiments
    def experiment_id(self, name: str) -> str:
        """The experiment's id, creating it (with artifacts beside a local SQLite store) if needed."""
        with _explained(f"cannot use experiment '{name}' in '{self.uri}'"):
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            return self.client.create_experiment(name, artifact_location=self._artifact_root(name))

    def _artifact_root(self, experiment: str) -> str | None:
        local = _sqlite_path(self.uri)
        if local is None:
            return None  # a server decides where artifacts go
        return (local.parent / "artifacts" / experiment).resolve().as_uri()

    # ---- runs
    def all_runs(self, experiment: str | None = None, limit: int = 1000) -> list[Run]:
        """Runs of one experiment, or of every experiment, newest first."""
        with _explained(f"cannot list runs in '{self.uri}'"):
            if experiment is not None:
                found = self.client.get_experiment_by_name(experiment)
                if found is None:
                    names = [e.name for e in self.client.search_experiments()]
                    raise TrackingError(
                        f"experiment '{experiment}' not found in '{self.uri}'{did_you_mean(experiment, names)}"
                        f" (experiments: {', '.join(names) or 'none'})"
                    )
                ids = [found.experiment_id]
            else:
                ids = [e.experiment_id for e in self.client.search_experiments()]
            return (
                list(self.client.search_runs(ids, max_results=limit, order_by=["attributes.start_time DESC"]))
                if ids
                else []
            )

    def run(self, ref: str) -> Run:
        """A run by its id or a unique prefix of it (as `strata runs list` shows them)."""
        ref = ref.strip()
        if len(ref) == 32:  # a whole id: one lookup
            from mlflow.exceptions import MlflowException

            try:
                return self.client.get_run(ref)
            except MlflowException:
                pass
        matches = [r for r in self.all_runs(limit=50_000) if r.info.run_id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise TrackingError(f"run '{ref}' not found in '{self.uri}' (`strata runs list` shows the runs)")
        ids = ", ".join(r.info.run_id[:12] for r in matches[:5])
        raise TrackingError(f"run '{ref}' is ambiguous in '{self.uri}': {len(matches)} runs start with it ({ids}...)")

    def download(self, run_id: str, path: str, into: Path) -> Path:
        """Copy a run's artifact (file or folder) to a local folder; returns the local path."""
        from mlflow.artifacts import download_artifacts

        into.mkdir(parents=True, exist_ok=True)
        with _explained(f"cannot fetch '{path}' of run {run_id[:12]} from '{self.uri}'"):
            return Path(
                download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(into), tracking_uri=self.uri)
            )


def _absolute(uri: str) -> str:
    local = _sqlite_path(uri)
    return f"sqlite:///{local.resolve()}" if local is not None and not local.is_absolute() else uri


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _preflight(uri: str) -> None:
    """Fail in a second, with one line, rather than after training or after MLflow's retries."""
    local = _sqlite_path(uri)
    if local is not None:
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TrackingError(f"cannot create the tracking store '{uri}': {err.strerror or err}") from None
        if not os.access(local.parent, os.W_OK):
            raise TrackingError(f"cannot write the tracking store '{uri}': '{local.parent}' is not writable")
        return
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as reply:
                reply.read()
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise TrackingError(
                f"tracking server '{uri}' is unreachable ({reason}); start it, or set track.uri / {ENV}, "
                f"or turn tracking off with track: false"
            ) from None


class _explained:
    """Turn MLflow's exceptions into one-line TrackingErrors that say what was being done."""

    def __init__(self, doing: str):
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: Any) -> bool:
        if err is None or isinstance(err, TrackingError):
            return False
        from mlflow.exceptions import MlflowException

        if isinstance(err, MlflowException | OSError):
            message = getattr(err, "message", None) or str(err)
            raise TrackingError(f"{self.doing}: {' '.join(message.split())[:300]}") from None
        return False
