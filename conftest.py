"""Shared test fixtures for every suite in the repository (real PostgreSQL, in-process servers)."""

from __future__ import annotations

import os

import pytest
from _pytest.fixtures import FixtureDef

pytest_plugins = ["crmkit.testing"]

# Each suite keeps its services alive while its tests run (in process, or real processes for the
# CLI and gateway), each with its own pools, against one PostgreSQL whose default limit is 100
# connections. Three per pool is plenty for tests (two is not: a segment materialisation holds a
# raw connection while its progress takes another); a test that needs more sets it. Child
# processes inherit it through the environment.
os.environ.setdefault("CRM_DB_POOL_SIZE", "3")

_directory_fixtures: dict[int, FixtureDef[object]] = {}


@pytest.hookimpl(wrapper=True, trylast=True)  # inside the capture plugin's wrapper: their logs are captured
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """Session fixtures a suite's conftest.py defines (its services, their databases) end when the
    run leaves that suite's directory, not at the end of the whole run: otherwise every suite's
    services stay up, polling and holding connections, until the last cross-service test, and
    PostgreSQL runs out of connections late in the run. pytest's "package" scope would do this only
    for directories with an __init__.py, which would make every suite's conftest a module named
    `tests.conftest`; so this reads the fixture definitions (pytest's private API, pinned with it)."""
    result = yield
    for definitions in item._fixtureinfo.name2fixturedefs.values():  # type: ignore[attr-defined]
        for definition in definitions:
            if definition.scope == "session" and definition.baseid and not definition.baseid.endswith(".py"):
                _directory_fixtures[id(definition)] = definition
    for key, definition in list(_directory_fixtures.items()):
        if nextitem is None or not nextitem.nodeid.startswith(definition.baseid + "/"):
            del _directory_fixtures[key]
            definition.finish(item._request)  # type: ignore[attr-defined]
    return result
