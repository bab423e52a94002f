"""``ctx.race``: the first branch to finish wins, the losers are cancelled, replays agree."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from engine_waits import eventually, parked, stalled_worker_app, status_is, successor_app

from opsloom import App, Context, FakeClock, RunFailedError, RunStatus
from opsloom.model import StepKind, StepStatus


async def test_race__fast_step_beats_a_signal_wait_which_is_dropped(app: App) -> None:
    @app.step(name="quick")
    async def quick() -> str:
        return "quick"

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> list[Any]:
        index, value = await ctx.race(ctx.wait_for("never"), ctx.step(quick))
        return [index, value]

    async with app:
        handle = await app.start("wf")
        assert await handle.result(timeout=10) == [1, "quick"]
        run = await app.get_run(handle.run_id)
    by_name = {s.name: s for s in run.steps}
    lost = by_name["never"]
    assert (lost.kind, lost.status) == (StepKind.SIGNAL, StepStatus.FAILED)
    assert lost.error is not None and lost.error["type"] == "RaceLostError"
    assert by_name["quick"].status is StepStatus.COMPLETED
    race = by_name["race"]
    assert race.kind is StepKind.VALUE
    assert race.output == {"winner": 1, "losers": [lost.seq]}


async def test_race__timer_wins_when_no_signal_comes(make_app: Callable[..., App]) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> int:
        index, _ = await ctx.race(ctx.wait_for("approval"), ctx.sleep(3600))
        return index

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        clock.advance(3601)
        assert await handle.result(timeout=10) == 1


async def test_race__losing_step_is_interrupted(app: App) -> None:
    interrupted = asyncio.Event()

    @app.step(name="slow")
    async def slow() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            interrupted.set()
            raise
        return "slow"

    @app.step(name="fast")
    async def fast() -> str:
        await asyncio.sleep(0.01)
        return "fast"

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> list[Any]:
        return list(await ctx.race(ctx.step(slow), ctx.step(fast)))

    async with app:
        assert await (await app.start("wf")).result(timeout=10) == [1, "fast"]
    assert interrupted.is_set()


async def test_race__winner_error_is_raised(app: App) -> None:
    @app.step(name="boom")
    async def boom() -> None:
        raise ValueError("broken")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> Any:
        return await ctx.race(ctx.step(boom), ctx.wait_for("never"))

    async with app:
        with pytest.raises(RunFailedError) as info:
            await (await app.start("wf")).result(timeout=10)
    assert info.value.error is not None and info.value.error["type"] == "ValueError"


async def test_race__losing_child_run_is_cancelled(app: App) -> None:
    @app.workflow(name="child")
    async def child(ctx: Context) -> None:
        await ctx.wait_for("never")

    @app.workflow(name="parent")
    async def parent(ctx: Context) -> int:
        index, _ = await ctx.race(ctx.child("child"), ctx.wait_for("go"))
        return index

    async with app:
        handle = await app.start("parent")
        child_id = f"{handle.run_id}.2"  # position 1 is the race
        await parked(app, handle.run_id)
        await parked(app, child_id)
        await app.signal(handle.run_id, "go")
        assert await handle.result(timeout=10) == 1
        await status_is(app, child_id, RunStatus.CANCELLED)


async def test_race__replay_keeps_the_recorded_winner(make_app: Callable[..., App]) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> list[Any]:
        index, value = await ctx.race(ctx.sleep(60), ctx.wait_for("a"))
        await ctx.wait_for("next")  # parks: the next claim replays the race
        return [index, value]

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        await app.signal(handle.run_id, "a", "signalled")
        await eventually(lambda: _has_race(app, handle.run_id))
        await parked(app, handle.run_id)
        # On replay both branches are done at once (the timer is due, the signal recorded):
        # only the record says which one won.
        clock.advance(120)
        await app.signal(handle.run_id, "next")
        assert await handle.result(timeout=10) == [1, "signalled"]


async def _has_race(app: App, run_id: str) -> bool:
    run = await app.get_run(run_id)
    return any(s.name == "race" and s.status is StepStatus.COMPLETED for s in run.steps)


async def test_race__losers_do_not_run_again_after_a_lost_worker(db_url: str) -> None:
    calls: list[str] = []
    stuck = asyncio.Event()  # never set: the first worker hangs in "after" like a dead one

    def register(app: App, gate: asyncio.Event | None) -> None:
        @app.step(name="fast")
        async def fast() -> str:
            calls.append("fast")
            return "fast"

        @app.step(name="slow")
        async def slow() -> str:
            calls.append("slow")
            if gate is not None:
                await gate.wait()
            return "slow"

        @app.step(name="after")
        async def after(winner: int) -> int:
            calls.append("after")
            if gate is not None:
                await gate.wait()
            return winner

        @app.workflow(name="wf")
        async def wf(ctx: Context) -> int:
            index, _ = await ctx.race(ctx.step(slow), ctx.step(fast))
            return int(await ctx.step(after, index))

    first = stalled_worker_app(db_url)
    register(first, stuck)
    async with first:
        handle = await first.start("wf")
        await eventually(lambda: asyncio.sleep(0, "after" in calls))
        second, later = successor_app(db_url)
        register(second, None)
        async with second:
            later.advance(31)  # the first worker's lease expires: the run is replayed
            assert await second.result(handle.run_id, timeout=10) == 1
        assert sorted(calls) == ["after", "after", "fast", "slow"], (
            "on replay the recorded winner won again; the cancelled loser did not run again"
        )
        stuck.set()
