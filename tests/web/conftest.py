"""Fixtures of the web UI tests: an application on a temporary SQLite file, and its UI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from webkit import build_app, ui_of

from opsloom import App


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with build_app(f"sqlite:///{tmp_path / 'web.db'}") as app:
        yield app


@pytest.fixture
def api(app: App) -> FastAPI:
    return ui_of(app)
