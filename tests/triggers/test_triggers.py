"""Triggers end to end on an App: Alertmanager alerts start runs, one per open fingerprint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from opsloom import App, Context, FakeClock
from opsloom.model import RunStatus
from opsloom.model.trigger import INBOX
from opsloom.store import RunFilter
from opsloom.triggers.sources.alertmanager import AlertmanagerSource
from opsloom.triggers.sources.base import WebhookRequest

FIRING = "io.opsloom.alert.firing.v1"
RESOLVED = "io.opsloom.alert.resolved.v1"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true, polling; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def parked(app: App, run_id: str) -> None:
    """The run is waiting and no worker holds it in memory."""

    async def check() -> bool:
        run = await app.get_run(run_id)
        return (
            run.status is RunStatus.WAITING
            and app.worker is not None
            and run_id not in app.worker.executions
        )

    await eventually(check)


def notification(status: str, starts_at: str, fingerprint: str = "fp-1") -> WebhookRequest:
    """An Alertmanager webhook (version 4) with one alert."""
    alert = {
        "status": status,
        "labels": {"alertname": "HighLatency", "service": "api", "severity": "critical"},
        "annotations": {"summary": "p99 above 2s"},
        "startsAt": starts_at,
        "endsAt": "2026-01-01T00:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }
    body = {"version": "4", "status": status, "receiver": "opsloom", "alerts": [alert]}
    return WebhookRequest.build(json.dumps(body).encode())


async def deliver(app: App, status: str, starts_at: str, fingerprint: str = "fp-1") -> None:
    events = AlertmanagerSource().normalise(notification(status, starts_at, fingerprint))
    assert all(r.stored for r in await app.emit_events(events))


async def triggered(app: App, workflow: str = "incident") -> list[Any]:
    runs = await app.store.list_runs(RunFilter(workflow=workflow))
    return sorted(runs, key=lambda r: (r.created_at, r.id))


def incident_app(make_app: Callable[..., App], clock: FakeClock, **trigger: Any) -> App:
    """A workflow that follows one alert until it is resolved, counting repeat firings."""
    app = make_app(clock=clock)

    @app.workflow(name="incident")
    async def incident(ctx: Context, alert: dict[str, Any]) -> dict[str, Any]:
        repeats = 0
        while True:
            delivery = await ctx.wait_for(INBOX)
            if delivery["event"]["type"] == RESOLVED:
                break
            repeats += 1
        return {"labels": alert["data"]["labels"], "repeats": repeats}

    app.trigger("incident", on={"type": FIRING}, **trigger)
    return app


async def test_alert_lifecycle__one_run_per_open_fingerprint(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = incident_app(make_app, clock)
    async with app:
        await deliver(app, "firing", "2026-01-01T00:00:00Z")
        [run] = await triggered(app)
        assert run.input["data"]["labels"]["alertname"] == "HighLatency"
        assert run.input["subject"] == "fp-1" and run.event_id is not None
        await parked(app, run.id)
        # Alertmanager fires it again (a new startsAt): the open run gets it, nothing starts.
        await deliver(app, "firing", "2026-01-01T00:05:00Z")
        await deliver(app, "resolved", "2026-01-01T00:05:00Z")
        result = await app.handle(run.id).result(timeout=10)
        assert result == {
            "labels": {"alertname": "HighLatency", "service": "api", "severity": "critical"},
            "repeats": 1,
        }
        assert len(await triggered(app)) == 1
        # After the run ended, the next firing is a new incident.
        await deliver(app, "firing", "2026-01-01T01:00:00Z")
        runs = await triggered(app)
        assert len(runs) == 2 and runs[1].id != run.id
        assert runs[1].status is not RunStatus.COMPLETED


async def test_alert_lifecycle__window_suppresses_a_flap(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = incident_app(make_app, clock, window=300)
    async with app:
        await deliver(app, "firing", "2026-01-01T00:00:00Z")
        [run] = await triggered(app)
        await deliver(app, "resolved", "2026-01-01T00:00:00Z")
        await app.handle(run.id).result(timeout=10)
        clock.advance(60)
        await deliver(app, "firing", "2026-01-01T00:01:00Z")
        assert len(await triggered(app)) == 1, "re-fired within 300 s of the end: suppressed"
        await deliver(app, "firing", "2026-01-01T00:01:00Z", fingerprint="fp-2")
        assert len(await triggered(app)) == 2, "another fingerprint is not affected"
        clock.advance(241)
        await deliver(app, "firing", "2026-01-01T00:06:00Z")
        assert len(await triggered(app)) == 3


async def test_inbox__events_before_the_first_wait_for_event_are_not_lost(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    gate = asyncio.Event()

    @app.step()
    async def slow_enrich(alert: dict[str, Any]) -> str:
        await gate.wait()
        return str(alert["subject"])

    @app.workflow(name="incident")
    async def incident(ctx: Context, alert: dict[str, Any]) -> list[str]:
        fingerprint = await ctx.step(slow_enrich, alert)
        seen = []
        for _ in range(2):
            event = await ctx.wait_for_event({"type": FIRING, "subject": fingerprint})
            seen.append(event["data"]["startsAt"])
        resolved = await ctx.wait_for_event({"type": RESOLVED, "subject": fingerprint})
        return [*seen, resolved["data"]["status"]]

    app.trigger("incident", on={"type": FIRING})
    async with app:
        await deliver(app, "firing", "2026-01-01T00:00:00Z")
        [run] = await triggered(app)
        # While the run is busy in its first step, three more events of its alert arrive.
        await deliver(app, "firing", "2026-01-01T00:01:00Z")
        await deliver(app, "firing", "2026-01-01T00:02:00Z")
        await deliver(app, "resolved", "2026-01-01T00:02:00Z")
        gate.set()
        assert await app.handle(run.id).result(timeout=10) == [
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:02:00Z",
            "resolved",
        ]
        assert len(await triggered(app)) == 1


async def test_all_mode__a_deploy_and_an_alert_of_one_service_start_a_run(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="rollback")
    async def rollback(ctx: Context, value: dict[str, Any]) -> list[str]:
        return [e["type"] for e in value["events"]]

    app.trigger(
        "rollback",
        on=[
            {"type": "io.example.deploy.v1"},
            {"type": FIRING, "where": ".data.labels.service != null"},
        ],
        mode="all",
        key=".data.service // .data.labels.service",
    )
    async with app:
        await app.emit(
            {
                "specversion": "1.0",
                "id": "d1",
                "source": "ci",
                "type": "io.example.deploy.v1",
                "data": {"service": "api"},
            }
        )
        assert await triggered(app, "rollback") == []
        await deliver(app, "firing", "2026-01-01T00:00:00Z")
        [run] = await triggered(app, "rollback")
        assert await app.handle(run.id).result(timeout=10) == ["io.example.deploy.v1", FIRING]


async def test_workflow_on__registers_a_trigger_saved_when_the_worker_opens(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="page", on={"type": FIRING, "where": '.data.severity == "critical"'})
    async def page(ctx: Context, alert: dict[str, Any]) -> str:
        return str(alert["subject"])

    async with app:
        [trigger] = await app.store.list_triggers()
        assert (trigger.id, trigger.workflow, trigger.version, trigger.mode) == (
            "code:page",
            "page",
            "1",
            "one",
        )
        assert trigger.follow == [{"type": RESOLVED}]
        await deliver(app, "firing", "2026-01-01T00:00:00Z", fingerprint="fp-9")
        [run] = await triggered(app, "page")
        assert await app.handle(run.id).result(timeout=10) == "fp-9"


def test_trigger__a_bad_declaration_fails_at_registration() -> None:
    from opsloom.errors import ConfigurationError

    app = App("sqlite:///unused.db", worker=None)
    with pytest.raises(ConfigurationError, match="mode"):
        app.trigger("wf", on={"type": FIRING}, mode="some")
    with pytest.raises(ConfigurationError, match="jq"):
        app.trigger("wf", on={"type": FIRING}, key=".subject |")
    with pytest.raises(ConfigurationError, match="type"):
        app.trigger("wf", on={"source": "x"})
