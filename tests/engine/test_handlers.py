"""Handlers: signals served by ``wait_until``, queries by replay, updates with validators."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from engine_waits import eventually, parked

from opsloom import App, Context, FakeClock
from opsloom.errors import (
    QueryError,
    UpdateFailedError,
    UpdateRejectedError,
    WaitTimeoutError,
)
from opsloom.model import StepKind


async def delivered(app: App, run_id: str, count: int) -> None:
    """``count`` signals were taken by the run's waits and it parked again."""

    async def check() -> bool:
        run = await app.get_run(run_id)
        taken = [s for s in run.steps if s.kind is StepKind.SIGNAL and s.output is not None]
        return len(taken) >= count

    await eventually(check)
    await parked(app, run_id)


def counter_app(app: App, ran: list[int]) -> None:
    @app.step()
    async def record(value: int) -> int:
        ran.append(value)
        return value

    @app.workflow(name="counter")
    async def counter(ctx: Context, limit: int) -> dict[str, Any]:
        state = {"total": 0, "adds": 0}

        def add(amount: int) -> None:
            state["total"] += amount
            state["adds"] += 1

        def check(amount: int) -> None:
            if amount <= 0:
                raise ValueError("amount must be positive")

        async def set_total(value: int) -> int:
            previous = state["total"]
            state["total"] = await ctx.step(record, value)
            return previous

        ctx.on_signal("add", add)
        ctx.on_query("total", lambda _: state["total"])
        ctx.on_update("add_now", lambda amount: add(amount) or state["total"], check)
        ctx.on_update("set", set_total)
        await ctx.wait_until(lambda: state["total"] >= limit)
        return state


async def test_wait_until__serves_signals_until_the_condition_holds(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    counter_app(app, [])
    async with app:
        handle = await app.start("counter", 10)
        await parked(app, handle.run_id)
        await app.signal(handle.run_id, "add", 4)
        await app.signal(handle.run_id, "add", 3)
        await delivered(app, handle.run_id, 2)
        assert await app.query(handle.run_id, "total") == 7
        await app.signal(handle.run_id, "add", 5)
        assert await handle.result(timeout=10) == {"total": 12, "adds": 3}
        run = await app.get_run(handle.run_id)
        waits = [s for s in run.steps if s.kind is StepKind.SIGNAL]
        assert [w.output["payload"] for w in waits] == [4, 3, 5]


async def test_query__replays_without_changing_the_run(make_app: Callable[..., App]) -> None:
    app = make_app()
    counter_app(app, [])
    async with app:
        handle = await app.start("counter", 100)
        await app.signal(handle.run_id, "add", 2)
        await delivered(app, handle.run_id, 1)
        before = await app.get_run(handle.run_id)
        assert await app.query(handle.run_id, "total") == 2
        assert await app.query(handle.run_id, "total") == 2
        after = await app.get_run(handle.run_id)
        assert [s.to_dict() for s in after.steps] == [s.to_dict() for s in before.steps]
        with pytest.raises(QueryError, match=r"no query 'nope'.*known: total"):
            await app.query(handle.run_id, "nope")
        await app.cancel(handle.run_id)


async def test_query__sees_signals_sent_before_it(make_app: Callable[..., App]) -> None:
    app = make_app(client=True)
    counter_app(app, [])
    async with app:
        handle = await app.start("counter", 100)
        # No worker: the run has not even started; the query replays it with the signals.
        await app.signal(handle.run_id, "add", 2)
        await app.signal(handle.run_id, "add", 3)
        assert await app.query(handle.run_id, "total") == 5
        pending = await app.store.signals_since(handle.run_id, 0)
        assert [(s.name, s.consumed_seq) for s in pending] == [("add", None), ("add", None)]


async def test_query__answers_a_finished_run(make_app: Callable[..., App]) -> None:
    app = make_app()
    counter_app(app, [])
    async with app:
        handle = await app.start("counter", 1)
        await app.signal(handle.run_id, "add", 5)
        await handle.result(timeout=10)
        assert await app.query(handle.run_id, "total") == 5


async def test_update__returns_the_handler_result_and_runs_steps(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    ran: list[int] = []
    counter_app(app, ran)
    async with app:
        handle = await app.start("counter", 50)
        await parked(app, handle.run_id)
        assert await app.update(handle.run_id, "add_now", 5, timeout=10) == 5
        assert await app.update(handle.run_id, "set", 20, timeout=10) == 5
        assert ran == [20]
        assert await app.query(handle.run_id, "total") == 20
        assert await app.update(handle.run_id, "set", 60, timeout=10) == 20
        assert (await handle.result(timeout=10))["total"] == 60
    assert ran == [20, 60]


async def test_update__rejected_by_its_validator_leaves_no_trace(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    counter_app(app, [])
    async with app:
        handle = await app.start("counter", 50)
        await parked(app, handle.run_id)
        before = await app.get_run(handle.run_id)
        with pytest.raises(UpdateRejectedError, match="amount must be positive"):
            await app.update(handle.run_id, "add_now", -1, timeout=10)
        with pytest.raises(QueryError, match="no update 'other'"):
            await app.update(handle.run_id, "other", 1, timeout=10)
        after = await app.get_run(handle.run_id)
        assert len(after.steps) == len(before.steps)
        assert await app.query(handle.run_id, "total") == 0
        await app.cancel(handle.run_id)


async def test_update__a_failing_handler_fails_the_update_not_the_run(
    make_app: Callable[..., App],
) -> None:
    app = make_app()

    @app.workflow(name="picky")
    async def picky(ctx: Context) -> str:
        done = {"yes": False}

        def finish(data: Any) -> str:
            if data != "please":
                raise KeyError("say please")
            done["yes"] = True
            return "ok"

        ctx.on_update("finish", finish)
        await ctx.wait_until(lambda: done["yes"])
        return "finished"

    async with app:
        handle = await app.start("picky")
        await parked(app, handle.run_id)
        with pytest.raises(UpdateFailedError, match="KeyError"):
            await app.update(handle.run_id, "finish", "now", timeout=10)
        assert await app.update(handle.run_id, "finish", "please", timeout=10) == "ok"
        assert await handle.result(timeout=10) == "finished"


async def test_wait_until__times_out_as_a_timer(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="patient")
    async def patient(ctx: Context) -> str:
        try:
            await ctx.wait_until(lambda: False, timeout=60)
        except WaitTimeoutError:
            return "timed out"
        return "never"

    async with app:
        handle = await app.start("patient")
        await parked(app, handle.run_id)
        clock.advance(60)
        assert await handle.result(timeout=10) == "timed out"
        run = await app.get_run(handle.run_id)
        assert all(step.error is None for step in run.steps)


async def test_cancelled_workflow__a_durable_call_in_its_handler_does_not_hang(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    seen: list[str] = []

    @app.workflow(name="stubborn")
    async def stubborn(ctx: Context) -> None:
        try:
            await ctx.wait_for("never")
        except asyncio.CancelledError:
            try:
                await ctx.sleep(1)
            except asyncio.CancelledError:
                seen.append("refused")
            raise

    async with app:
        handle = await app.start("stubborn")
        await parked(app, handle.run_id)
        await app.cancel(handle.run_id)
        with pytest.raises(Exception, match="cancelled"):
            await handle.result(timeout=10)
