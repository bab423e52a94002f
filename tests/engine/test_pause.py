"""Pause and resume: a run, or every run of a workflow; cancelling queued runs at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from engine_waits import eventually, parked, stalled_worker_app, status_is, successor_app

from opsloom import App, Context, FakeClock, RunStatus, WorkerOptions
from opsloom.errors import RunStateError
from opsloom.model import StepStatus


async def idle(app: App) -> None:
    """No worker of ``app`` executes anything (it parked or never claimed)."""
    assert app.worker is not None
    worker = app.worker
    await eventually(lambda: asyncio.sleep(0, not worker.executions))


async def drained(app: App) -> None:
    """The worker has claimed from the queue since now: a run that was due and claimable then
    has started (a probe run queued after it has been claimed and finished)."""
    assert app.worker is not None
    before = app.worker.claimed

    # A concurrency limit makes the probe go through the queue, not straight to the worker.
    @app.workflow(name=f"probe-{before}", concurrency=1)
    async def probe(ctx: Context) -> None:
        return None

    app.worker.refresh_kinds()
    handle = await app.start(f"probe-{before}")
    await handle.result(timeout=10)


async def test_pause__running_step_finishes_then_run_parks_until_resumed(app: App) -> None:
    calls: list[str] = []
    started = asyncio.Event()
    gate = asyncio.Event()

    @app.step(name="first")
    async def first() -> None:
        calls.append("first")
        started.set()
        await gate.wait()

    @app.step(name="second")
    async def second() -> str:
        calls.append("second")
        return "done"

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        await ctx.step(first)
        return await ctx.step(second)

    async with app:
        handle = await app.start("wf")
        await started.wait()
        run = await app.pause(handle.run_id)
        assert run.paused == "run" and run.paused_at is not None
        gate.set()
        await idle(app)  # the run holds no worker slot
        run = await app.get_run(handle.run_id)
        assert [(s.name, s.status) for s in run.steps] == [("first", StepStatus.COMPLETED)]
        assert run.status is RunStatus.PENDING and run.paused == "run"
        await drained(app)
        assert calls == ["first"], "nothing new starts while the run is paused"
        resumed = await app.resume(handle.run_id)
        assert resumed.paused is None
        assert await handle.result(timeout=10) == "done"
    assert calls == ["first", "second"]


async def test_pause__fired_timer_waits_for_resume(make_app: Callable[..., App]) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    calls: list[str] = []

    @app.step(name="after")
    async def after() -> None:
        calls.append("after")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.sleep(60)
        await ctx.step(after)

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        await app.pause(handle.run_id)
        clock.advance(120)
        await drained(app)
        run = await app.get_run(handle.run_id)
        assert calls == [] and run.status is RunStatus.WAITING
        sleep = run.steps[0]
        assert sleep.status is StepStatus.WAITING and sleep.wake_at is not None
        assert sleep.wake_at <= clock.now(), "the timer fired while the run was paused"
        await app.resume(handle.run_id)
        await handle.result(timeout=10)
    assert calls == ["after"]


async def test_pause__signal_sent_while_paused_is_kept_for_resume(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context) -> object:
        return await ctx.wait_for("go")

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        await app.pause(handle.run_id)
        await app.signal(handle.run_id, "go", {"n": 1})
        await drained(app)
        run = await app.get_run(handle.run_id)
        assert run.status is RunStatus.WAITING and run.steps[0].status is StepStatus.WAITING
        await app.resume(handle.run_id)
        assert await handle.result(timeout=10) == {"n": 1}


async def test_pause_workflow__new_runs_queue_and_resume_together(app: App) -> None:
    ran: list[int] = []

    @app.workflow(name="wf")
    async def wf(ctx: Context, n: int) -> int:
        await ctx.wait_for("go")
        ran.append(n)
        return n

    @app.workflow(name="other")
    async def other(ctx: Context) -> str:
        return "free"

    async with app:
        open_run = await app.start("wf", 1)
        alone = await app.start("wf", 2)
        await parked(app, open_run.run_id)
        await parked(app, alone.run_id)
        await app.pause(alone.run_id)
        assert await app.pause_workflow("wf", by="ops") == [open_run.run_id]
        assert [p.workflow for p in await app.store.workflow_pauses()] == ["wf"]
        queued = await app.start("wf", 3)
        new = await app.get_run(queued.run_id)
        assert new.paused == "workflow" and new.status is RunStatus.PENDING
        assert await (await app.start("other")).result(timeout=10) == "free"
        for handle in (open_run, alone, queued):
            await app.signal(handle.run_id, "go")
        await drained(app)
        assert ran == []
        resumed = await app.resume_workflow("wf")
        assert sorted(resumed) == sorted([open_run.run_id, queued.run_id])
        assert await open_run.result(timeout=10) == 1
        assert await queued.result(timeout=10) == 3
        # A run paused on its own stays paused until it is resumed itself.
        assert (await app.get_run(alone.run_id)).paused == "run"
        await app.resume(alone.run_id)
        assert await alone.result(timeout=10) == 2
        with pytest.raises(RunStateError, match="not paused"):
            await app.resume_workflow("wf")


async def test_pause__refused_for_finished_run_and_resume_of_unpaused(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.wait_for("go")

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        with pytest.raises(RunStateError, match="not paused"):
            await app.resume(handle.run_id)
        await app.signal(handle.run_id, "go")
        await handle.result(timeout=10)
        with pytest.raises(RunStateError, match="already completed"):
            await app.pause(handle.run_id)


async def test_cancel__paused_run_is_cancelled(app: App) -> None:
    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.wait_for("go")

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        await app.pause(handle.run_id)
        await app.cancel(handle.run_id)
        await status_is(app, handle.run_id, RunStatus.CANCELLED)
        assert (await app.get_run(handle.run_id)).paused is None


async def test_cancel__run_queued_behind_concurrency_key_is_cancelled_at_once(app: App) -> None:
    @app.workflow(name="remediate", concurrency=1, concurrency_key=lambda data: data["service"])
    async def remediate(ctx: Context, data: dict[str, str]) -> None:
        await ctx.wait_for("verified")

    async with app:
        first = await app.start("remediate", {"service": "db"})
        queued = await app.start("remediate", {"service": "db"})
        await parked(app, first.run_id)
        await drained(app)
        assert await queued.status() is RunStatus.PENDING
        assert await app.cancel(queued.run_id) == [queued.run_id]
        run = await app.get_run(queued.run_id)
        assert run.status is RunStatus.CANCELLED and run.completed_at is not None
        assert run.error is not None and run.error["type"] == "RunCancelledError"
        # The open run keeps its slot and finishes normally.
        await app.signal(first.run_id, "verified")
        await first.result(timeout=10)


async def test_pause__survives_the_loss_of_its_worker(db_url: str) -> None:
    calls: list[str] = []
    stuck = asyncio.Event()  # never set: the first worker hangs like a dead one

    def register(app: App, gate: asyncio.Event | None) -> None:
        @app.step(name="work")
        async def work() -> str:
            calls.append("work")
            if gate is not None:
                await gate.wait()
            return "worked"

        @app.workflow(name="wf")
        async def wf(ctx: Context) -> str:
            return await ctx.step(work)

    first = stalled_worker_app(db_url)
    register(first, stuck)
    async with first:
        handle = await first.start("wf")
        await eventually(lambda: asyncio.sleep(0, calls == ["work"]))
        second, later = successor_app(db_url)
        register(second, None)
        async with second:
            await second.pause(handle.run_id)  # the first worker never hears of it
            later.advance(31)  # its lease expires: the run is recovered, paused
            await eventually(lambda: _recovered(second, handle.run_id))
            await drained(second)
            assert calls == ["work"], "a recovered paused run waits for resume"
            await second.resume(handle.run_id)
            assert await second.result(handle.run_id, timeout=10) == "worked"
        assert calls == ["work", "work"]
        stuck.set()


async def _recovered(app: App, run_id: str) -> bool:
    run = await app.get_run(run_id)
    return run.recovered == 1 and run.status is RunStatus.PENDING


@pytest.mark.parametrize("scope", ["run", "workflow"])
async def test_pause__seen_by_a_worker_of_another_process(db_url: str, scope: str) -> None:
    """Paused through a second App on the same store (another process in all but name), the
    run stops after its running step: at once on PostgreSQL, whose workers hear the pause's
    wake-up even with an hour between heartbeats, and at the next heartbeat on SQLite."""
    on_postgres = db_url.startswith("postgresql")
    calls: list[str] = []
    started, gate = asyncio.Event(), asyncio.Event()
    beat = 3600.0 if on_postgres else 0.2
    worker = App(
        db_url,
        worker=WorkerOptions(
            lease_seconds=3 * beat, heartbeat_seconds=beat, poll_seconds=0.05, grace_seconds=5
        ),
    )

    @worker.step(name="first")
    async def first() -> None:
        calls.append("first")
        started.set()
        await gate.wait()

    @worker.step(name="second")
    async def second() -> str:
        calls.append("second")
        return "done"

    @worker.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        await ctx.step(first)
        return await ctx.step(second)

    operator = App(db_url, worker=None)
    async with worker, operator:
        handle = await worker.start("wf")
        await started.wait()
        if scope == "run":
            await operator.pause(handle.run_id)
        else:
            assert await operator.pause_workflow("wf") == [handle.run_id]
        assert worker.worker is not None
        execution = worker.worker.executions[handle.run_id]
        await eventually(lambda: asyncio.sleep(0, execution.frozen == "pause"))
        gate.set()
        await idle(worker)
        run = await operator.get_run(handle.run_id)
        assert [(s.name, s.status) for s in run.steps] == [("first", StepStatus.COMPLETED)]
        assert (run.status, run.paused) == (RunStatus.PENDING, scope)
        await drained(worker)
        assert calls == ["first"], "the paused run starts nothing new in the other process"
        if scope == "run":
            await operator.resume(handle.run_id)
        else:
            assert await operator.resume_workflow("wf") == [handle.run_id]
        assert await worker.result(handle.run_id, timeout=10) == "done"
    assert calls == ["first", "second"]
