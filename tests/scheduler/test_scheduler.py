"""The scheduler on a real store (SQLite and PostgreSQL): ticks, misfires, pause, several
schedulers, ``after`` schedules, and code-first ``@app.workflow(schedule=…)``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from opsloom import App, Context
from opsloom.clock import FakeClock
from opsloom.codec import encode
from opsloom.errors import ScheduleNotFoundError
from opsloom.model import RunStatus
from opsloom.model.run import NewRun
from opsloom.model.schedule import Schedule, ScheduleRecord, schedule_record, tick_run_id
from opsloom.scheduler import Scheduler
from opsloom.scheduler.scheduler import pause, resume
from opsloom.store import RunFilter, Store, open_store

T0 = 1_800_000_000.0  # a whole minute


def build(rec: ScheduleRecord, run_id: str, input: Any, now: float) -> NewRun:
    return NewRun(id=run_id, workflow=rec.workflow, version=rec.version or "1", input=encode(input))


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = open_store(db_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def save(store: Store, sid: str, schedule: Schedule, now: float = T0) -> ScheduleRecord:
    return await store.save_schedule(schedule_record(sid, "report", "1", schedule, now), now)


async def run_ids(store: Store) -> list[str]:
    return sorted(r.id for r in await store.list_runs(RunFilter(limit=1000)))


def scheduler(store: Store, owner: str = "s1") -> Scheduler:
    return Scheduler(store, FakeClock(T0), owner, build)


async def test_tick__fires_each_due_tick_once(store: Store) -> None:
    await save(store, "every-minute", Schedule(every=60))
    s = scheduler(store)
    assert await s.tick(T0 + 59) == 0
    assert await s.tick(T0 + 60) == 1
    assert await s.tick(T0 + 61) == 0  # the same tick is not fired again
    assert await s.tick(T0 + 125) == 1
    assert await run_ids(store) == [
        tick_run_id("every-minute", T0 + 60),
        tick_run_id("every-minute", T0 + 120),
    ]
    rec = await store.get_schedule("every-minute")
    assert rec is not None and rec.next_at == T0 + 180
    assert rec.last_run_id == tick_run_id("every-minute", T0 + 120)


async def test_tick__an_interval_that_is_no_binary_fraction_fires_every_tick(
    store: Store,
) -> None:
    # anchor + n * 7.7 is not always a whole number of periods after the anchor in floating
    # point: the tick after such a tick must still be the next one, not itself.
    await save(store, "odd", Schedule(every=7.7, misfire="skip"))
    s = scheduler(store)
    ticks = [T0 + n * 7.7 for n in range(1, 21)]
    assert [await s.tick(tick + 1) for tick in ticks] == [1] * 20
    assert await run_ids(store) == sorted(tick_run_id("odd", tick) for tick in ticks)


async def test_two_schedulers__one_tick_makes_one_run(db_url: str, store: Store) -> None:
    await save(store, "every-minute", Schedule(every=60))
    other = open_store(db_url)
    await other.open()
    try:
        fired = await asyncio.gather(
            scheduler(store, "a").tick(T0 + 60), scheduler(other, "b").tick(T0 + 60)
        )
    finally:
        await other.close()
    assert sorted(fired) == [0, 1]
    assert await run_ids(store) == [tick_run_id("every-minute", T0 + 60)]


async def test_misfire__skip_runs_nothing_for_missed_ticks(store: Store) -> None:
    await save(store, "skipper", Schedule(every=60, misfire="skip"))
    assert await scheduler(store).tick(T0 + 3600 + 5) == 0  # an hour of downtime
    assert await run_ids(store) == []
    rec = await store.get_schedule("skipper")
    assert rec is not None and rec.next_at == T0 + 3660


async def test_misfire__run_once_runs_the_latest_missed_tick(store: Store) -> None:
    await save(store, "catcher", Schedule(every=60, misfire="run_once"))
    assert await scheduler(store).tick(T0 + 3600 + 5) == 1
    assert await run_ids(store) == [tick_run_id("catcher", T0 + 3600)]
    rec = await store.get_schedule("catcher")
    assert rec is not None and rec.next_at == T0 + 3660


async def test_late_but_within_grace__the_tick_runs_normally(store: Store) -> None:
    await save(store, "hourly", Schedule(every=3600, misfire="skip"))
    assert await scheduler(store).tick(T0 + 3600 + 30) == 1
    assert await run_ids(store) == [tick_run_id("hourly", T0 + 3600)]


async def test_pause__stops_firing_and_resume_goes_on_from_now(store: Store) -> None:
    await save(store, "every-minute", Schedule(every=60))
    await pause(store, "every-minute", T0 + 10)
    s = scheduler(store)
    assert await s.tick(T0 + 300) == 0
    rec = await resume(store, "every-minute", T0 + 310)
    assert not rec.paused and rec.next_at == T0 + 360  # missed ticks are not run
    assert await s.tick(T0 + 360) == 1
    with pytest.raises(ScheduleNotFoundError):
        await pause(store, "nope", T0)


async def test_save__same_definition_keeps_state_and_a_new_one_reschedules(store: Store) -> None:
    first = await save(store, "job", Schedule(every=60))
    await pause(store, "job", T0 + 1)
    again = await save(store, "job", Schedule(every=60), now=T0 + 30)
    assert again.next_at == first.next_at and again.paused
    changed = await save(store, "job", Schedule(every=600), now=T0 + 30)
    assert changed.spec == repr(600.0) and changed.next_at == T0 + 630 and changed.paused


async def test_after__next_run_waits_for_the_previous_to_end(store: Store) -> None:
    await save(store, "chain", Schedule(after=30))
    s = scheduler(store)
    assert await s.tick(T0) == 1
    [first] = await run_ids(store)
    assert await s.tick(T0 + 100) == 0  # still running: nothing more
    [claim] = await store.claim("w", frozenset({"report@1"}), 1, T0 + 100, 30)
    await store.finish_run(claim.fence, RunStatus.COMPLETED, encode(1), None, T0 + 200)
    assert await s.tick(T0 + 229) == 0
    assert await s.tick(T0 + 230) == 1
    assert len(await run_ids(store)) == 2 and first in await run_ids(store)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def test_code_first__workflow_schedule_starts_runs_as_time_passes(db_url: str) -> None:
    clock = FakeClock(T0 + 1)
    app = App(db_url, clock=clock)
    done: list[str] = []

    @app.workflow(name="report", schedule="*/5 * * * *")
    async def report(ctx: Context) -> str:
        done.append(ctx.run_id)
        return "ok"

    async with app:
        records = await app.store.list_schedules()
        assert [(r.id, r.kind, r.spec) for r in records] == [("code:report", "cron", "*/5 * * * *")]
        clock.advance(300)
        await eventually(lambda: asyncio.sleep(0, len(done) == 1))
        clock.advance(300)
        await eventually(lambda: asyncio.sleep(0, len(done) == 2))
    assert done == [tick_run_id("code:report", T0 + 300), tick_run_id("code:report", T0 + 600)]
