"""The store contract suite runs against every store implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opsloom.store import Store, open_store

DIALECTS = ["sqlite"]


@pytest.fixture(params=DIALECTS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"
    else:  # pragma: no cover - other dialects come with their own issue
        raise AssertionError(request.param)
    store = open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
