"""Recovery: replay after a lost worker, fencing of stale writers, non-determinism."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from engine_waits import REPLAYING, eventually, parked

from opsloom import App, Context, FakeClock, RunFailedError, RunStatus, WorkerOptions
from opsloom.model import StepStatus


def register(app: App, calls: list[tuple[str, int]], gates: dict[str, asyncio.Event]) -> None:
    @app.step(name="prepare")
    async def prepare(x: int) -> int:
        calls.append(("prepare", x))
        return x + 1

    @app.step(name="apply")
    async def apply(x: int) -> int:
        calls.append(("apply", x))
        gate = gates.get("apply")
        if gate is not None:
            await gate.wait()
        return x * 10

    @app.workflow(name="change")
    async def change(ctx: Context, x: int) -> int:
        y = await ctx.step(prepare, x)
        return await ctx.step(apply, y)


async def test_lost_worker__run_is_recovered_and_finished_steps_do_not_rerun(db_url: str) -> None:
    calls: list[tuple[str, int]] = []
    stuck = asyncio.Event()  # never set: the first worker hangs in "apply" like a dead one
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
    register(first, calls, {"apply": stuck})

    async with first:
        handle = await first.start("change", 1)
        await eventually(lambda: asyncio.sleep(0, ("apply", 2) in calls))
        # The clock starts after the claim, so that 31 s later is past the lease however long
        # opening the store and claiming took.
        later = FakeClock(start=time.time())
        second = App(
            db_url,
            clock=later,
            worker=WorkerOptions(lease_seconds=30, poll_seconds=0.05, reap_seconds=0.05),
        )
        register(second, calls, {})
        async with second:
            # Nothing happens while the first worker's lease is valid.
            run = await second.get_run(handle.run_id)
            assert run.status is RunStatus.RUNNING and run.recovered == 0
            later.advance(31)  # the first worker missed its heartbeats: its lease expires
            assert await second.result(handle.run_id, timeout=10) == 20
            run = await second.get_run(handle.run_id)
        assert run.recovered == 1
        assert calls == [("prepare", 1), ("apply", 2), ("apply", 2)], (
            "prepare ran once; only the in-flight apply ran twice"
        )
        assert [s.status for s in run.steps] == [StepStatus.COMPLETED] * 2
        # The first worker finally finishes its copy of "apply": the write is fenced off.
        stuck.set()
        await eventually(lambda: asyncio.sleep(0, not first.worker.executions))  # type: ignore[union-attr]
        again = await first.get_run(handle.run_id)
        assert again.output == 20 and [s.output for s in again.steps] == [2, 20]
        assert again.completed_at == run.completed_at


async def test_nondeterminism__replay_on_another_path_fails_naming_the_step(
    make_app: Callable[..., App],
) -> None:
    app = make_app(worker=REPLAYING)
    path = {"first": "inspect"}

    @app.step(name="inspect")
    async def inspect_step() -> str:
        return "inspected"

    @app.step(name="restart")
    async def restart_step() -> str:
        return "restarted"

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        chosen = inspect_step if path["first"] == "inspect" else restart_step
        await ctx.step(chosen)
        await ctx.wait_for("go")
        return "done"

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        path["first"] = "restart"  # a deploy changed the code under a running run
        await app.signal(handle.run_id, "go")
        with pytest.raises(RunFailedError):
            await handle.result(timeout=10)
        run = await app.get_run(handle.run_id)
    assert run.error is not None and run.error["type"] == "NonDeterminismError"
    assert "position 1" in run.error["message"] and "'inspect'" in run.error["message"]
    assert "'restart'" in run.error["message"]
    assert run.error["data"]["seq"] == 1


async def test_nondeterminism__history_longer_than_the_code(make_app: Callable[..., App]) -> None:
    app = make_app(worker=REPLAYING)
    steps = {"n": 2}

    @app.step(name="work")
    async def work(i: int) -> int:
        return i

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        await ctx.wait_for("go")
        for i in range(steps["n"]):
            await ctx.step(work, i)
        await ctx.wait_for("again")
        return "done"

    async with app:
        handle = await app.start("wf")
        await app.signal(handle.run_id, "go")
        await eventually(lambda: _steps_recorded(app, handle.run_id, 4))
        steps["n"] = 0
        await app.signal(handle.run_id, "again")
        with pytest.raises(RunFailedError):
            await handle.result(timeout=10)
        run = await app.get_run(handle.run_id)
    assert run.error is not None and run.error["type"] == "NonDeterminismError"


async def _steps_recorded(app: App, run_id: str, count: int) -> bool:
    run = await app.get_run(run_id)
    return run.status is RunStatus.WAITING and len(run.steps) >= count


async def test_versions__a_run_keeps_the_version_it_started_with(db_url: str) -> None:
    old = App(db_url, worker=None)

    @old.workflow(name="greet", version="1")
    async def greet_v1(ctx: Context, who: str) -> str:
        await ctx.wait_for("go")
        return f"hello {who}"

    async with old:
        started = await old.start("greet", "ana")

    new = App(db_url, worker=WorkerOptions(poll_seconds=0.05))

    @new.workflow(name="greet", version="1")
    async def greet_v1_again(ctx: Context, who: str) -> str:
        await ctx.wait_for("go")
        return f"hello {who}"

    @new.workflow(name="greet", version="2")
    async def greet_v2(ctx: Context, who: str) -> str:
        return f"hi {who}"

    async with new:
        fresh = await new.start("greet", "bo")
        assert await fresh.result(timeout=10) == "hi bo"
        await new.signal(started.run_id, "go")
        assert await new.result(started.run_id, timeout=10) == "hello ana"
        assert (await new.get_run(started.run_id)).version == "1"
