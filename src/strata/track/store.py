"""One MLflow store (runs and registry), opened with a clear error when it cannot be reached."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import urllib.error
import urllib.request
import warnings
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
        # Progress bars for a bundle's few files are noise on stderr (shown when tqdm is installed).
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow import MlflowClient

        # MLflow's SQLAlchemy mappers warn of their own deprecations on first use: not the user's to act on.
        with _explained(f"cannot open the tracking store '{self.uri}'"), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
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

    def model_run(self, ref: str, doing: str) -> Run:
        """A run that holds a model: a multi-seed parent run holds only the summary of its seed runs,
        so using it (to `doing`: register, reproduce) names the seed runs to use instead."""
        run = self.run(ref)
        if "strata.seeds" not in run.data.tags:
            return run
        seeds = ", ".join(f"{r.info.run_id[:12]} (seed {r.data.tags.get('strata.seed', '?')})"
                          for r in self.children(run))  # fmt: skip
        raise TrackingError(
            f"run {run.info.run_id[:12]} is a multi-seed summary run, with no model of its own; "
            f"{doing} one of its seed runs instead: {seeds or 'none finished'}"
        )

    def children(self, run: Run) -> list[Run]:
        """The runs started under `run` (the seeds of a multi-seed run), oldest first."""
        with _explained(f"cannot list the runs under run {run.info.run_id[:12]} in '{self.uri}'"):
            found = self.client.search_runs(
                [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'",
                max_results=1000, order_by=["attributes.start_time ASC"],
            )  # fmt: skip
        return list(found)

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
        _open_sqlite(uri, local)
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


# modules a tracking store may need, and what to pip install for each (quoted for the shell)
DRIVERS = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient",
           "pymysql": "pymysql", "pymssql": "pymssql", "pyodbc": "pyodbc", "boto3": "boto3",
           "google": "google-cloud-storage", "azure": "azure-storage-blob"}  # fmt: skip


def _open_sqlite(uri: str, path: Path) -> None:
    """Read the SQLite file once: MLflow retries a file it cannot open (a folder, junk) for 100 seconds."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("SELECT name FROM sqlite_master LIMIT 1")
    except sqlite3.Error as err:
        raise TrackingError(f"cannot open the tracking store '{uri}': {err}") from None


class _explained:
    """Turn MLflow's exceptions (and those of the database underneath it) into one-line TrackingErrors
    that say what was being done."""

    def __init__(self, doing: str):
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: Any) -> bool:
        if err is None or isinstance(err, TrackingError):
            return False
        reason = _reason(err)
        if reason is None:
            return False
        raise TrackingError(_redacted(f"{self.doing}: {' '.join(reason.split())[:300]}")) from None


def _reason(err: BaseException) -> str | None:
    """What went wrong, in a line, for the errors a store raises; None for any other error (a bug)."""
    from mlflow.exceptions import MlflowException

    if isinstance(err, ModuleNotFoundError) and err.name:
        top = err.name.split(".")[0]
        package = DRIVERS.get(top, top)
        return f"Python package '{err.name}' is not installed (pip install {package})"
    if isinstance(err, MlflowException | OSError):
        return getattr(err, "message", None) or str(err)
    if _is_database_error(err):
        cause = getattr(err, "orig", None) or err  # the driver's own message, without SQLAlchemy's SQL echo
        return str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return None


def _is_database_error(err: BaseException) -> bool:
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # a client-only MLflow install: no database of its own
        return False
    return isinstance(err, SQLAlchemyError)


def _redacted(text: str) -> str:
    """A database URI's password replaced by ***: errors are printed and pasted into tickets."""
    return re.sub(r"(://[^/:@\s]+):[^/@\s]+@", r"\1:***@", text)
