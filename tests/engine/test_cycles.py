"""A finished execution is freed by reference counting, not left to the cycle collector.

An execution that sits in a reference cycle once it is over (with its task, run record and
futures) stays in memory until the cycle collector finds it, and on a busy worker that search
costs a sizeable share of the CPU. These tests run workflows of several shapes with the
collector off, then look for execution objects still in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from engine_waits import eventually, parked

from opsloom import App, Context, RetryPolicy, RunStatus, StepFailedError, WorkerOptions
from opsloom.engine.execution import Execution
from opsloom.engine.replay import DetachedHost
from opsloom.errors import LeaseLostError, StoreError

RUNS = 10


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Only reference counting frees objects during the test."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def executions_in_memory(app: App) -> list[str]:
    """The run ids of the execution objects of ``app``'s runs in memory."""
    return [
        obj.run.id
        for obj in gc.get_objects()
        if isinstance(obj, Execution) and obj.store is app.store
    ]


async def left_in_memory(app: App) -> list[str]:
    """The run ids of ``app``'s execution objects still in memory once the event loop has run
    the callbacks it had queued (a task that just finished is held by them for a turn or two).
    Only this test's: what earlier tests in the process keep alive is theirs to answer for."""
    for _ in range(20):
        if not executions_in_memory(app):
            break
        await asyncio.sleep(0.01)
    return executions_in_memory(app)


async def ended(app: App, run_ids: list[str]) -> list[tuple[RunStatus, Any, str | None]]:
    """Each run's status, output and error type, once every run has ended and the worker
    has let go of it."""

    worker = app.worker
    assert worker is not None

    async def done() -> bool:
        runs = [await app.get_run(run_id) for run_id in run_ids]
        return all(run.status.terminal for run in runs) and not worker.executions

    await eventually(done, timeout=60)
    runs = [await app.get_run(run_id) for run_id in run_ids]
    return [(run.status, run.output, (run.error or {}).get("type")) for run in runs]


async def add_one(x: int) -> int:
    return x + 1


async def double(x: int) -> int:
    return 2 * x


async def refuse(x: int) -> int:
    raise ValueError(f"refused {x}")


def register(app: App) -> None:
    app.step()(add_one)
    app.step()(double)
    # Retried at once, in memory: the first failure is held across the second attempt.
    app.step(retry=RetryPolicy(attempts=2, initial_delay=0.0))(refuse)

    @app.workflow(name="chain")
    async def chain(ctx: Context, x: int) -> int:
        x = await ctx.step(add_one, x)
        x = await ctx.step(add_one, x)
        return await ctx.step(add_one, x)

    @app.workflow(name="failing_step")
    async def failing_step(ctx: Context, x: int) -> int:
        return await ctx.step(refuse, x)

    @app.workflow(name="caught_failure")
    async def caught_failure(ctx: Context, x: int) -> int:
        with contextlib.suppress(StepFailedError):
            await ctx.step(refuse, x)
        return await ctx.step(add_one, x)

    @app.workflow(name="failing_branch")
    async def failing_branch(ctx: Context, x: int) -> list[int]:
        return await ctx.gather(ctx.step(add_one, x), ctx.step(refuse, x))

    @app.workflow(name="raising")
    async def raising(ctx: Context, x: int) -> int:
        await ctx.step(add_one, x)
        raise RuntimeError("the workflow gives up")


@pytest.mark.parametrize(
    ("workflow", "ending"),
    [
        ("chain", lambda i: (RunStatus.COMPLETED, i + 3, None)),
        ("failing_step", lambda i: (RunStatus.FAILED, None, "ValueError")),
        ("caught_failure", lambda i: (RunStatus.COMPLETED, i + 1, None)),
        ("failing_branch", lambda i: (RunStatus.FAILED, None, "ValueError")),
        ("raising", lambda i: (RunStatus.FAILED, None, "RuntimeError")),
    ],
)
async def test_finished_runs__leave_no_execution_in_memory(
    app: App, collector_off: None, workflow: str, ending: Any
) -> None:
    register(app)
    async with app:
        handles = [await app.start(workflow, i) for i in range(RUNS)]
        ends = await ended(app, [handle.run_id for handle in handles])
        assert ends == [ending(i) for i in range(RUNS)]
        assert await left_in_memory(app) == []


async def test_parked_queried_and_resumed_runs__leave_no_execution_in_memory(
    app: App, collector_off: None
) -> None:
    # The handlers close over the context, which points at the execution.
    @app.workflow(name="counter")
    async def counter(ctx: Context, start: int) -> int:
        total = {"n": start}
        ctx.on_signal("add", lambda n: total.update(n=total["n"] + n))
        ctx.on_query("total", lambda _: {"run": ctx.run_id, "n": total["n"]})
        await ctx.wait_until(lambda: total["n"] >= 100)
        return total["n"]

    async with app:
        run_ids = [(await app.start("counter", i)).run_id for i in range(RUNS)]
        for run_id in run_ids:
            await parked(app, run_id)
        answers = [await app.query(run_id, "total") for run_id in run_ids]
        assert answers == [{"run": run_id, "n": i} for i, run_id in enumerate(run_ids)]
        # Only the executions the worker keeps for the parked runs: the queries' are gone.
        assert app.worker is not None
        assert sorted(await left_in_memory(app)) == sorted(app.worker.kept) == sorted(run_ids)
        for run_id in run_ids:
            await app.signal(run_id, "add", 100)
        ends = await ended(app, run_ids)
        assert ends == [(RunStatus.COMPLETED, i + 100, None) for i in range(RUNS)]
        assert await left_in_memory(app) == []


async def test_diverged_replay__leaves_no_execution_in_memory(
    make_app: Callable[..., App], collector_off: None
) -> None:
    # Kept executions would go on with the code they started with: replay every claim.
    app = make_app(worker=WorkerOptions(poll_seconds=0.05, keep_parked=0))
    register(app)
    code = {"step": add_one}

    @app.workflow(name="changing")
    async def changing(ctx: Context, x: int) -> Any:
        await ctx.step(code["step"], x)
        return await ctx.wait_for("go")

    async with app:
        run_ids = [(await app.start("changing", i)).run_id for i in range(RUNS)]
        for run_id in run_ids:
            await parked(app, run_id)
        code["step"] = double  # the code changed under the parked runs
        for run_id in run_ids:
            await app.signal(run_id, "go")
        ends = await ended(app, run_ids)
        assert ends == [(RunStatus.FAILED, None, "NonDeterminismError")] * RUNS
        assert await left_in_memory(app) == []


async def test_an_error_that_broke_the_run_and_was_replaced__is_freed_at_once(
    make_app: Callable[..., App], collector_off: None
) -> None:
    # Code caught what broke the run and met it again at a durable call; then a write still
    # in flight failed too, and that error took its place.
    app = make_app(client=True)

    @app.workflow(name="idle")
    async def idle(ctx: Context) -> None:
        return None

    async with app:
        assert app.store is not None
        await app.start("idle")
        [claim] = await app.store.claim("tester", app.registry.kinds(), 1, app.clock.now(), 30)
        host = DetachedHost(app.store, app.clock, app.registry)
        execution = Execution(host, claim, app.registry.workflow("idle"))
        first: StoreError | None = StoreError("the disk is full")
        execution.fatal = first
        for _ in range(2):
            try:
                execution._next()
            except StoreError as caught:
                assert caught is first
        execution.fatal = LeaseLostError("fenced off")
        execution._let_go()
        gone = weakref.ref(first)
        first = None
        assert gone() is None, "the replaced error is left to the cycle collector"
