"""The registry: MLflow versions with semantic versions by rule, aliases, loading by URI, pyfunc."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator

import numpy as np
import pytest

import strata
from strata.errors import TrackingError
from strata.track.registry import next_semver, parse_uri, promote, register

BASE = {"strata.schema_hash": "s", "strata.train_hash": "t", "strata.data_hash": "d", "strata.seed": "0"}


def previous(**changes: str) -> dict[str, str]:
    return {**BASE, "strata.semver": "2.3.4", **changes}


@pytest.mark.parametrize(
    ("prev", "expected", "why"),
    [
        (None, "1.0.0", "first version"),
        (previous(**{"strata.schema_hash": "other"}), "3.0.0", "major: the feature schema"),
        (previous(**{"strata.schema_hash": "other", "strata.train_hash": "x"}), "3.0.0", "major"),
        (previous(**{"strata.train_hash": "other"}), "2.4.0", "minor: the model or the training recipe"),
        (previous(**{"strata.train_hash": "other", "strata.seed": "9"}), "2.4.0", "minor"),
        (previous(**{"strata.data_hash": "other"}), "2.3.5", "patch: data changed"),
        (previous(**{"strata.seed": "9"}), "2.3.5", "patch: seed changed"),
        (previous(**{"strata.seed": "9", "strata.data_hash": "x"}), "2.3.5", "patch: data and seed changed"),
        (previous(), "2.3.5", "patch: same fingerprints"),
    ],
)
def test_semver_rules(prev, expected, why):
    semver, reason = next_semver(prev, BASE)
    assert semver == expected and reason.startswith(why)


def test_uri_parsing():
    assert parse_uri("models:/churn@production") == ("churn", None, "production")
    assert parse_uri("models:/churn/3") == ("churn", "3", None)
    with pytest.raises(TrackingError, match="expected models:/NAME@ALIAS or models:/NAME/VERSION"):
        parse_uri("models:/churn")


@pytest.fixture(scope="module")
def versions(store_uri, tmp_path_factory):
    """Four registrations of one name, each changing one thing, and what each run predicts."""
    from tests.conftest import make_mixed_frame

    frame = make_mixed_frame()
    base = {"data": {"target": "label"}, "model": {"hidden": [16]}, "train": {"epochs": 4, "batch_size": 16},
            "track": {"uri": store_uri, "experiment": "registry"}}  # fmt: skip
    variants = [
        ({}, frame),  # 1.0.0
        ({"seed": 5}, frame),  # patch
        ({"model": {"hidden": [24]}}, frame),  # minor
        ({}, frame.drop(columns=["flag"])),  # major: an input column fewer
        ({}, frame.assign(x1=frame["x1"] * 2)),  # patch: data only (against the version before: schema differs)
    ]
    out = []
    for change, data in variants:
        result = strata.train({**base, **change}, data=data, quiet=True)
        out.append((register(result.run_id, "churn", store_uri), result, data))
    return out


def test_each_registration_is_a_new_version_with_its_semver(versions):
    assert [(r.version, r.semver) for r, _, _ in versions] == [
        (1, "1.0.0"), (2, "1.0.1"), (3, "1.1.0"), (4, "2.0.0"), (5, "3.0.0")]  # fmt: skip
    assert versions[1][0].reason == "patch: seed changed"
    assert versions[2][0].reason.startswith("minor")
    assert versions[3][0].reason.startswith("major")


def test_data_only_change_is_a_patch(store_uri, versions):
    _, result, data = versions[4]  # the latest version: retrain on changed values only
    again = strata.train({**result.model.recipe.to_dict(), "track": {"uri": store_uri, "experiment": "registry"}},
                         data=data.assign(x2=data["x2"] + 1), quiet=True)  # fmt: skip
    entry = register(again.run_id, "churn", store_uri)
    assert (entry.version, entry.semver, entry.reason) == (6, "3.0.1", "patch: data changed")


def test_versions_and_aliases_load_and_predict_as_the_run(versions, store_uri):
    registered, result, data = versions[2]
    promote("churn", registered.version, "production", store_uri)
    by_alias = strata.load("models:/churn@production", tracking_uri=store_uri)
    by_number = strata.load(f"models:/churn/{registered.version}", tracking_uri=store_uri)
    expected = result.model.predict_proba(data)
    np.testing.assert_array_equal(by_alias.predict_proba(data), expected)
    np.testing.assert_array_equal(by_number.predict_proba(data), expected)
    assert by_alias.meta["registered"] == {"name": "churn", "version": 3, "semver": "1.1.0"}


def test_version_description_is_the_model_card(versions, client):
    card = client.get_model_version("churn", "3").description
    assert card.startswith("# Model card: churn")
    assert "churn version 3 (semver 1.1.0)" in card and "## Evaluation" in card


def test_a_registered_bundle_carries_its_version_card(versions, store_uri, tmp_path):
    _, result, _ = versions[0]
    again = register(result.run_id, "churn copy", store_uri)  # the same run once more: version 1 keeps its card
    for name, number, semver in (("churn", 3, "1.1.0"), ("churn", 1, "1.0.0"), ("churn copy", again.version, "1.0.0")):
        model = strata.load(f"models:/{name}/{number}", tracking_uri=store_uri)
        card = model.artifacts["model_card.md"].decode()
        assert (
            card.startswith(f"# Model card: {name}")
            and f"| registered | {name} version {number} (semver {semver}) |" in card
        )
        assert (model.save(tmp_path / f"{name}-{number}") / "model_card.md").read_text() == card


@contextlib.contextmanager
def mlflow_uris(store_uri: str) -> Iterator[None]:
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(store_uri)  # MLflow resolves models:/ through both stores
    mlflow.set_registry_uri(store_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


def test_mlflow_pyfunc_loads_without_unpickling(versions, store_uri, monkeypatch):
    import mlflow

    _, result, data = versions[0]

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used to load a registered model")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    with mlflow_uris(store_uri):
        model = mlflow.pyfunc.load_model("models:/churn/1")
        out = model.predict(data.head(5))
    assert list(out["prediction"]) == list(result.model.predict(data.head(5)))
    assert model.metadata.get_input_schema().input_names() == ["x1", "x2", "colour", "flag"]


def test_mlflow_pyfunc_takes_whole_numbers_and_floats(store_uri, tmp_path):
    """A CSV read back gives int64 columns: a year (numeric) and a grade (categorical, levels 1-3)."""
    import mlflow
    import pandas as pd

    from tests.conftest import make_mixed_frame

    frame = make_mixed_frame()
    rng = np.random.default_rng(3)
    frame = frame.assign(year=rng.integers(1990, 2020, len(frame)), grade=rng.integers(1, 4, len(frame)))
    frame.to_csv(tmp_path / "table.csv", index=False)
    data = pd.read_csv(tmp_path / "table.csv")
    assert data["year"].dtype == data["grade"].dtype == np.int64
    recipe = {"data": {"path": str(tmp_path / "table.csv"), "target": "label"}, "model": {"hidden": [8]},
              "train": {"epochs": 2, "batch_size": 32}, "track": {"uri": store_uri, "experiment": "int-columns"}}  # fmt: skip
    result = strata.train(recipe, quiet=True)
    assert {c["name"]: c["kind"] for c in result.model.pipeline.columns}["grade"] == "categorical"
    entry = register(result.run_id, "whole-numbers", store_uri)
    expected = list(result.model.predict(data.head(8)))
    with mlflow_uris(store_uri):
        model = mlflow.pyfunc.load_model(f"models:/whole-numbers/{entry.version}")
        as_ints = model.predict(data.head(8))
        as_floats = model.predict(data.head(8).astype({"year": "float64", "grade": "float64"}))
    assert list(as_ints["prediction"]) == list(as_floats["prediction"]) == expected


def test_unknown_model_version_and_alias(versions, store_uri):
    with pytest.raises(TrackingError, match=r"model 'chrun' is not registered .*\(did you mean 'churn'\?\)"):
        strata.load("models:/chrun/1", tracking_uri=store_uri)
    with pytest.raises(TrackingError, match=r"model 'churn' has no version 99 \(versions: 1, 2, 3"):
        promote("churn", 99, "production", store_uri)
    with pytest.raises(TrackingError, match=r"model 'churn' has no alias 'staging'"):
        strata.load("models:/churn@staging", tracking_uri=store_uri)


def test_registering_an_unknown_run(store_uri):
    with pytest.raises(TrackingError, match=r"run 'nope' not found in 'sqlite:///"):
        register("nope", "churn", store_uri)
