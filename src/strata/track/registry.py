"""The model registry (MLflow's): versions with semantic version tags, aliases, and loading by URI.

Semantic versions are computed from fingerprints, comparing a new version with the latest one:

    major  the feature schema changed: input columns or their types, target columns, task, classes
    minor  the model or the training recipe changed (anything in the recipe but the seed, the data
           source, tracking and card settings)
    patch  only the data or the seed changed (or nothing: a re-registration)

The first version of a name is 1.0.0.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import TrackingError, did_you_mean
from strata.track.store import Store, _explained

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from strata.bundle import TrainedModel

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
MODEL_ARTIFACT = "mlflow-model"
REGISTRY_LOGGERS = ("mlflow.store.model_registry", "mlflow.tracking._model_registry")  # "Waiting up to 300 seconds..."
FINGERPRINT_TAGS = ("strata.schema_hash", "strata.train_hash", "strata.data_hash", "strata.seed")


@dataclass(frozen=True)
class Registered:
    name: str
    version: int
    semver: str
    reason: str


def next_semver(previous: dict[str, str] | None, current: dict[str, str]) -> tuple[str, str]:
    """(semver, reason) of a new version, from the previous version's tags and the new fingerprints."""
    if previous is None or "strata.semver" not in previous:
        return "1.0.0", "first version"
    major, minor, patch = (int(p) for p in previous["strata.semver"].split("."))
    if previous.get("strata.schema_hash") != current["strata.schema_hash"]:
        return f"{major + 1}.0.0", "major: the feature schema (inputs, target or classes) changed"
    if previous.get("strata.train_hash") != current["strata.train_hash"]:
        return f"{major}.{minor + 1}.0", "minor: the model or the training recipe changed"
    changed = [what for tag, what in (("strata.data_hash", "data"), ("strata.seed", "seed"))
               if previous.get(tag) != current[tag]]  # fmt: skip
    return (
        f"{major}.{minor}.{patch + 1}",
        f"patch: {' and '.join(changed) + ' changed' if changed else 'same fingerprints'}",
    )


def _latest(store: Store, name: str) -> ModelVersion | None:
    with _explained(f"cannot read model '{name}' in '{store.uri}'"):
        versions = store.client.search_model_versions(f"name = '{_quoted(name)}'")
    return max(versions, key=lambda v: int(v.version), default=None)


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")


def register(run_ref: str, name: str, uri: str | None = None) -> Registered:
    """Register a tracked run's bundle as a new version of `name`, as an MLflow pyfunc model."""
    from strata import card
    from strata.bundle import load
    from strata.fingerprint import schema_hash

    if not re.fullmatch(r"[\w.\- ]+", name):
        raise TrackingError(f"model name {name!r}: use letters, digits, spaces, '.', '-' and '_'")
    store = Store.open(uri)
    run = store.model_run(run_ref, "register")
    with tempfile.TemporaryDirectory() as tmp:
        model = load(store.download(run.info.run_id, "bundle", Path(tmp)))
        current = {
            "strata.schema_hash": schema_hash(model.pipeline),
            "strata.train_hash": model.recipe.hash(seed=False),
            "strata.data_hash": model.meta["fingerprint"]["data"],
            "strata.seed": str(model.recipe.seed),
        }
        latest = _latest(store, name)
        semver, reason = next_semver(latest.tags if latest else None, current)
        folder = f"{MODEL_ARTIFACT}/{_folder(name)}"  # one per registration: each holds its version's card
        source = _log_pyfunc(store, run.info.run_id, run.info.artifact_uri, Path(tmp) / "bundle", folder)
        with _explained(f"cannot register run {run.info.run_id[:12]} as '{name}' in '{store.uri}'"):
            if latest is None and not _exists(store, name):
                store.client.create_registered_model(name)
            with _quiet(*REGISTRY_LOGGERS):
                version = store.client.create_model_version(
                    name, source, run_id=run.info.run_id, tags={**current, "strata.semver": semver}
                )
            entry = {"name": name, "version": int(version.version), "semver": semver, "reason": reason}
            page = card.render(model, version=entry)
            store.client.update_model_version(name, version.version, description=page)
        _log_card(store, run.info.run_id, folder, page, Path(tmp))
    return Registered(name, int(version.version), semver, reason)


def _exists(store: Store, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        store.client.get_registered_model(name)
    except MlflowException:
        return False
    return True


def _folder(name: str) -> str:
    """A folder of its own for one registration of a run: the name and a unique suffix (the version
    number is known only once the version exists, and a run may be registered more than once)."""
    return f"{name.replace(' ', '_')}-{uuid.uuid4().hex[:8]}"


def _log_pyfunc(store: Store, run_id: str, artifact_uri: str, bundle: Path, folder: str) -> str:
    """Write the pyfunc model (this package's pyfunc_model.py + the bundle) into the run; its URI."""
    import mlflow.pyfunc

    from strata import __version__

    local = bundle.parent / "pyfunc"
    signature, example = _signature(bundle)
    # Without a signature (image models), MLflow warns that it cannot infer one: expected, so quiet.
    level = logging.ERROR if signature is None else logging.WARNING
    with _explained("cannot write the MLflow model"), _quiet("mlflow.pyfunc", "mlflow.models", level=level):
        mlflow.pyfunc.save_model(
            path=str(local), python_model=str(PYFUNC_CODE), artifacts={"bundle": str(bundle)},
            pip_requirements=[f"strata=={__version__}"], signature=signature, input_example=example,
        )  # fmt: skip
        store.client.log_artifacts(run_id, str(local), folder)
    return f"{artifact_uri}/{folder}"


def _log_card(store: Store, run_id: str, folder: str, page: str, tmp: Path) -> None:
    """The version's card replaces the run's in the registered bundle: `strata.load("models:/NAME/N")`
    and MLflow's pyfunc model then carry a card that names the version and its semver."""
    path = tmp / "version-card" / "model_card.md"
    path.parent.mkdir()
    path.write_text(page)
    with _explained(f"cannot write the model card of '{folder}'"):
        store.client.log_artifact(run_id, str(path), f"{folder}/artifacts/bundle")


@contextlib.contextmanager
def _quiet(*loggers: str, level: int = logging.WARNING) -> Iterator[None]:
    """MLflow narrates model saving at INFO level; keep the command's output to what it did."""
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _signature(bundle: Path) -> tuple[Any, Any]:
    """The pyfunc signature from the feature schema, and an example row (none for image models).
    Numbers are declared `Any`: MLflow's `double` refuses int64 columns (a CSV's whole numbers) and
    `long` refuses floats, and the bundle checks and converts its inputs itself."""
    import pandas as pd
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    from strata.bundle import load

    model = load(bundle)
    if model.task == "forecast" or any(column["kind"] in ("image", "sequence") for column in model.pipeline.columns):
        return None, None  # pictures, arrays of steps, a history of many rows: no MLflow column type says that
    row = {column["name"]: _example_value(column) for column in model.pipeline.columns}
    example = pd.DataFrame([row])
    inputs = Schema([ColSpec("string" if isinstance(v, str) else AnyType(), name) for name, v in row.items()])
    outputs = infer_signature(example, model.predict_frame(example)).outputs
    return ModelSignature(inputs=inputs, outputs=outputs), example


def _example_value(column: dict[str, Any]) -> float | str:
    """A typical value of a feature column: levels read from numbers (0/1, 2007) are numbers."""
    state = column["state"]
    if column["kind"] == "numeric":
        return float(state["fill"])
    if column["kind"] == "text":
        return "an example text"
    levels = state["levels"] if column["kind"] == "binary" else [v for v in state["vocab"] if not v.startswith("<")]
    if levels and all(_as_number(v) is not None for v in levels):
        return _as_number(levels[0])  # type: ignore[return-value]
    return levels[0] if levels else ""


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def promote(name: str, version: int, alias: str, uri: str | None = None) -> None:
    """Point `alias` (e.g. production) at a version of a registered model."""
    store = Store.open(uri)
    _version(store, name, str(version))
    with _explained(f"cannot set alias '{alias}' on '{name}' version {version}"):
        store.client.set_registered_model_alias(name, alias, str(version))


def _version(store: Store, name: str, version: str | None = None, alias: str | None = None) -> ModelVersion:
    """A model version by number or alias, with errors that list what exists."""
    from mlflow.exceptions import MlflowException

    try:
        model = store.client.get_registered_model(name)
    except MlflowException:
        names = [m.name for m in store.client.search_registered_models()]
        raise TrackingError(
            f"model '{name}' is not registered in '{store.uri}'{did_you_mean(name, names)}"
            f" (registered: {', '.join(names) or 'none'})"
        ) from None
    try:
        if alias is not None:
            return store.client.get_model_version_by_alias(name, alias)
        return store.client.get_model_version(name, str(version))
    except MlflowException:
        if alias is not None:
            aliases = sorted(model.aliases) if isinstance(model.aliases, dict) else []
            raise TrackingError(
                f"model '{name}' has no alias '{alias}'{did_you_mean(alias, aliases)}"
                f" (aliases: {', '.join(aliases) or 'none'})"
            ) from None
        numbers = sorted(int(v.version) for v in store.client.search_model_versions(f"name = '{_quoted(name)}'"))
        raise TrackingError(
            f"model '{name}' has no version {version} (versions: {', '.join(map(str, numbers))})"
        ) from None


def parse_uri(uri: str) -> tuple[str, str | None, str | None]:
    """'models:/NAME@ALIAS' or 'models:/NAME/VERSION' -> (name, version, alias)."""
    match = re.fullmatch(r"models:/(?P<name>[^@/]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))", uri)
    if not match:
        raise TrackingError(f"model URI {uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    return match["name"], match["version"], match["alias"]


def load_registered(uri: str, tracking_uri: str | None = None) -> TrainedModel:
    """Load `models:/NAME@ALIAS` or `models:/NAME/VERSION` as a TrainedModel (through its bundle)."""
    from mlflow.artifacts import download_artifacts

    from strata.bundle import load

    name, version, alias = parse_uri(uri)
    store = Store.open(tracking_uri)
    entry = _version(store, name, version, alias)
    tmp = Path(tempfile.mkdtemp(prefix="strata-model-"))
    try:
        with _explained(f"cannot fetch {uri} from '{store.uri}'"):
            local = Path(download_artifacts(artifact_uri=entry.source, dst_path=str(tmp), tracking_uri=store.uri))
        model = load(local / "artifacts" / "bundle")
        card = local / "artifacts" / "bundle" / "model_card.md"
        if card.is_file():  # the version's card: written again when the model is saved
            model.artifacts["model_card.md"] = card.read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    model.path = None
    model.meta["registered"] = {"name": name, "version": int(entry.version), **_semver(entry.tags)}
    return model


def _semver(tags: dict[str, Any]) -> dict[str, str]:
    return {"semver": tags["strata.semver"]} if "strata.semver" in tags else {}
