"""Events in workflows: subscriptions wake waiting runs, ctx.emit stores events exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from engine_waits import eventually, parked

from opsloom import (
    App,
    Context,
    FakeClock,
    InputError,
    RetryPolicy,
    RunFailedError,
    WaitTimeoutError,
    WorkerOptions,
)
from opsloom.model import StepKind
from opsloom.store.event import EventQuery


def alert(event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "alertmanager/prod",
        "type": "alert.firing",
        **extra,
    }


async def test_wait_for_event__a_parked_run_is_woken_by_app_emit(
    make_app: Callable[..., App],
) -> None:
    app = make_app()

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> dict[str, Any]:
        return await ctx.wait_for_event({"type": "alert.firing", "subject": "db-1"})

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        other = await app.emit(alert("a1", subject="db-2"))  # does not match the filter
        await parked(app, handle.run_id)
        receipt = await app.emit(alert("a2", subject="db-1", data={"severity": "page"}))
        assert other.stored and receipt.stored and receipt.event_id == "a2"
        event = await handle.result(timeout=10)
        assert event["id"] == "a2" and event["data"] == {"severity": "page"}
        run = await app.get_run(handle.run_id)
        assert [(s.kind, s.name) for s in run.steps] == [
            (StepKind.VALUE, "subscribe"),
            (StepKind.SIGNAL, f"events:{handle.run_id}:1"),
            (StepKind.VALUE, "unsubscribe"),
        ]
        assert await app.store.subscriptions_of(handle.run_id) == []


async def test_subscribe__any_of_several_filters_reports_which_matched(
    make_app: Callable[..., App],
) -> None:
    app = make_app()

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> Any:
        sub = await ctx.subscribe(
            [
                {"type": "deploy.finished", "source": "ci"},
                {"type": "alert.firing", "where": '.data.severity == "page"'},
            ]
        )
        return await ctx.wait_for(f"events:{sub}")

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        await app.emit(alert("low", data={"severity": "info"}))
        await app.emit({**alert("ci-1"), "type": "deploy.finished", "source": "cd"})
        await app.emit(alert("high", data={"severity": "page"}))
        delivery = await handle.result(timeout=10)
    assert delivery["filter"] == 1
    assert delivery["event"]["id"] == "high"


async def test_subscribe__only_events_stored_after_it_are_delivered(
    make_app: Callable[..., App],
) -> None:
    app = make_app()

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> Any:
        await ctx.wait_for("ready")
        sub = await ctx.subscribe([{"type": "alert.firing"}])
        return (await ctx.wait_for(f"events:{sub}"))["event"]["id"]

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        await app.emit(alert("before"))
        await app.signal(handle.run_id, "ready")
        await eventually(lambda: _has_subscription(app, handle.run_id))
        await parked(app, handle.run_id)
        await app.emit(alert("after"))
        assert await handle.result(timeout=10) == "after"


async def _has_subscription(app: App, run_id: str) -> bool:
    return bool(await app.store.subscriptions_of(run_id))


def register_listener(app: App) -> None:
    @app.workflow(name="listener")
    async def listener(ctx: Context) -> list[str]:
        sub = await ctx.subscribe([{"type": "alert.firing"}])
        first = await ctx.wait_for(f"events:{sub}")
        second = await ctx.wait_for(f"events:{sub}")
        return [first["event"]["id"], second["event"]["id"]]


async def test_subscribe__survives_a_worker_restart_without_double_delivery(db_url: str) -> None:
    options = WorkerOptions(poll_seconds=0.05, reap_seconds=0.1, grace_seconds=1)
    first = App(db_url, worker=options)
    register_listener(first)
    async with first:
        handle = await first.start("listener")
        await parked(first, handle.run_id)
        assert (await first.emit(alert("e1"))).stored
        await eventually(lambda: _signal_consumed(first, handle.run_id))
        await parked(first, handle.run_id)
        [subscription] = await first.store.subscriptions_of(handle.run_id)

    second = App(db_url, worker=options)
    register_listener(second)
    async with second:
        assert await second.store.subscriptions_of(handle.run_id) == [subscription]
        duplicate = await second.emit(alert("e1"))  # the producer retried: not delivered twice
        assert not duplicate.stored
        await second.emit(alert("e2"))
        assert await second.result(handle.run_id, timeout=10) == ["e1", "e2"]
        run = await second.get_run(handle.run_id)
    assert [s.name for s in run.steps].count("subscribe") == 1
    assert await _events(db_url) == ["e2", "e1"]


async def _signal_consumed(app: App, run_id: str) -> bool:
    run = await app.get_run(run_id)
    return any(s.kind is StepKind.SIGNAL and s.output for s in run.steps)


async def _events(db_url: str) -> list[str]:
    app = App(db_url, worker=None)
    async with app:
        return [e.event.id for e in await app.store.list_events(EventQuery())]


async def test_emit__exactly_once_across_a_lost_worker(db_url: str) -> None:
    stuck = asyncio.Event()  # never set: the first worker hangs after emitting, like a dead one
    calls: list[str] = []

    def register(app: App, gate: asyncio.Event | None) -> None:
        @app.step(name="after")
        async def after() -> str:
            calls.append("after")
            if gate is not None:
                await gate.wait()
            return "done"

        @app.workflow(name="emitter")
        async def emitter(ctx: Context) -> dict[str, Any]:
            event = await ctx.emit({"type": "remediation.started", "data": {"service": "api"}})
            await ctx.step(after)
            return event

    first = App(
        db_url,
        worker=WorkerOptions(
            # No heartbeat renews the lease of this worker that plays a dead one.
            lease_seconds=30,
            heartbeat_seconds=3600,
            poll_seconds=0.05,
            reap_seconds=None,
            grace_seconds=0,
        ),
    )
    register(first, stuck)
    async with first:
        handle = await first.start("emitter")
        await eventually(lambda: asyncio.sleep(0, calls == ["after"]))
        # The clock starts after the claim, so that 31 s later is past the lease however long
        # opening the store and claiming took.
        later = FakeClock(start=time.time())
        second = App(
            db_url,
            clock=later,
            worker=WorkerOptions(lease_seconds=30, poll_seconds=0.05, reap_seconds=0.05),
        )
        register(second, None)
        async with second:
            later.advance(31)  # the first worker's lease expires: the run is replayed
            event = await second.result(handle.run_id, timeout=10)
            stored = await second.store.list_events(EventQuery(type="remediation.started"))
        stuck.set()
    assert calls == ["after", "after"], "the step after the emit ran again, the emit did not"
    assert len(stored) == 1
    assert stored[0].event.to_dict() == event
    assert event["id"] == f"{handle.run_id}:1"
    assert event["source"] == f"opsloom/runs/{handle.run_id}"
    assert event["specversion"] == "1.0" and event["time"].endswith("Z")
    assert event["data"] == {"service": "api"}


async def test_emit__wakes_a_run_waiting_for_it(make_app: Callable[..., App]) -> None:
    app = make_app()

    @app.workflow(name="waiter")
    async def waiter(ctx: Context) -> Any:
        event = await ctx.wait_for_event({"type": "change.approved", "subject": "chg-7"})
        return event["data"]

    @app.workflow(name="approver")
    async def approver(ctx: Context) -> str:
        emitted = await ctx.emit({"type": "change.approved", "subject": "chg-7", "data": "ok"})
        return str(emitted["id"])

    async with app:
        waiting = await app.start("waiter")
        await parked(app, waiting.run_id)
        emitting = await app.start("approver")
        assert await emitting.result(timeout=10) == f"{emitting.run_id}:1"
        assert await waiting.result(timeout=10) == "ok"


async def test_wait_for_event__times_out_and_unsubscribes(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        try:
            await ctx.wait_for_event({"type": "alert.resolved"}, timeout=600)
        except WaitTimeoutError:
            return "escalate"
        return "resolved"

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        assert len(await app.store.subscriptions_of(handle.run_id)) == 1
        clock.advance(600)
        assert await handle.result(timeout=10) == "escalate"
        assert await app.store.subscriptions_of(handle.run_id) == []
        # An event after the timeout is stored but reaches no one.
        assert (await app.emit({**alert("late"), "type": "alert.resolved"})).stored


async def test_finished_run__its_subscriptions_are_dropped(make_app: Callable[..., App]) -> None:
    app = make_app()

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        sub = await ctx.subscribe([{"type": "alert.firing"}])
        await ctx.wait_for("stop")
        return sub

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        assert len(await app.store.subscriptions_of(handle.run_id)) == 1
        await app.signal(handle.run_id, "stop")
        assert await handle.result(timeout=10) == f"{handle.run_id}:1"
        assert await app.store.subscriptions_of(handle.run_id) == []
        # Delivery skips the finished run: storing a matching event succeeds.
        assert (await app.emit(alert("after-finish"))).stored


async def test_subscribe__a_filter_without_type_is_refused(make_app: Callable[..., App]) -> None:
    app = make_app()

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        try:
            await ctx.subscribe([{"source": "ci"}])
        except InputError as exc:
            return str(exc)
        return "subscribed"

    async with app:
        handle = await app.start("wf")
        assert "'type'" in await handle.result(timeout=10)


async def test_app_emit__invalid_events_name_the_attribute(make_app: Callable[..., App]) -> None:
    app = make_app(client=True)
    async with app:
        with pytest.raises(InputError, match="'type'"):
            await app.emit({"specversion": "1.0", "source": "x"})
        receipt = await app.emit({"specversion": "1.0", "source": "x", "type": "t"})
        assert receipt.stored and receipt.event_id  # an id is generated when missing


async def test_retried_run__gets_its_subscription_back(make_app: Callable[..., App]) -> None:
    app = make_app()
    attempts: list[int] = []

    @app.step(retry=RetryPolicy(attempts=1))
    async def check() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("not ready")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        sub = await ctx.subscribe([{"type": "alert.firing"}])
        await ctx.step(check)
        return str((await ctx.wait_for(f"events:{sub}"))["event"]["id"])

    async with app:
        handle = await app.start("wf")
        with pytest.raises(RunFailedError):
            await handle.result(timeout=10)
        assert await app.store.subscriptions_of(handle.run_id) == []
        await app.retry(handle.run_id)
        await parked(app, handle.run_id)
        await app.emit(alert("after-retry"))
        assert await handle.result(timeout=10) == "after-retry"
