"""Fixtures of the connector tests: apps with a fake clock and a fresh secret key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet

from opsloom import App, FakeClock, WorkerOptions


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test app seals secrets with a fresh key (no key file in the work tree)."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("OPSLOOM_SECRET_KEY", key)
    return key


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
