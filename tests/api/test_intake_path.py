"""The short intake path answers exactly as FastAPI's routes do, and skips their routing.

Two APIs on two fresh stores get the same requests: one as ``create_api`` builds it (intake
requests take :class:`~opsloom.api.intake.IntakePath`), one with that middleware removed (every
request goes through FastAPI's routing and dependencies). Their answers must be the same.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authkit import bearer
from fastapi import FastAPI

from opsloom import App, FakeClock
from opsloom.api import create_api
from opsloom.api.intake import IntakePath
from opsloom.api.routes.hooks import HookReceiver
from opsloom.settings import Settings
from opsloom.store.event import EventQuery
from opsloom.triggers.sources import load_hooks_config

AM_TOKEN = "alertmanager-token"
NOW = 1_715_004_000.0
CE = {"content-type": "application/cloudevents+json"}


def notification(fingerprint: str) -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "service": "checkout", "severity": "critical"},
        "annotations": {"summary": "Disk almost full"},
        "startsAt": "2024-05-06T14:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()


def event(source: str, event_id: str = "e-1") -> bytes:
    return json.dumps(
        {"specversion": "1.0", "id": event_id, "source": source, "type": "alert.firing"}
    ).encode()


class Side:
    """One API on its own store, with an admin and a viewer token."""

    def __init__(self, app: App, api: FastAPI, admin: str, viewer: str) -> None:
        self.app, self.api, self.admin, self.viewer = app, api, admin, viewer
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api), base_url="http://opsloom.test"
        )

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        headers = {
            k: v.replace("{admin}", self.admin).replace("{viewer}", self.viewer)
            for k, v in headers.items()
        }
        return await self.client.post(path, content=body, headers=headers)


async def side(tmp_path: Path, name: str, *, short: bool) -> AsyncIterator[Side]:
    app = App(f"sqlite:///{tmp_path / name}.db", clock=FakeClock(NOW))
    async with app:
        api = create_api(app, Settings(api_token=None))
        if not short:
            api.user_middleware = [m for m in api.user_middleware if m.cls is not IntakePath]
        hooks = load_hooks_config(environ={"OPSLOOM_HOOKS_ALERTMANAGER_TOKEN": AM_TOKEN})
        api.state.hooks = HookReceiver(hooks)
        admin = await bearer(app, "admin", ("admin",))
        viewer = await bearer(app, "viewer", ("viewer",))
        one = Side(app, api, admin, viewer)
        async with one.client:
            yield one


@pytest.fixture
async def short(tmp_path: Path) -> AsyncIterator[Side]:
    async for one in side(tmp_path, "short", short=True):
        yield one


@pytest.fixture
async def routed(tmp_path: Path) -> AsyncIterator[Side]:
    async for one in side(tmp_path, "routed", short=False):
        yield one


AM = {"authorization": f"Bearer {AM_TOKEN}", "content-type": "application/json"}
ADMIN = {"authorization": "Bearer {admin}", **CE}
CASES: list[tuple[str, bytes, dict[str, str]]] = [
    ("/hooks/alertmanager", notification("a1"), AM),
    ("/hooks/alertmanager", notification("a1"), AM),  # a repeat: listed as a duplicate
    ("/hooks/alertmanager", notification("a2"), {**AM, "authorization": "Bearer wrong"}),
    ("/hooks/alertmanager", b"{not json", AM),
    ("/hooks/alertmanager", b'{"alerts": [NaN]}', AM),
    ("/hooks/nosuch", notification("a3"), AM),
    ("/hooks/generic/nosuch", b"{}", {"content-type": "application/json"}),
    ("/api/v1/events", event("/ci"), ADMIN),
    ("/api/v1/events", event("/ci"), ADMIN),
    ("/api/v1/events", event("/ci", "e-2"), CE),
    ("/api/v1/events", event("/ci", "e-2"), {"authorization": "Basic eDp5", **CE}),
    ("/api/v1/events", event("/ci", "e-2"), {"authorization": "Bearer nope", **CE}),
    ("/api/v1/events", event("/ci", "e-2"), {"authorization": "Bearer {viewer}", **CE}),
    ("/api/v1/events", event("/hooks/alertmanager", "e-3"), ADMIN),
    ("/api/v1/events", b'{"specversion": "1.0"}', ADMIN),
    ("/api/v1/events", event("/ci", "e-4"), {**ADMIN, "content-type": "text/csv"}),
]


#: Requests the short path leaves to FastAPI.
PASSED_ON = [
    ("GET", "/hooks/alertmanager"),
    ("POST", "/hooks/alertmanager/extra"),
    ("POST", "/hooks/"),
    ("POST", "/hooks/generic/"),
    ("POST", "/api/v1/events/e-1"),
    ("POST", "/api/v1/runs"),
]


def answer(response: httpx.Response) -> tuple[int, str | None, str | None, Any]:
    return (
        response.status_code,
        response.headers.get("content-type"),
        response.headers.get("www-authenticate"),
        response.json(),
    )


async def test_intake_path__answers_as_the_routes_do(short: Side, routed: Side) -> None:
    for path, body, headers in CASES:
        got, want = await short.post(path, body, headers), await routed.post(path, body, headers)
        assert answer(got) == answer(want), (path, body, headers)
        # The security headers and the body limit still wrap the short path.
        assert got.headers["x-frame-options"] == "DENY"
    stored = [await side.app.store.list_events(EventQuery(limit=20)) for side in (short, routed)]
    got, want = ([(e.event.source, e.event.id) for e in events] for events in stored)
    assert got == want
    assert len(got) >= 2


async def test_intake_path__takes_only_intake_posts(short: Side) -> None:
    # The short path in front of an app that records what reaches it: intake POSTs are
    # answered without it, everything else goes on to it.
    reached: list[tuple[str, str]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    path = IntakePath(inner)

    async def front(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = short.api  # as Starlette sets it before its middleware
        await path(scope, receive, send)

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=front), base_url="http://t")
    async with client:
        stored = await client.post("/hooks/alertmanager", content=notification("b1"), headers=AM)
        assert stored.status_code == 202, stored.text
        for method, url in PASSED_ON:
            assert (await client.request(method, url, content=b"{}")).status_code == 204
    assert reached == PASSED_ON


async def test_intake_path__body_limit_still_applies(short: Side) -> None:
    response = await short.post("/api/v1/events", b" " * (2 << 20), ADMIN)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
