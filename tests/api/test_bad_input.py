"""Hostile or malformed requests get a 4xx problem naming what is wrong, and store nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authkit import auth_headers

from opsloom import App, Context, FakeClock
from opsloom.api import create_api
from opsloom.api.routes.hooks import HookReceiver
from opsloom.errors import InputError
from opsloom.settings import Settings
from opsloom.store.event import EventQuery
from opsloom.triggers.sources import load_hooks_config

PROBLEM = "application/problem+json"
AM_TOKEN = "alertmanager-token"
NOW = 1_715_004_000.0
#: Nested past the parser's recursion limit: the request that used to be a 500.
DEEP = "[" * 5000 + "]" * 5000


def build_app(path: Path) -> App:
    app = App(f"sqlite:///{path / 'bad.db'}", clock=FakeClock(NOW))

    @app.workflow(name="hold")
    async def hold(ctx: Context, x: Any = None) -> Any:
        return await ctx.wait_for("go")

    return app


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = build_app(tmp_path)
    async with app:
        yield app


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    config = load_hooks_config(environ={"OPSLOOM_HOOKS_ALERTMANAGER_TOKEN": AM_TOKEN})
    api = create_api(app, Settings(api_token=None))
    api.state.hooks = HookReceiver(config)
    transport = httpx.ASGITransport(app=api)
    headers = await auth_headers(app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://opsloom.test", headers=headers
    ) as client:
        yield client


def assert_problem(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert words in response.json()["detail"], response.json()["detail"]


async def run_ids(app: App) -> list[str]:
    return [run.id for run in await app.list_runs(limit=100)]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (DEEP, "nested deeper than 200 levels"),
        ("[" * 201 + "]" * 201, "nested deeper than 200 levels"),
        ("1" * 5000, "a number is too long"),
        ("[NaN]", "NaN is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
    ],
)
async def test_start__unacceptable_json_input_is_422_and_creates_no_run(
    app: App, client: httpx.AsyncClient, text: str, words: str
) -> None:
    body = '{"workflow": "hold", "input": ' + text + "}"
    response = await client.post("/api/v1/runs", content=body)
    assert_problem(response, 422, words)
    assert await run_ids(app) == []


async def test_signal_and_events__deep_nesting_is_4xx_and_stores_nothing(
    app: App, client: httpx.AsyncClient
) -> None:
    started = await client.post("/api/v1/runs", json={"workflow": "hold", "run_id": "r1"})
    assert started.status_code == 201
    signal = await client.post("/api/v1/runs/r1/signals/go", content=DEEP)
    assert_problem(signal, 422, "nested deeper")
    event = await client.post(
        "/api/v1/events",
        content='{"specversion": "1.0", "source": "s", "type": "t", "data": ' + DEEP + "}",
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert_problem(event, 400, "nested deeper")
    assert await app.store.list_events(EventQuery(limit=10)) == []
    assert (await app.get_run("r1")).status.value != "completed"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"workflow": "hold", "priority": 2**63}, "less than or equal to 9223372036854775807"),
        ({"workflow": "hold", "priority": -(2**63) - 1}, "greater than or equal to"),
        ({"workflow": "hold", "run_id": "caf\u00e9"}, "should match pattern"),
        ({"workflow": "hold", "run_id": "a\r\nSet-Cookie: x=1"}, "should match pattern"),
        ({"workflow": "hold", "run_id": "with space"}, "should match pattern"),
        ({"workflow": "hold", "run_id": "x" * 201}, "should match pattern"),
    ],
)
async def test_start__bad_run_id_or_priority_is_422_and_creates_no_run(
    app: App, client: httpx.AsyncClient, body: dict[str, Any], words: str
) -> None:
    response = await client.post("/api/v1/runs", content=json.dumps(body))
    assert_problem(response, 422, words)
    assert "OverflowError" not in response.text
    assert await run_ids(app) == []


async def test_app_start__refuses_bad_run_ids_and_priorities_before_creating(app: App) -> None:
    with pytest.raises(InputError, match=r"not '\\r' \(at 1\)"):
        await app.start("hold", run_id="a\r\nb")
    with pytest.raises(InputError, match="priority must be between"):
        await app.start("hold", priority=2**63)
    assert await run_ids(app) == []


async def test_runs_with_slash_and_hash_in_their_ids_are_addressable(
    app: App, client: httpx.AsyncClient
) -> None:
    run_id = "doc:ops/x#0f?a=b%"
    started = await client.post("/api/v1/runs", json={"workflow": "hold", "run_id": run_id})
    assert started.status_code == 201, started.text
    location = started.headers["location"]
    assert location == "/api/v1/runs/doc:ops/x%230f%3Fa=b%25"
    shown = await client.get(location)
    assert shown.status_code == 200, shown.text
    assert shown.json()["id"] == run_id
    signalled = await client.post(location + "/signals/go", json={"ok": True})
    assert signalled.status_code == 202, signalled.text
    assert signalled.json() == {"run_id": run_id, "signal": "go"}


async def test_events__before_beyond_64_bits_is_422(client: httpx.AsyncClient) -> None:
    for value in ("1e23", str(2**63)):
        response = await client.get("/api/v1/events", params={"before": value})
        assert_problem(response, 422, "before")


# The second has 19 digits only, yet is below -2**63: beyond 64 bits as well.
@pytest.mark.parametrize("big", [2**64 + 12345, -(2**63) - 1])
async def test_webhook__integers_beyond_64_bits_are_stored_losslessly(
    app: App, client: httpx.AsyncClient, big: int
) -> None:
    alert = {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "severity": "critical"},
        "annotations": {"summary": "disk"},
        "startsAt": "2024-05-06T14:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "f1",
        "generatorURL": "http://prometheus/graph",
        "inode": big,
    }
    body = {
        "version": "4",
        "groupKey": "g",
        "status": "firing",
        "receiver": "opsloom",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "alerts": [alert],
        "truncatedAlerts": 0,
    }
    headers = {"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"}
    response = await client.post("/hooks/alertmanager", content=json.dumps(body), headers=headers)
    assert response.status_code == 202, response.text
    [stored] = await app.store.list_events(EventQuery(limit=10))
    assert stored.event.data["raw"] == alert
    assert type(stored.event.data["raw"]["inode"]) is int
