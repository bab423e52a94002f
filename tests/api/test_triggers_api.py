"""``/api/v1/triggers``: the triggers with their debounce and rate limit, one trigger with the
runs it started and the keys waiting out its debounce."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authkit import auth_headers

from opsloom import App, Context, FakeClock
from opsloom.api import create_api
from opsloom.settings import Settings

FIRING = "io.opsloom.alert.firing.v1"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(f"sqlite:///{tmp_path / 'triggers.db'}", settings=Settings(), clock=FakeClock())

    @app.workflow(name="page")
    async def page(ctx: Context, alert: dict[str, Any]) -> None:
        return None

    app.trigger("page", on={"type": FIRING}, debounce=60, rate_limit="30/hour")
    async with app:
        yield app


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    headers = await auth_headers(app, user="vera", roles=("viewer",))
    transport = httpx.ASGITransport(app=create_api(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def test_triggers__listed_and_shown_with_debounced_keys(
    app: App, client: httpx.AsyncClient
) -> None:
    event = {"specversion": "1.0", "source": "am", "type": FIRING, "subject": "fp-1"}
    await app.emit({**event, "id": "a"})
    await app.emit({**event, "id": "b"})
    listed = await client.get("/api/v1/triggers")
    assert listed.status_code == 200, listed.text
    [trigger] = listed.json()
    assert (trigger["id"], trigger["debounce"], trigger["rate_limit"]["per_second"]) == (
        "code:page",
        60.0,
        30 / 3600,
    )
    shown = await client.get("/api/v1/triggers/code:page")
    assert shown.status_code == 200, shown.text
    [held] = shown.json()["debounced"]
    assert (held["key"], held["event_id"], held["events"]) == ("fp-1", "b", 2)
    assert shown.json()["runs"] == []
    missing = await client.get("/api/v1/triggers/code:nope")
    assert missing.status_code == 404 and missing.json()["code"] == "trigger_not_found"
