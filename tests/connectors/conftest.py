"""Fixtures of the connector tests: apps with a fake clock (and, as everywhere, a fresh
secret key)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from opsloom import App, FakeClock, WorkerOptions


@pytest.fixture
def fresh(db_url: str, clock: FakeClock) -> App:
    """An unopened app with a worker on the test database and a fake clock: register
    workflows, then open it."""
    return App(db_url, clock=clock, worker=WorkerOptions(poll_seconds=0.05, grace_seconds=5))


@pytest.fixture
async def ops(fresh: App) -> AsyncIterator[App]:
    """:func:`fresh`, opened."""
    async with fresh:
        yield fresh
