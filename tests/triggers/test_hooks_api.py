"""``/hooks/…`` end to end: a real App on a SQLite file, the API through ASGI."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from hookkit import b64_hmac, hex_hmac, payload

from opsloom import App, FakeClock
from opsloom.api import create_api
from opsloom.api.routes import hooks
from opsloom.settings import Settings
from opsloom.store.event import EventQuery
from opsloom.triggers.sources import HooksConfig, load_hooks_config

PROBLEM = "application/problem+json"
GITHUB_SECRET = "It's a Secret to Everybody"
AM_TOKEN = "alertmanager-token"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_715_004_000.0


def hooks_config() -> HooksConfig:
    return load_hooks_config(
        environ={
            "OPSLOOM_HOOKS_GITHUB_SECRET": GITHUB_SECRET,
            "OPSLOOM_HOOKS_ALERTMANAGER_TOKEN": AM_TOKEN,
            "OPSLOOM_HOOKS_GENERIC_DEPLOYS_SECRET": WHSEC,
        }
    )


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(f"sqlite:///{tmp_path / 'hooks.db'}", clock=FakeClock(NOW))
    async with app:
        yield app


def api_for(app: App, settings: Settings) -> FastAPI:
    api = create_api(app, settings)
    # The hook routes are mounted by create_api; a tree where they are not yet gets them here.
    if not any(getattr(route, "path", "") == "/hooks/{source}" for route in api.routes):
        api.include_router(hooks.router)
    return api


@pytest.fixture
def receiver() -> hooks.HookReceiver:
    return hooks.HookReceiver(hooks_config())


@pytest.fixture
async def client(app: App, receiver: hooks.HookReceiver) -> AsyncIterator[httpx.AsyncClient]:
    # The API token guards /api/v1 only: hook routes check their sources' own credentials.
    api = api_for(app, Settings(api_token="api-token"))
    api.state.hooks = receiver
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsloom.test") as client:
        yield client


async def stored(app: App) -> list[str]:
    return [item.event.id for item in await app.store.list_events(EventQuery(limit=100))]


def github_headers(
    body: bytes, delivery: str = "d-1", secret: str = GITHUB_SECRET
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hex_hmac(secret, body),
    }


async def test_github__accepted_then_stored_then_repeat_is_a_duplicate(
    app: App, client: httpx.AsyncClient
) -> None:
    body = payload("github_issues.json")
    first = await client.post("/hooks/github", content=body, headers=github_headers(body))
    assert first.status_code == 202, first.text
    [event_id] = first.json()["accepted"]
    event = await app.store.get_event("/hooks/github", event_id)
    assert event is not None
    assert event.event.type == "io.opsloom.github.issues.v1"
    assert (event.event.data["delivery"], event.event.data["raw"]["issue"]["number"]) == ("d-1", 42)
    again = await client.post("/hooks/github", content=body, headers=github_headers(body))
    assert again.status_code == 202
    assert again.json() == {"accepted": [], "duplicates": [event_id]}
    # The delivery header is not signed: a captured request sent again under another one is
    # still the same event.
    replay = await client.post(
        "/hooks/github", content=body, headers=github_headers(body, delivery="d-forged")
    )
    assert replay.json() == {"accepted": [], "duplicates": [event_id]}
    assert await stored(app) == [event_id]


async def test_github__bad_signature_is_401_and_nothing_is_stored(
    app: App, client: httpx.AsyncClient, receiver: hooks.HookReceiver
) -> None:
    body = payload("github_issues.json")
    response = await client.post(
        "/hooks/github", content=body, headers=github_headers(body, secret="guess")
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "webhook_unauthorized"
    assert problem["reason"] == "bad_signature"
    assert "X-Hub-Signature-256" in problem["detail"]
    assert await stored(app) == []
    assert receiver.rejections.count("github", "bad_signature") == 1


async def test_alertmanager__one_event_per_alert_and_a_repeat_is_a_duplicate(
    app: App, client: httpx.AsyncClient
) -> None:
    body = payload("alertmanager_v4.json")
    headers = {"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"}
    first = await client.post("/hooks/alertmanager", content=body, headers=headers)
    assert first.status_code == 202, first.text
    accepted = first.json()["accepted"]
    assert len(accepted) == 2
    firing = await app.store.list_events(EventQuery(type="io.opsloom.alert.firing.v1"))
    assert [item.event.subject for item in firing] == ["1a30ba71cca2921f"]
    assert firing[0].event.data["severity"] == "critical"
    again = await client.post("/hooks/alertmanager", content=body, headers=headers)
    assert again.json() == {"accepted": [], "duplicates": accepted}
    assert sorted(await stored(app)) == sorted(accepted)


async def test_alertmanager__missing_credentials_is_401(
    app: App, client: httpx.AsyncClient, receiver: hooks.HookReceiver
) -> None:
    response = await client.post("/hooks/alertmanager", content=payload("alertmanager_v4.json"))
    assert response.status_code == 401
    assert response.json()["reason"] == "missing_credentials"
    assert await stored(app) == []
    assert receiver.rejections.snapshot() == {("alertmanager", "missing_credentials"): 1}


async def test_alertmanager__verified_but_malformed_payload_is_400_naming_the_field(
    app: App, client: httpx.AsyncClient
) -> None:
    body = json.dumps({"alerts": [{"status": "firing", "labels": "oops"}]}).encode()
    response = await client.post(
        "/hooks/alertmanager", content=body, headers={"Authorization": f"Bearer {AM_TOKEN}"}
    )
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "invalid_webhook"
    assert problem["field"] == "alerts[0].labels"
    assert await stored(app) == []


async def test_generic__standard_webhooks_delivery_within_the_window(
    app: App, client: httpx.AsyncClient
) -> None:
    body = b'{"type": "deploy.finished", "data": {"service": "checkout"}}'
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    stamp = str(int(NOW))
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + b64_hmac(key, f"msg_1.{stamp}.".encode() + body),
    }
    response = await client.post("/hooks/generic/deploys", content=body, headers=headers)
    assert response.status_code == 202, response.text
    event = await app.store.get_event("/hooks/generic/deploys", "msg_1")
    assert event is not None
    assert event.event.type == "io.opsloom.generic.deploys.deploy.finished.v1"
    stale = {**headers, "webhook-id": "msg_2"}
    stale["webhook-timestamp"] = str(int(NOW) - 3600)
    stale["webhook-signature"] = "v1," + b64_hmac(
        key, f"msg_2.{stale['webhook-timestamp']}.".encode() + body
    )
    rejected = await client.post("/hooks/generic/deploys", content=body, headers=stale)
    assert rejected.status_code == 401
    assert rejected.json()["reason"] == "stale_timestamp"
    assert await stored(app) == ["msg_1"]


async def test_unconfigured_and_unknown_hooks(client: httpx.AsyncClient) -> None:
    unconfigured = await client.post("/hooks/sentry", content=b"{}")
    assert unconfigured.status_code == 401
    assert unconfigured.json()["reason"] == "not_configured"
    unknown = await client.post("/hooks/nagios", content=b"{}")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "hook_not_found"
    generic = await client.post("/hooks/generic/nobody", content=b"{}")
    assert generic.status_code == 401


async def test_body_over_one_mebibyte_is_413(
    app: App, client: httpx.AsyncClient, receiver: hooks.HookReceiver
) -> None:
    body = b"x" * (hooks.MAX_BODY_BYTES + 1)
    response = await client.post("/hooks/github", content=body, headers=github_headers(body))
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b"y" * 65536

    # A streamed body (no Content-Length) is cut off as soon as it passes the limit.
    streamed = await client.post("/hooks/github", content=chunks())
    assert streamed.status_code == 413
    # The API's body limit answers before the receiver reads anything.
    assert streamed.json()["code"] == response.json()["code"] == "body_too_large"
    assert await stored(app) == []


async def test_settings_come_from_the_environment_when_none_were_given(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSLOOM_HOOKS_FILE", raising=False)
    monkeypatch.setenv("OPSLOOM_HOOKS_GITHUB_SECRET", "from-the-environment")
    api = api_for(app, Settings())
    body = payload("github_issues.json")
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsloom.test") as client:
        good = github_headers(body, "env-1", secret="from-the-environment")
        assert (await client.post("/hooks/github", content=body, headers=good)).status_code == 202
        bad = github_headers(body, "env-2")
        assert (await client.post("/hooks/github", content=body, headers=bad)).status_code == 401
    assert isinstance(api.state.hooks, hooks.HookReceiver)
    assert api.state.hooks.rejections.count("github") == 1
