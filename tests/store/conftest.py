"""The store contract suite runs against every store implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opsloom.store import Store, open_store

DIALECTS = ["sqlite", "postgresql"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--store")  # defined in tests/conftest.py
        chosen = [d for d in DIALECTS if choice in ("all", d)]
        metafunc.parametrize("store", chosen, indirect=True)


@pytest.fixture
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("postgres_schema_url")
    else:  # pragma: no cover - a new dialect needs its fixture here
        raise AssertionError(request.param)
    store = open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
