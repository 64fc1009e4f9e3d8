"""Fixtures of the tracking tests (the shared store, `store_uri`, is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_recipe


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
