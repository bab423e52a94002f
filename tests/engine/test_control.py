"""Control: cancellation, compensation, run timeouts, concurrency limits, priorities."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from engine_waits import eventually, parked, status_is

from opsloom import App, Context, FakeClock, RetryPolicy, RunFailedError, RunStatus, WorkerOptions
from opsloom.model import StepKind, StepStatus


def saga(app: App, undone: list[str]) -> None:
    @app.step(name="reserve")
    async def reserve(item: str) -> str:
        return f"reserved {item}"

    @app.step(name="release")
    async def release(item: str) -> None:
        undone.append(item)

    @app.step(name="charge", retry=RetryPolicy(attempts=1))
    async def charge(amount: int) -> None:
        if amount > 100:
            raise PermissionError("card declined")

    @app.workflow(name="order")
    async def order(ctx: Context, data: dict[str, Any]) -> str:
        for item in data["items"]:
            await ctx.step(reserve, item)
            ctx.compensate(release, item)
        if data.get("wait"):
            await ctx.wait_for("confirm")
        await ctx.step(charge, data["amount"])
        return "ok"


async def test_compensation__runs_last_in_first_out_on_failure(app: App) -> None:
    undone: list[str] = []
    saga(app, undone)
    async with app:
        handle = await app.start("order", {"items": ["a", "b", "c"], "amount": 500})
        with pytest.raises(RunFailedError):
            await handle.result(timeout=10)
        run = await app.get_run(handle.run_id)
    assert undone == ["c", "b", "a"]
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error["type"] == "PermissionError" and run.error["message"] == "card declined"
    undo = [s for s in run.steps if s.kind is StepKind.COMPENSATION]
    assert [(s.seq, s.status) for s in undo] == [
        (-1, StepStatus.COMPLETED),
        (-2, StepStatus.COMPLETED),
        (-3, StepStatus.COMPLETED),
    ]


async def test_compensation__not_run_on_success(app: App) -> None:
    undone: list[str] = []
    saga(app, undone)
    async with app:
        assert (
            await (await app.start("order", {"items": ["a"], "amount": 5})).result(timeout=10)
            == "ok"
        )
    assert undone == []


async def test_cancel__parked_run_is_compensated_and_cancelled(app: App) -> None:
    undone: list[str] = []
    saga(app, undone)
    async with app:
        handle = await app.start("order", {"items": ["a", "b"], "amount": 5, "wait": True})
        await parked(app, handle.run_id)
        assert await app.cancel(handle.run_id) == [handle.run_id]
        with pytest.raises(RunFailedError) as info:
            await handle.result(timeout=10)
    assert info.value.status == "cancelled"
    assert undone == ["b", "a"]


async def test_cancel__running_step_is_interrupted(app: App) -> None:
    started = asyncio.Event()
    undone: list[str] = []

    @app.step(name="long")
    async def long() -> None:
        started.set()
        await asyncio.Event().wait()

    @app.step(name="undo")
    async def undo() -> None:
        undone.append("undo")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        ctx.compensate(undo)
        await ctx.step(long)

    async with app:
        handle = await app.start("wf")
        await started.wait()
        await app.cancel(handle.run_id)
        await status_is(app, handle.run_id, RunStatus.CANCELLED)
    assert undone == ["undo"]


async def test_cancel__reaches_child_runs(app: App) -> None:
    undone: list[str] = []

    @app.step(name="undo_child")
    async def undo_child() -> None:
        undone.append("child")

    @app.workflow(name="child")
    async def child(ctx: Context) -> None:
        ctx.compensate(undo_child)
        await ctx.wait_for("never")

    @app.workflow(name="parent")
    async def parent(ctx: Context) -> None:
        await ctx.child("child")

    async with app:
        handle = await app.start("parent", run_id="p")
        await eventually(lambda: _is_parked(app, "p.1"))
        assert sorted(await app.cancel("p")) == ["p", "p.1"]
        await status_is(app, "p", RunStatus.CANCELLED)
        await status_is(app, "p.1", RunStatus.CANCELLED)
        assert handle.run_id == "p"
    assert undone == ["child"]


async def _is_parked(app: App, run_id: str) -> bool:
    try:
        return (await app.get_run(run_id)).status is RunStatus.WAITING
    except Exception:
        return False


async def test_cancel__finished_run_is_refused(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context) -> int:
        return 1

    async with app:
        handle = await app.start("wf")
        await handle.result(timeout=10)
        with pytest.raises(Exception, match="already completed"):
            await app.cancel(handle.run_id)


async def test_run_timeout__times_out_and_compensates(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    undone: list[str] = []

    @app.step(name="undo")
    async def undo() -> None:
        undone.append("undo")

    @app.workflow(name="slow", timeout=60)
    async def slow(ctx: Context) -> None:
        ctx.compensate(undo)
        await ctx.sleep(3600)

    async with app:
        handle = await app.start("slow")
        await parked(app, handle.run_id)
        run = await app.get_run(handle.run_id)
        assert run.deadline == run.created_at + 60
        clock.advance(60)
        with pytest.raises(RunFailedError) as info:
            await handle.result(timeout=10)
    assert info.value.status == "timed_out"
    assert info.value.error["type"] == "RunTimeoutError"
    assert undone == ["undo"]


async def test_concurrency_key__one_open_run_per_service(app: App) -> None:
    active: dict[str, int] = {}
    peak: dict[str, int] = {}

    @app.step(name="restart")
    async def restart(service: str) -> None:
        active[service] = active.get(service, 0) + 1
        peak[service] = max(peak.get(service, 0), active[service])
        await asyncio.sleep(0.01)
        active[service] -= 1

    @app.workflow(name="remediate", concurrency=1, concurrency_key=lambda data: data["service"])
    async def remediate(ctx: Context, data: dict[str, str]) -> None:
        await ctx.step(restart, data["service"])
        await ctx.wait_for("verified")

    async with app:
        db1 = await app.start("remediate", {"service": "db"})
        db2 = await app.start("remediate", {"service": "db"})
        web = await app.start("remediate", {"service": "web"})
        await parked(app, db1.run_id)
        await parked(app, web.run_id)
        # db2 stays queued while db1 is open, even though db1 only waits.
        assert await db2.status() is RunStatus.PENDING
        await app.signal(db1.run_id, "verified")
        await db1.result(timeout=10)
        await parked(app, db2.run_id)
        await app.signal(db2.run_id, "verified")
        await app.signal(web.run_id, "verified")
        await db2.result(timeout=10)
        await web.result(timeout=10)
    assert peak == {"db": 1, "web": 1}


async def test_worker_concurrency__at_most_n_runs_at_once(make_app: Callable[..., App]) -> None:
    app = make_app(worker=WorkerOptions(concurrency=3, poll_seconds=0.05))
    running = 0
    peak = 0
    gate = asyncio.Event()

    @app.step(name="busy")
    async def busy() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()  # every run holds its slot until the test has seen the peak
        running -= 1

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.step(busy)

    async with app:
        handles = [await app.start("wf") for _ in range(12)]
        await eventually(lambda: asyncio.sleep(0, running == 3))
        gate.set()
        for handle in handles:
            await handle.result(timeout=10)
    assert peak == 3


async def test_priority__higher_priority_runs_first(db_url: str) -> None:
    order: list[str] = []

    def build(worker: WorkerOptions | None) -> App:
        app = App(db_url, worker=worker)

        @app.workflow(name="job")
        async def job(ctx: Context, name: str) -> None:
            order.append(name)

        return app

    async with build(None) as client:
        for name, priority in [("low1", 0), ("high", 10), ("low2", 0), ("mid", 5)]:
            await client.start("job", name, priority=priority)
    async with build(WorkerOptions(concurrency=1, poll_seconds=0.05)) as app:
        for run in await app.list_runs():
            await app.result(run.id, timeout=10)
    assert order == ["high", "mid", "low1", "low2"]


async def test_graceful_stop__running_step_finishes_then_lease_is_released(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    started = asyncio.Event()
    finished: list[str] = []

    @app.step(name="slow")
    async def slow() -> str:
        started.set()
        await asyncio.sleep(0.2)
        finished.append("slow")
        return "done"

    @app.step(name="next")
    async def next_step() -> None:
        finished.append("next")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.step(slow)
        await ctx.step(next_step)

    await app.open()
    handle = await app.start("wf")
    await started.wait()
    store = app.store
    run_id = handle.run_id
    await app.close(grace=5)
    assert finished == ["slow"], "the running step finished; no new step started"
    reopened = make_app(client=True)
    async with reopened:
        run = await reopened.get_run(run_id)
    assert run.status is RunStatus.PENDING
    assert [(s.name, s.status) for s in run.steps] == [("slow", StepStatus.COMPLETED)]
    assert store is not None
