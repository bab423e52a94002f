"""Durable waits: timers, signals, child runs, fan-out; waiting holds no worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from engine_waits import parked

from opsloom import (
    App,
    ChildFailedError,
    Context,
    FakeClock,
    RetryPolicy,
    RunStatus,
    StepFailedError,
    WaitTimeoutError,
    WorkerOptions,
)
from opsloom.model import StepKind, StepStatus


async def test_sleep__parks_the_run_until_the_timer_fires(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    ran: list[str] = []

    @app.step()
    async def note(what: str) -> str:
        ran.append(what)
        return what

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        await ctx.step(note, "before")
        await ctx.sleep(3600)
        return await ctx.step(note, "after")

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        run = await app.get_run(handle.run_id)
        assert run.steps[1].kind is StepKind.SLEEP and run.steps[1].status is StepStatus.WAITING
        assert run.steps[1].wake_at == clock.now() + 3600
        clock.advance(3599)
        await parked(app, handle.run_id)
        assert ran == ["before"]
        clock.advance(1)
        assert await handle.result(timeout=10) == "after"
    assert ran == ["before", "after"]


async def test_sleep_until__uses_an_aware_datetime(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        start = ctx.now()
        await ctx.sleep_until(start + timedelta(minutes=5))
        return (ctx.now() - start).total_seconds()

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        clock.advance(300)
        assert await handle.result(timeout=10) == 300.0


async def test_wait_for__signal_sent_before_the_wait_is_kept(app: App) -> None:
    gate = asyncio.Event()

    @app.step()
    async def slow() -> None:
        await gate.wait()

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> object:
        await ctx.step(slow)
        return await ctx.wait_for("approval")

    async with app:
        handle = await app.start("wf")
        await app.signal(handle.run_id, "approval", {"approved": True, "by": "ana"})
        gate.set()
        assert await handle.result(timeout=10) == {"approved": True, "by": "ana"}


async def test_wait_for__delivers_signals_in_order_once(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context) -> list[object]:
        return [await ctx.wait_for("tick") for _ in range(3)]

    async with app:
        handle = await app.start("wf")
        for i in range(3):
            await app.signal(handle.run_id, "tick", i)
        assert await handle.result(timeout=10) == [0, 1, 2]


async def test_wait_for__times_out_durably(make_app: Callable[..., App], clock: FakeClock) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        try:
            await ctx.wait_for("approval", timeout=7200)
        except WaitTimeoutError:
            return "escalated"
        return "approved"

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        clock.advance(7199)
        await parked(app, handle.run_id)
        clock.advance(1)
        assert await handle.result(timeout=10) == "escalated"
        # A signal arriving after the timeout no longer changes the recorded outcome.
        with pytest.raises(Exception, match="already completed"):
            await app.signal(handle.run_id, "approval", True)


async def test_waiting__holds_no_worker_slot(make_app: Callable[..., App]) -> None:
    app = make_app(worker=WorkerOptions(concurrency=1, poll_seconds=0.05))

    @app.workflow(name="waiter")
    async def waiter(ctx: Context) -> object:
        return await ctx.wait_for("go")

    @app.workflow(name="quick")
    async def quick(ctx: Context, x: int) -> int:
        return x * 2

    async with app:
        waiting = [await app.start("waiter") for _ in range(5)]
        for handle in waiting:
            await parked(app, handle.run_id)
        assert app.worker is not None and not app.worker.executions
        assert await (await app.start("quick", 21)).result(timeout=10) == 42
        for i, handle in enumerate(waiting):
            await app.signal(handle.run_id, "go", i)
        assert [await h.result(timeout=10) for h in waiting] == [0, 1, 2, 3, 4]


async def test_child__returns_the_child_output(app: App) -> None:
    @app.workflow(name="double")
    async def double(ctx: Context, x: int) -> int:
        return x * 2

    @app.workflow(name="parent")
    async def parent(ctx: Context, x: int) -> list[int]:
        return list(await ctx.gather(ctx.child("double", x), ctx.child("double", x + 1)))

    async with app:
        handle = await app.start("parent", 5, run_id="p")
        assert await handle.result(timeout=10) == [10, 12]
        children = await app.list_runs(workflow="double")
    assert sorted(c.id for c in children) == ["p.1", "p.2"]
    assert all(c.parent_id == "p" for c in children)


async def test_child__failure_reaches_the_parent(app: App) -> None:
    @app.workflow(name="broken")
    async def broken(ctx: Context) -> None:
        raise RuntimeError("child exploded")

    @app.workflow(name="parent")
    async def parent(ctx: Context) -> str:
        try:
            await ctx.child("broken")
        except ChildFailedError as exc:
            return f"{exc.status}: {exc.error['message']}"
        return "no error"

    async with app:
        assert await (await app.start("parent")).result(timeout=10) == ("failed: child exploded")


async def test_gather__returns_results_in_order(app: App) -> None:
    @app.step()
    async def square(x: int) -> int:
        await asyncio.sleep(0.001 * (5 - x))
        return x * x

    @app.workflow(name="wf")
    async def wf(ctx: Context, n: int) -> list[int]:
        return await ctx.gather(*[ctx.step(square, i) for i in range(n)])

    async with app:
        assert await (await app.start("wf", 5)).result(timeout=10) == [0, 1, 4, 9, 16]


async def test_gather__runs_every_branch_then_raises_the_first_failure(app: App) -> None:
    done: list[str] = []

    @app.step(retry=RetryPolicy(attempts=1))
    async def work(name: str) -> str:
        if name.startswith("bad"):
            raise ValueError(name)
        await asyncio.sleep(0.01)
        done.append(name)
        return name

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        try:
            await ctx.gather(
                ctx.step(work, "a"),
                ctx.step(work, "bad1"),
                ctx.step(work, "bad2"),
                ctx.step(work, "b"),
            )
        except StepFailedError as exc:
            return exc.message
        return "no error"

    async with app:
        assert await (await app.start("wf")).result(timeout=10) == "bad1"
    assert sorted(done) == ["a", "b"]


async def test_gather__branch_waiting_parks_the_run_then_resumes(app: App) -> None:
    calls: list[str] = []

    @app.step()
    async def work(name: str) -> str:
        calls.append(name)
        return name

    async def branch(ctx: Context) -> str:
        first = await ctx.step(work, "b1")
        signal = await ctx.wait_for("go")
        return f"{first}+{signal}"

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> list[str]:
        return await ctx.gather(ctx.step(work, "a"), branch(ctx), ctx.step(work, "c"))

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        await app.signal(handle.run_id, "go", "sig")
        assert await handle.result(timeout=10) == ["a", "b1+sig", "c"]
    assert sorted(calls) == ["a", "b1", "c"], "replay after the wait did not re-run steps"


async def test_recorded_values__replay_identically(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context) -> list[object]:
        before = [ctx.now().timestamp(), ctx.uuid(), ctx.random()]
        await ctx.wait_for("go")  # the run is evicted here and replayed from the start
        after = [ctx.now().timestamp(), ctx.uuid(), ctx.random()]
        return [before, after]

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        first = [s.output for s in (await app.get_run(handle.run_id)).steps[:3]]
        await app.signal(handle.run_id, "go")
        before, after = await handle.result(timeout=10)
        run = await app.get_run(handle.run_id)
    assert before == first, "the replay saw other values than the first execution"
    assert after[1] != before[1]
    assert [s.output for s in run.steps[:3]] == first
    assert [s.kind for s in run.steps] == [StepKind.VALUE] * 3 + [StepKind.SIGNAL] + (
        [StepKind.VALUE] * 3
    )


async def test_run__waiting_status_visible_then_completed(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.wait_for("go")

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        assert await handle.status() is RunStatus.WAITING
        await app.signal(handle.run_id, "go")
        await handle.result(timeout=10)
        assert await handle.status() is RunStatus.COMPLETED
