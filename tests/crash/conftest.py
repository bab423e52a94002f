"""Fixtures of the crash tests: a lab of real worker processes and a client App."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from crashlab import Lab, client_app

from opsloom import App


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A fresh database and step log; every worker started on it is killed at the end."""
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
async def client(lab: Lab) -> AsyncIterator[App]:
    """A client-only App on the lab's database (opening it creates the schema)."""
    app = client_app(lab.url)
    async with app:
        yield app
