"""The connector runtime: connections at rest, breaker through the store, events, limits."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, PrivateAttr, SecretStr

from opsloom import App, Context, FakeClock
from opsloom.connectors import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.connectors.event import CLOSED, OPENED
from opsloom.connectors.runtime import ConnectorRuntime
from opsloom.connectors.testing import FakeRequest, FakeResponse, FakeVendor
from opsloom.errors import (
    CircuitOpenError,
    ConnectionNotFoundError,
    ConnectorPermanentError,
    ConnectorRetryableError,
    InputError,
    RateLimitedError,
    RunFailedError,
)

SECRET = "tok-very-secret-value"


class EchoSettings(ConnectionSettings):
    url: str
    token: SecretStr


def _endpoint(s: EchoSettings) -> Endpoint:
    return Endpoint(s.url, {"Authorization": f"Bearer {s.token.get_secret_value()}"})


echo = Connector("echo", EchoSettings, title="Echo", endpoint=_endpoint)


class Say(BaseModel):
    text: str


class Said(BaseModel):
    text: str
    key: str | None


@echo.action
async def say(ctx: ActionContext[EchoSettings], data: Say) -> Said:
    """Send text; the echo answers it back."""
    body = await ctx.client.json("POST", "/say", json={"text": data.text})
    return Said(text=body["text"], key=ctx.idempotency_key)


def echo_fake() -> FakeVendor:
    def answer(request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            200, {"text": f"{request.json['text']} (auth {request.headers['authorization']})"}
        )

    return FakeVendor(None, {("POST", "/say"): answer})


@pytest.fixture
def fake() -> Iterator[FakeVendor]:
    with echo_fake() as vendor:
        yield vendor


async def add(ops: App, url: str, **extra: Any) -> None:
    ops.connections.registry.register(echo)
    await ops.connections.add_connection("e1", "echo", {"url": url, "token": SECRET, **extra})


async def test_secrets__sealed_at_rest_never_listed_and_redacted_from_output(
    ops: App, fake: FakeVendor, db_url: str
) -> None:
    await add(ops, fake.url)
    shown = await ops.connections.connection("e1")
    assert shown["secrets"] == ["token"] and SECRET not in str(shown)
    if db_url.startswith("sqlite"):
        raw = (
            sqlite3.connect(db_url.removeprefix("sqlite:///"))
            .execute("SELECT settings, secrets FROM connections")
            .fetchall()
        )
        assert SECRET not in str(raw)
    out = await ops.connections.call(say, "e1", {"text": "hi"})
    assert out == {"text": "hi (auth Bearer ***)", "key": None}


async def test_connection_errors(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake.url)
    with pytest.raises(ConnectionNotFoundError):
        await ops.connections.call(say, "nope", {"text": "x"})
    with pytest.raises(InputError, match="exists"):
        await ops.connections.add_connection("e1", "echo", {"url": "x", "token": "y"})
    with pytest.raises(ConnectorPermanentError, match="text"):
        await ops.connections.call(say, "e1", {})
    other = Connector("other", EchoSettings, title="Other", endpoint=_endpoint)
    ops.connections.registry.register(other)
    await ops.connections.add_connection("o1", "other", {"url": fake.url, "token": "zzzz"})
    with pytest.raises(ConnectorPermanentError, match="needs a echo one"):
        await ops.connections.call(say, "o1", {"text": "x"})


async def test_replace__merges_and_takes_effect_at_once(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake.url)
    await ops.connections.call(say, "e1", {"text": "a"})
    await ops.connections.add_connection("e1", "echo", {"token": "new-token-value"}, replace=True)
    out = await ops.connections.call(say, "e1", {"text": "b"})
    assert fake.last().headers["authorization"] == "Bearer new-token-value"
    assert "new-token-value" not in out["text"]


class HeldSettings(ConnectionSettings):
    """A connection that holds a resource of its own (an SDK client, a session)."""

    label: str
    _opened: list[str] = PrivateAttr(default_factory=list)
    _closed: ClassVar[list[str]] = []

    async def aclose(self) -> None:
        HeldSettings._closed.extend(self._opened)
        self._opened.clear()


held = Connector("held", HeldSettings, title="Held")


@held.action
async def use(ctx: ActionContext[HeldSettings], data: Say) -> Said:
    """Open the connection's resource on first use."""
    if not ctx.settings._opened:
        ctx.settings._opened.append(f"{ctx.settings.label}:{data.text}")
    return Said(text=data.text, key=None)


async def test_resources__released_when_a_connection_changes_and_when_the_app_closes(
    fresh: App,
) -> None:
    HeldSettings._closed.clear()
    fresh.connections.registry.register(held)
    async with fresh:
        await fresh.connections.add_connection("h1", "held", {"label": "old"})
        await fresh.connections.call(use, "h1", {"text": "a"})
        await fresh.connections.call(use, "h1", {"text": "b"})  # same live connection
        assert HeldSettings._closed == []
        await fresh.connections.add_connection("h1", "held", {"label": "new"}, replace=True)
        assert HeldSettings._closed == ["old:a"]
        await fresh.connections.call(use, "h1", {"text": "c"})
    assert HeldSettings._closed == ["old:a", "new:c"]


async def test_breaker__dead_endpoint_opens_fails_fast_and_recovery_closes(
    ops: App, fake: FakeVendor, clock: FakeClock
) -> None:
    events: list[dict[str, Any]] = []
    await add(ops, fake.url, breaker={"failures": 3, "cooldown": 30, "successes": 1})
    fake.stop()
    for _ in range(3):
        with pytest.raises(ConnectorRetryableError, match="request failed"):
            await ops.connections.call(say, "e1", {"text": "x"})
    with pytest.raises(CircuitOpenError) as caught:
        await ops.connections.call(say, "e1", {"text": "x"})
    assert caught.value.retry_after == 30.0
    await ops.connections.flush()
    stored = await ops.store.list_breakers()
    assert [(b.connection, b.state) for b in stored] == [("e1", "open")]
    events = [e.event.to_dict() for e in reversed(await ops.store.list_events(_query()))]
    assert [e["type"] for e in events] == [OPENED]
    assert events[0]["subject"] == "e1" and "3 consecutive failures" in events[0]["data"]["reason"]

    fake.start()
    clock.advance(30)
    assert (await ops.connections.call(say, "e1", {"text": "back"}))["text"].startswith("back")
    await ops.connections.flush()
    assert ops.connections.breaker("e1")["state"] == "closed"
    types = [e.event.type for e in reversed(await ops.store.list_events(_query()))]
    assert types == [OPENED, CLOSED]


async def test_breaker__state_survives_a_restart_and_reaches_other_workers(
    ops: App, fake: FakeVendor, clock: FakeClock
) -> None:
    await add(ops, fake.url, breaker={"failures": 1, "cooldown": 60})
    other = ConnectorRuntime(ops.connections.registry, clock=clock)
    await other.open(ops.store, sync_seconds=None)
    try:
        await other.call(say, "e1", {"text": "warm"})  # the other worker knows the connection
        fake.stop()
        with pytest.raises(ConnectorRetryableError):
            await ops.connections.call(say, "e1", {"text": "x"})
        await ops.connections.flush()
        await other.refresh()
        with pytest.raises(CircuitOpenError):
            await other.call(say, "e1", {"text": "x"})
        fresh = ConnectorRuntime(ops.connections.registry, clock=clock)
        await fresh.open(ops.store, sync_seconds=None)
        assert fresh.breaker("e1")["state"] == "open"
        await fresh.close()
    finally:
        await other.close()


async def test_rate_limit__short_waits_in_line_long_ones_durable(
    ops: App, fake: FakeVendor
) -> None:
    await add(ops, fake.url, rate_limit={"rate": 0.1, "burst": 1})
    await ops.connections.call(say, "e1", {"text": "1"})
    with pytest.raises(RateLimitedError) as caught:
        await ops.connections.call(say, "e1", {"text": "2"})
    assert caught.value.retry_after == pytest.approx(10.0)


def _query() -> Any:
    from opsloom.store.event import EventQuery

    return EventQuery(subject="e1")


async def test_redaction__a_failed_step_stores_no_secret(fresh: App, fake: FakeVendor) -> None:
    @fresh.workflow(name="leaky")
    async def leaky(ctx: Context) -> dict[str, Any]:
        return await ctx.step(say, connection="e1", text="x")

    fake.fail_next(FakeResponse(401, f"bad token {SECRET}", {"Content-Type": "text/plain"}))
    async with fresh:
        await add(fresh, fake.url)
        handle = await fresh.start("leaky")
        with pytest.raises(RunFailedError) as caught:
            await handle.result(timeout=10)
        run = await fresh.get_run(handle.run_id)
    assert SECRET not in str(caught.value) and "bad token ***" in str(caught.value)
    assert SECRET not in repr(run.error) and SECRET not in repr([s.error for s in run.steps])
