"""The short intake path answers exactly as FastAPI's routes do, and skips their routing.

Two APIs on two fresh stores get the same requests: one as ``create_api`` builds it (intake
requests take :class:`~opsloom.api.intake.IntakePath`, in front of FastAPI's whole stack), one
without it (every request goes through FastAPI's middleware, routing and dependencies). Their
answers must be the same, and the short path keeps the body limit, the security headers and
authentication before the body.
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
            api.intake = None
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
    intake = short.api.intake
    assert intake is not None

    def scope(method: str, path: str) -> dict[str, Any]:
        return {"type": "http", "method": method, "path": path, "headers": []}

    for path in ("/hooks/alertmanager", "/hooks/generic/deploys", "/api/v1/events"):
        assert intake.route(scope("POST", path)) is not None, path
    for method, path in PASSED_ON:
        assert intake.route(scope(method, path)) is None, (method, path)
    # What the short path passes on is FastAPI's to answer: a GET of a hook is a 405.
    response = await short.client.get("/hooks/alertmanager")
    assert response.status_code == 405
    assert response.headers["x-frame-options"] == "DENY"


async def test_intake_path__body_limit_still_applies(short: Side) -> None:
    response = await short.post("/api/v1/events", b" " * (2 << 20), ADMIN)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


async def chunks(data: bytes, size: int = 64 << 10) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/hooks/alertmanager", AM), ("/api/v1/events", ADMIN)],
)
async def test_intake_path__streamed_body_over_the_limit_is_refused(
    short: Side, path: str, headers: dict[str, str]
) -> None:
    # No Content-Length: the body is streamed, and cut off once past the limit.
    big = notification("big")[:-1] + b" " * (2 << 20) + b"}"
    sent = {k: v.replace("{admin}", short.admin) for k, v in headers.items()}
    response = await short.client.post(path, content=chunks(big), headers=sent)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "body_too_large"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert await short.app.store.list_events(EventQuery(limit=5)) == []


async def test_intake_path__events_authenticate_before_reading_the_body(short: Side) -> None:
    intake = short.api.intake
    assert intake is not None
    reads: list[str] = []
    answers: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        reads.append("read")
        return {"type": "http.request", "body": event("/ci"), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        answers.append(message)

    for authorization in (None, b"Bearer not-a-token", b"Bearer {viewer}"):
        headers = [(b"content-type", CE["content-type"].encode())]
        if authorization is not None:
            value = authorization.replace(b"{viewer}", short.viewer.encode())
            headers.append((b"authorization", value))
        scope = {"type": "http", "method": "POST", "path": "/api/v1/events", "headers": headers}
        await short.api(scope, receive, send)
    assert reads == []
    assert [m["status"] for m in answers if m["type"] == "http.response.start"] == [401, 401, 403]


async def test_intake_path__unexpected_error_is_a_problem_with_headers(
    short: Side, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(events: object) -> None:
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr(short.app, "emit_events", broken)
    response = await short.post("/hooks/alertmanager", notification("c1"), AM)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-frame-options"] == "DENY"
    assert "disk caught fire" not in response.text
