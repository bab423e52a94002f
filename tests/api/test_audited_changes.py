"""Changes to runs and events made over the API are audited with the token's user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from authkit import auth_headers

from opsloom import App, Context
from opsloom.api import create_api
from opsloom.settings import Settings


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(f"sqlite:///{tmp_path / 'audit.db'}", settings=Settings())

    @app.workflow(name="park")
    async def park(ctx: Context) -> object:
        return await ctx.wait_for("go")

    async with app:
        yield app


async def test_start_signal_cancel_and_emit__each_audited_with_the_user(app: App) -> None:
    headers = await auth_headers(app, user="olga", roles=("operator",))
    api = create_api(app)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        started = await c.post("/api/v1/runs", json={"workflow": "park", "run_id": "p-1"})
        assert started.status_code == 201, started.text
        again = await c.post("/api/v1/runs", json={"workflow": "park", "run_id": "p-1"})
        assert again.status_code == 200
        assert (await c.post("/api/v1/runs/p-1/signals/later", json=1)).status_code == 202
        assert (await c.post("/api/v1/runs/p-1/cancel")).status_code == 202
        event = {"specversion": "1.0", "id": "e-1", "source": "/ci", "type": "deploy.done"}
        assert (await c.post("/api/v1/events", json=event)).status_code == 202
        assert (await c.post("/api/v1/events", json=event)).status_code == 202  # duplicate

    entries = [e for e in await app.audit.entries() if not e.action.startswith("user")]
    assert [(e.actor, e.action, e.subject) for e in entries if e.actor == "olga"] == [
        ("olga", "run.start", "run:p-1"),
        ("olga", "run.signal", "run:p-1"),
        ("olga", "run.cancel", "run:p-1"),
        ("olga", "event.emit", "events"),
    ]
    emitted = entries[-1].data
    assert emitted == {"events": [{"source": "/ci", "id": "e-1", "type": "deploy.done"}]}
    assert (await app.audit.verify()).ok
