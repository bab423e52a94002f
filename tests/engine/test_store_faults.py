"""The engine on a store whose writes are slow or fail: a step body never starts before the
run's earlier records are durable, and an outage stops the run without losing or repeating
what was durable.

The double (``write_gate.WriteGate``) sits on the store's one write entry point, so the real
writer still applies the writes in the order they were made; it only holds them back or
refuses them, as a slow disk or a lost database would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from engine_waits import eventually
from write_gate import WriteGate

from opsloom import App, Context, FakeClock, RunStatus, WorkerOptions
from opsloom.model import StepStatus


async def committed_steps(app: App, run_id: str) -> list[tuple[int, StepStatus]]:
    """The history entries of a run as the database has them (reads bypass the gate)."""
    run = await app.get_run(run_id)
    return [(step.seq, step.status) for step in run.steps]


async def test_barrier__a_step_body_starts_only_once_earlier_records_are_durable(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    seen: list[list[tuple[int, StepStatus]]] = []

    @app.step()
    async def first() -> int:
        return 1

    @app.step()
    async def second(run_id: str) -> int:
        seen.append(await committed_steps(app, run_id))
        return 2

    @app.workflow(name="two")
    async def two(ctx: Context) -> int:
        a = await ctx.step(first)
        b = await ctx.step(second, ctx.run_id)
        return a + b

    async with app:
        gate = WriteGate(app.store, delay=0.05)
        try:
            handle = await app.start("two")
            assert await handle.result(timeout=20) == 3
        finally:
            gate.close()
    # When the second step began, the first one's result was already in the database.
    assert seen == [[(1, StepStatus.COMPLETED)]]


async def test_outage__a_run_stops_and_resumes_after_without_repeating_durable_steps(
    make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(start=time.time())
    app = make_app(
        clock=clock,
        worker=WorkerOptions(lease_seconds=30, poll_seconds=0.05, reap_seconds=0.05),
    )
    calls: list[str] = []
    gate: WriteGate | None = None

    @app.step()
    async def before() -> str:
        calls.append("before")
        return "b"

    @app.step()
    async def during() -> str:
        calls.append("during")
        if calls.count("during") == 1:
            assert gate is not None
            gate.broken = True  # the database goes away while this step runs
        return "d"

    @app.step()
    async def after() -> str:
        calls.append("after")
        return "a"

    @app.workflow(name="three")
    async def three(ctx: Context) -> str:
        return await ctx.step(before) + await ctx.step(during) + await ctx.step(after)

    async with app:
        gate = WriteGate(app.store)
        try:
            handle = await app.start("three")
            await eventually(lambda: asyncio.sleep(0, gate.refused > 0))
            # The worker gives the run up: nothing after the outage was written, and the run
            # is neither completed nor failed.
            assert app.worker is not None
            await eventually(lambda: asyncio.sleep(0, handle.run_id not in app.worker.executions))
            assert any("store write failed" in r.getMessage() for r in caplog.records)
            run = await app.get_run(handle.run_id)
            assert run.status is RunStatus.RUNNING
            assert await committed_steps(app, handle.run_id) == [(1, StepStatus.COMPLETED)]
            gate.broken = False  # the database is back
            clock.advance(31)  # the lease the stopped run still held expires
            assert await handle.result(timeout=20) == "bda"
            run = await app.get_run(handle.run_id)
        finally:
            gate.close()
    # "before" was durable before the outage and ran once; "during" lost its record and ran
    # again; "after" ran once, after the recovery.
    assert calls == ["before", "during", "during", "after"]
    assert [(s.seq, s.status, s.output) for s in run.steps] == [
        (1, StepStatus.COMPLETED, "b"),
        (2, StepStatus.COMPLETED, "d"),
        (3, StepStatus.COMPLETED, "a"),
    ]
    assert run.recovered == 1
