"""Shared fixtures: a fresh database per test, apps with a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from opsloom import App, FakeClock, WorkerOptions


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'opsloom.db'}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(db_url: str) -> Callable[..., App]:
    """Build an App on the test database; tests register workflows, then open it."""

    def build(
        *, clock: FakeClock | None = None, worker: WorkerOptions | None = None, client: bool = False
    ) -> App:
        options = (
            None
            if client
            else (
                worker
                or WorkerOptions(
                    concurrency=64, poll_seconds=0.05, reap_seconds=0.1, grace_seconds=5
                )
            )
        )
        return App(db_url, worker=options, clock=clock)

    return build


@pytest.fixture
async def app(make_app: Callable[..., App]) -> AsyncIterator[App]:
    """An unopened App; the test registers workflows and uses ``async with app``."""
    yield make_app()
