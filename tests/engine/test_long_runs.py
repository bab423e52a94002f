"""Long runs: a loop with short timers goes on from its live state instead of being replayed.

A timer due within ``WorkerOptions.hold_seconds`` is waited for in memory by the worker that
owns the run, so the workflow function is entered once however many times the loop sleeps;
the timer is still recorded first, so a crash resumes it from the history at its time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from engine_waits import REPLAYING, eventually, parked, stalled_worker_app, successor_app

from opsloom import (
    App,
    Context,
    FakeClock,
    RunFailedError,
    RunStatus,
    WorkerOptions,
    current_step,
)
from opsloom.engine.replay import READ
from opsloom.model import StepKind, StepStatus

LOOPS = 6


def polling_loop(app: App, entered: list[int], calls: list[int], seconds: float) -> None:
    """A workflow that checks something, then sleeps ``seconds``, ``LOOPS`` times."""

    async def check(i: int) -> int:
        calls.append(i)
        return i

    app.step(name="check")(check)

    @app.workflow(name="poll")
    async def poll(ctx: Context) -> int:
        entered.append(1)  # how many times the function was (re)started
        total = 0
        for i in range(LOOPS):
            total += await ctx.step(check, i)
            await ctx.sleep(seconds)
        return total


def loop_history() -> list[tuple[StepKind, StepStatus]]:
    return [(StepKind.STEP, StepStatus.COMPLETED), (StepKind.SLEEP, StepStatus.COMPLETED)] * LOOPS


async def holding(app: App, run_id: str) -> list[tuple[StepKind, StepStatus]]:
    """Wait until the run has recorded its first step and the timer it now holds."""

    async def recorded() -> bool:
        return len((await app.get_run(run_id)).steps) == 2

    await eventually(recorded)
    run = await app.get_run(run_id)
    assert run.status is RunStatus.RUNNING, "a held timer keeps the run, like a step"
    return [(s.kind, s.status) for s in run.steps]


HELD = [(StepKind.STEP, StepStatus.COMPLETED), (StepKind.SLEEP, StepStatus.WAITING)]


def options(hold: float, keep: int = WorkerOptions().keep_parked) -> WorkerOptions:
    return WorkerOptions(
        poll_seconds=0.05, reap_seconds=0.1, grace_seconds=5, hold_seconds=hold, keep_parked=keep
    )


@pytest.mark.parametrize(
    ("hold", "keep", "claimed", "entered_times"),
    [
        (1.0, 0, 1, 1),  # held in memory: the function is entered once
        # parked after each timer, its execution kept: claimed again, but entered once
        (0.0, 1, LOOPS + 1, 1),
        # parked after each timer and let go of: one replay from the start per timer
        (0.0, 0, LOOPS + 1, LOOPS + 1),
    ],
)
async def test_short_timers__held_in_memory_instead_of_replaying(
    make_app: Callable[..., App], hold: float, keep: int, claimed: int, entered_times: int
) -> None:
    app = make_app(worker=options(hold, keep))
    entered: list[int] = []
    calls: list[int] = []
    polling_loop(app, entered, calls, 0.01)
    async with app:
        handle = await app.start("poll")
        assert await handle.result(timeout=30) == sum(range(LOOPS))
        run = await app.get_run(handle.run_id)
        assert app.worker is not None and app.worker.claimed == claimed
    assert entered == [1] * entered_times
    assert calls == list(range(LOOPS)), "replays return recorded steps without running them"
    assert [(s.kind, s.status) for s in run.steps] == loop_history()
    sleeps = [s for s in run.steps if s.kind is StepKind.SLEEP]
    assert all(s.completed_at >= s.wake_at for s in sleeps)  # type: ignore[operator]


async def test_held_timer__a_cancel_interrupts_it(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock, worker=options(1.0))
    entered: list[int] = []
    calls: list[int] = []
    polling_loop(app, entered, calls, 0.5)  # the fake clock never reaches the first wake
    async with app:
        handle = await app.start("poll")
        assert await holding(app, handle.run_id) == HELD
        assert await app.cancel(handle.run_id) == [handle.run_id]
        with pytest.raises(RunFailedError) as info:
            await handle.result(timeout=10)
    assert info.value.status == "cancelled"
    assert entered == [1] and calls == [0]


async def test_held_timer__a_dead_worker_s_timer_resumes_at_its_time(db_url: str) -> None:
    # A worker that plays a dead one, on a clock that never moves: it holds the timer forever.
    first = stalled_worker_app(db_url, FakeClock(start=time.time()))
    entered: list[int] = []
    calls: list[int] = []
    polling_loop(first, entered, calls, 0.5)
    async with first:
        handle = await first.start("poll")
        assert await holding(first, handle.run_id) == HELD
        held = await first.get_run(handle.run_id)
        wake = held.steps[1].wake_at
        assert wake == first.clock.now() + 0.5
        second, later = successor_app(db_url)
        polling_loop(second, entered, calls, 0.5)
        async with second:
            later.advance(31)  # the first worker's lease expires: the run is recovered

            # The recovered timer is already due; the later ones are held by the successor,
            # whose fake clock moves only when told to.
            async def advanced() -> bool:
                later.advance(1)
                run = await second.get_run(handle.run_id)
                return run.status is RunStatus.COMPLETED

            await eventually(advanced, timeout=30)
            run = await second.get_run(handle.run_id)
    assert run.recovered == 1 and run.output == sum(range(LOOPS))
    assert calls == list(range(LOOPS)), "the step before the timer did not run again"
    assert [(s.kind, s.status) for s in run.steps] == loop_history()
    assert run.steps[1].wake_at == wake, "the recovered timer kept the time it was given"
    assert entered == [1, 1], "entered by the dead worker, then once by its successor"


async def test_resumed_run__replayed_entries_leave_memory(make_app: Callable[..., App]) -> None:
    app = make_app(worker=REPLAYING)
    kept: list[list[int]] = []

    async def tick(i: int) -> int:
        return i

    async def look() -> int:
        # The history the execution still holds, seen from inside the run's next step.
        assert app.worker is not None
        history = app.worker.executions[current_step().run_id].history
        kept.append(sorted(seq for seq, rec in history.items() if rec is not READ))
        return len(kept)

    app.step(name="tick")(tick)
    app.step(name="look")(look)

    @app.workflow(name="long")
    async def long(ctx: Context) -> int:
        for i in range(20):
            await ctx.step(tick, i)
        await ctx.wait_for("go")  # parks: the signal resumes it by a replay of 20 steps
        return await ctx.step(look)

    async with app:
        handle = await app.start("long")
        await parked(app, handle.run_id)
        await app.signal(handle.run_id, "go")
        assert await handle.result(timeout=30) == 1
    # Only the wait that was open when the run was claimed again is left of its history.
    assert kept == [[21]]


async def test_held_timer__parks_when_no_slot_is_free(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    # One slot: a loop of short sleeps held in memory would keep it for good, and the run
    # started after it would never get a turn.
    app = make_app(
        clock=clock,
        worker=WorkerOptions(
            concurrency=1, poll_seconds=0.05, reap_seconds=0.1, grace_seconds=5, hold_seconds=1.0
        ),
    )
    entered: list[int] = []
    calls: list[int] = []
    polling_loop(app, entered, calls, 0.5)  # the fake clock never reaches the first wake

    @app.workflow(name="other")
    async def other(ctx: Context) -> str:
        return "done"

    async with app:
        poll = await app.start("poll")
        await parked(app, poll.run_id)
        later = await app.start("other")
        assert await later.result(timeout=30) == "done"
        run = await app.get_run(poll.run_id)
    assert run.status is RunStatus.WAITING
    assert [(s.kind, s.status) for s in run.steps] == HELD
    assert entered == [1] and calls == [0]


def held_loop(make_app: Callable[..., App], clock: FakeClock) -> tuple[App, list[int], list[int]]:
    """An app whose polling loop holds its 0.5 s timers, on a clock that never reaches them."""
    app = make_app(clock=clock, worker=options(1.0))
    entered: list[int] = []
    calls: list[int] = []
    polling_loop(app, entered, calls, 0.5)
    return app, entered, calls


async def start_held(app: App) -> str:
    """Start the polling loop and wait until it holds its first timer."""
    handle = await app.start("poll")
    assert await holding(app, handle.run_id) == HELD
    return handle.run_id


async def test_held_timer__a_pause_parks_the_run_at_once(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    # The timer is on disk already: a pause need not wait for it to fire (with this clock it
    # never would), the run parks with it and resumes it when the pause ends.
    app, entered, calls = held_loop(make_app, clock)
    async with app:
        run_id = await start_held(app)
        await app.pause(run_id)
        await parked(app, run_id)
        paused = await app.get_run(run_id)
        await app.resume(run_id)

        async def advanced() -> bool:
            clock.advance(1)
            return (await app.get_run(run_id)).status is RunStatus.COMPLETED

        await eventually(advanced, timeout=30)
        run = await app.get_run(run_id)
    assert paused.paused == "run"
    assert [(s.kind, s.status) for s in paused.steps] == HELD
    assert run.output == sum(range(LOOPS)) and calls == list(range(LOOPS))
    assert [(s.kind, s.status) for s in run.steps] == loop_history()
    assert entered == [1, 1], "parked by the pause, entered again after the resume"


async def test_held_timer__a_shutdown_parks_the_run_at_once(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app, entered, calls = held_loop(make_app, clock)
    async with app:
        run_id = await start_held(app)
        assert app.worker is not None
        # Shutting down drains the run: it parks with its timer instead of keeping the
        # worker until the grace period ends (with this clock the timer never fires).
        await asyncio.wait_for(app.worker.stop(grace=600), timeout=30)
        run = await app.get_run(run_id)
    assert [(s.kind, s.status) for s in run.steps] == HELD
    assert run.steps[1].wake_at == clock.now() + 0.5, "the timer keeps its time"
    assert entered == [1] and calls == [0]
