"""Fixtures of the trigger tests: an open store on each dialect."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from opsloom.store import Store, open_store


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = open_store(db_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
