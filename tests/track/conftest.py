"""A tracking store shared by the tests of one worker: opening a SQLite store costs seconds."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_recipe


@pytest.fixture(scope="session")
def store_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture
def tracked(store_uri):
    """A tiny recipe that is tracked in the shared store, in an experiment of its own."""

    def make(experiment: str, **sections: object) -> dict:
        recipe = tiny_recipe(**sections)
        recipe["track"] = {"uri": store_uri, "experiment": experiment}
        return recipe

    return make


@pytest.fixture
def client(store_uri):
    from strata.track.store import Store

    return Store.open(store_uri).client
