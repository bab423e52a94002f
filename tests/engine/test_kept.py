"""A worker keeps the live execution of a run that parks, and goes on from the run's waits when
it claims the run again, instead of replaying the history; replay stays the recovery path.

Every workflow here counts how often its code is entered: once per execution that ran it from
its start (the first claim, and each replay). A run that goes on in a kept execution enters
once, however often it waited.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import pytest
from engine_waits import eventually, status_is

from opsloom import App, Context, FakeClock, RunFailedError, RunStatus, WorkerOptions
from opsloom.engine.execution import Execution

OPTIONS = WorkerOptions(concurrency=8, poll_seconds=0.05, reap_seconds=0.1, grace_seconds=5)


def options(**changes: Any) -> WorkerOptions:
    fields = {
        "concurrency": OPTIONS.concurrency,
        "poll_seconds": OPTIONS.poll_seconds,
        "reap_seconds": OPTIONS.reap_seconds,
        "grace_seconds": OPTIONS.grace_seconds,
    }
    return WorkerOptions(**(fields | changes))


async def kept(app: App, run_id: str, marks: list[Any] | None = None, count: int = 0) -> None:
    """The run is parked in the store and the worker keeps its execution (with ``marks``:
    once the workflow has made ``count`` of them, i.e. it parked at a later wait)."""

    async def check() -> bool:
        if marks is not None and len(marks) < count:
            return False
        run = await app.get_run(run_id)
        worker = app.worker
        return run.status is RunStatus.WAITING and worker is not None and run_id in worker.kept

    await eventually(check)


def executions_of(app: App) -> list[str]:
    """The run ids of ``app``'s execution objects in memory (after a full collection)."""
    gc.collect()
    return sorted(
        obj.run.id
        for obj in gc.get_objects()
        if isinstance(obj, Execution) and obj.store is app.store
    )


async def freed(app: App) -> list[str]:
    """``executions_of(app)`` once the tasks that just ended have been let go of."""
    for _ in range(50):
        if not executions_of(app):
            break
        await asyncio.sleep(0.01)
    return executions_of(app)


def register_loop(app: App, entries: list[str], marks: list[int] | None = None) -> None:
    """``looping``: ``n`` waits for a signal ``go``, summing the payloads (each wait taken
    adds one to ``marks``)."""

    @app.workflow(name="looping")
    async def looping(ctx: Context, n: int) -> int:
        entries.append(ctx.run_id)
        total = 0
        for _ in range(n):
            total += await ctx.wait_for("go")
            if marks is not None:
                marks.append(total)
        return total


async def test_kept_run__goes_on_at_each_signal_without_replay(app: App) -> None:
    entries: list[str] = []
    marks: list[int] = []
    register_loop(app, entries, marks)
    async with app:
        handle = await app.start("looping", 20)
        for number in range(1, 21):
            await kept(app, handle.run_id, marks, number - 1)
            await app.signal(handle.run_id, "go", number)
        assert await handle.result(timeout=30) == sum(range(1, 21))
        assert entries == [handle.run_id]  # one execution took all 20 signals
        assert app.worker is not None and not app.worker.kept
        assert await freed(app) == []


async def test_kept_run__events_reach_it_without_replay(app: App) -> None:
    entries: list[str] = []
    seen: list[str] = []

    @app.workflow(name="listener")
    async def listener(ctx: Context) -> list[str]:
        entries.append(ctx.run_id)
        seen.clear()
        for _ in range(3):
            event = await ctx.wait_for_event({"type": "page.ack"}, timeout=60)
            seen.append(event["data"]["by"])
        return list(seen)

    async with app:
        handle = await app.start("listener")
        for number, who in enumerate(("ann", "bob", "cy")):
            await kept(app, handle.run_id, seen, number)
            await app.emit(
                {
                    "specversion": "1.0",
                    "id": who,
                    "source": "test",
                    "type": "page.ack",
                    "data": {"by": who},
                }
            )
        assert await handle.result(timeout=30) == ["ann", "bob", "cy"]
        assert entries == [handle.run_id]


async def test_kept_run__timer_and_child_go_on_without_replay(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock, worker=options(hold_seconds=1.0))
    entries: list[str] = []
    marks: list[str] = []

    @app.workflow(name="kid")
    async def kid(ctx: Context, x: int) -> int:
        return x * 10

    @app.workflow(name="parent")
    async def parent(ctx: Context) -> int:
        entries.append(ctx.run_id)
        await ctx.sleep(60)  # longer than the worker holds a timer in memory: parks
        marks.append("slept")
        got = await ctx.child("kid", 4)
        marks.append("child")
        await ctx.sleep(60)
        return int(got) + 1

    async with app:
        handle = await app.start("parent")
        await kept(app, handle.run_id)
        clock.advance(61)
        await kept(app, handle.run_id, marks, 2)  # the second timer
        assert (await app.get_run(f"{handle.run_id}.2")).status is RunStatus.COMPLETED
        clock.advance(61)
        assert await handle.result(timeout=30) == 41
        assert entries == [handle.run_id]


async def test_kept_run__claimed_meanwhile_by_another_worker_is_replayed(
    db_url: str,
) -> None:
    """Worker A keeps the run; B takes it over while A is busy, and takes a signal; when A
    claims the run again its kept execution is out of date: it is dropped, and the run is
    replayed from its history."""
    entries: list[str] = []
    marks: list[int] = []
    release = asyncio.Event()

    def build() -> App:
        app = App(db_url, worker=options(concurrency=1))
        register_loop(app, entries, marks)

        async def hold() -> None:
            await release.wait()

        app.step(name="hold")(hold)

        @app.workflow(name="busy")
        async def busy(ctx: Context) -> None:
            await ctx.step(hold)

        return app

    a, b = build(), build()
    async with a:
        handle = await a.start("looping", 3)
        await kept(a, handle.run_id)
        await a.signal(handle.run_id, "go", 1)
        await kept(a, handle.run_id, marks, 1)
        assert entries == [handle.run_id]
        # A's only slot is taken: it claims nothing until the busy run ends.
        busy = await a.start("busy")
        await status_is(a, busy.run_id, RunStatus.RUNNING)
        async with b:
            await b.signal(handle.run_id, "go", 10)

            async def taken_by_b() -> bool:
                run = await b.get_run(handle.run_id)
                return (
                    marks[-1:] == [11]
                    and run.status is RunStatus.WAITING
                    and b.worker is not None
                    and (handle.run_id in b.worker.kept)
                )

            await eventually(taken_by_b)
            assert entries == [handle.run_id] * 2  # B replayed it
        # B stopped and dropped what it kept; A still keeps its older execution.
        assert a.worker is not None and handle.run_id in a.worker.kept
        release.set()
        await status_is(a, busy.run_id, RunStatus.COMPLETED)
        await a.signal(handle.run_id, "go", 100)
        assert await handle.result(timeout=30) == 111
        assert entries == [handle.run_id] * 3  # A replayed it instead of going on
        assert a.worker is not None and not a.worker.kept
        assert await freed(a) == []


async def test_kept_run__cancelled_is_compensated_and_freed(app: App) -> None:
    undone: list[str] = []
    entries: list[str] = []
    marks: list[int] = []

    async def undo(what: str) -> None:
        undone.append(what)

    app.step(name="undo")(undo)

    @app.workflow(name="undoable")
    async def undoable(ctx: Context) -> None:
        entries.append(ctx.run_id)
        ctx.compensate(undo, "first")
        await ctx.wait_for("go")
        ctx.compensate(undo, "second")
        marks.append(1)
        await ctx.wait_for("never")

    async with app:
        handle = await app.start("undoable")
        await kept(app, handle.run_id)
        await app.signal(handle.run_id, "go")
        await kept(app, handle.run_id, marks, 1)
        await app.cancel(handle.run_id)
        with pytest.raises(RunFailedError) as info:
            await handle.result(timeout=30)
        assert info.value.status == "cancelled"
        assert undone == ["second", "first"]
        assert entries == [handle.run_id]
        assert app.worker is not None and not app.worker.kept
        assert await freed(app) == []


async def test_kept_run__deadline_times_it_out(make_app: Callable[..., App]) -> None:
    clock = FakeClock()
    app = make_app(clock=clock, worker=options())

    @app.workflow(name="late", timeout=30)
    async def late(ctx: Context) -> None:
        await ctx.wait_for("never")

    async with app:
        handle = await app.start("late")
        await kept(app, handle.run_id)
        clock.advance(31)
        with pytest.raises(RunFailedError) as info:
            await handle.result(timeout=30)
        assert info.value.status == "timed_out"
        assert info.value.error["type"] == "RunTimeoutError"
        assert await freed(app) == []


async def test_kept_run__paused_then_resumed_goes_on(app: App) -> None:
    entries: list[str] = []
    marks: list[int] = []
    register_loop(app, entries, marks)
    async with app:
        handle = await app.start("looping", 2)
        await kept(app, handle.run_id)
        await app.pause(handle.run_id)
        await app.signal(handle.run_id, "go", 1)
        await app.resume(handle.run_id)
        await kept(app, handle.run_id, marks, 1)
        await app.signal(handle.run_id, "go", 2)
        assert await handle.result(timeout=30) == 3
        assert await freed(app) == []


async def test_kept_runs__bounded_least_recently_parked_dropped_first(
    make_app: Callable[..., App],
) -> None:
    app = make_app(worker=options(keep_parked=2))
    entries: list[str] = []
    register_loop(app, entries)
    async with app:
        run_ids = []
        for _ in range(5):
            run_ids.append((await app.start("looping", 1)).run_id)
            await kept(app, run_ids[-1])
        assert app.worker is not None
        assert list(app.worker.kept) == run_ids[-2:]
        assert await freed(app) == sorted(run_ids[-2:])  # the dropped ones are gone
        for run_id in run_ids:
            await app.signal(run_id, "go", 1)
        assert [await app.result(run_id, timeout=30) for run_id in run_ids] == [1] * 5
        # The dropped runs were replayed; the two kept ones went on.
        assert sorted(entries) == sorted(run_ids + run_ids[:3])
        assert await freed(app) == []


async def test_kept_runs__stop_drops_them_and_a_new_worker_replays(
    make_app: Callable[..., App],
) -> None:
    entries: list[str] = []
    marks: list[int] = []
    first = make_app(worker=options())
    register_loop(first, entries, marks)
    async with first:
        run_ids = [(await first.start("looping", 2)).run_id for _ in range(3)]
        for count, run_id in enumerate(run_ids, 1):
            await kept(first, run_id)
            await first.signal(run_id, "go", 1)
            await kept(first, run_id, marks, count)
    assert await freed(first) == []
    second = make_app(worker=options())
    register_loop(second, entries)
    async with second:
        for run_id in run_ids:
            await second.signal(run_id, "go", 2)
        assert [await second.result(run_id, timeout=30) for run_id in run_ids] == [3] * 3
    assert sorted(entries) == sorted(run_ids * 2)


async def test_keep_parked_0__replays_every_claim(make_app: Callable[..., App]) -> None:
    app = make_app(worker=options(keep_parked=0))
    entries: list[str] = []
    register_loop(app, entries)
    async with app:
        handle = await app.start("looping", 3)
        for number in range(3):

            async def waiting(count: int = number + 1) -> bool:
                run = await app.get_run(handle.run_id)
                return run.status is RunStatus.WAITING and len(entries) == count

            await eventually(waiting)
            await app.signal(handle.run_id, "go", 1)
        assert await handle.result(timeout=30) == 3
        assert entries == [handle.run_id] * 4


async def test_kept_run__deadline_cancels_the_child_it_waits_for(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock, worker=options())

    @app.workflow(name="slow_kid")
    async def slow_kid(ctx: Context) -> None:
        await ctx.wait_for("never")

    @app.workflow(name="impatient", timeout=30)
    async def impatient(ctx: Context) -> None:
        await ctx.child("slow_kid", None)

    async with app:
        handle = await app.start("impatient")
        child = f"{handle.run_id}.1"
        await kept(app, handle.run_id)
        await kept(app, child)
        clock.advance(31)
        with pytest.raises(RunFailedError) as info:
            await handle.result(timeout=30)
        assert info.value.status == "timed_out"
        await status_is(app, child, RunStatus.CANCELLED)
        assert await freed(app) == []
