"""The scheduler: starts the runs of due schedules, in one process per database at a time.

Every process with a worker runs a :class:`Scheduler`, but only the holder of the
``scheduler`` singleton (a lease in the store, renewed each round) fires schedules; when it dies
or stalls another takes over within a few seconds. Correctness does not rest on that: a tick is
fired by a guarded update of the schedule's ``next_at`` together with the creation of the
tick's run, whose id is derived from the tick, so two schedulers firing one tick still create
one run.

The scheduler also starts the runs of debounced trigger keys when they fall due (see
:mod:`opsloom.model.trigger`): the pending event is in the store, so whichever scheduler holds
the singleton then starts it, after a restart too. Now and then it forgets rate limit
schedules that are past.

Ticks missed while no scheduler ran (downtime, a sleeping laptop) follow the schedule's misfire
policy: ``skip`` them, or ``run_once`` for the most recent one; either way the schedule then
goes on from the next tick in the future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from opsloom.clock import Clock
from opsloom.codec import decode
from opsloom.errors import OpsloomError, ScheduleNotFoundError
from opsloom.model.run import NewRun
from opsloom.model.schedule import DEFAULT_MISFIRE_GRACE, ScheduleRecord, tick_run_id
from opsloom.store.base import Store
from opsloom.store.tx import stop_if_cancelled

log = logging.getLogger("opsloom.scheduler")

#: How often past rate limit schedules are forgotten.
PRUNE_SECONDS = 300.0
#: Builds the run of one tick: (schedule, run id, input) -> the run to create.
RunBuilder = Callable[[ScheduleRecord, str, Any, float], NewRun]


class Scheduler:
    """Fires due schedules of one store (when it holds the ``scheduler`` singleton)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        owner: str,
        build: RunBuilder,
        *,
        period: float = 1.0,
        batch: int = 100,
        misfire_grace: float = DEFAULT_MISFIRE_GRACE,
        on_fired: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.owner = owner
        self.build = build
        self.period = period
        self.batch = batch
        self.misfire_grace = misfire_grace
        self.on_fired = on_fired
        self.fired = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pruned_at = float("-inf")
        clock.subscribe(self._wake.set)

    def notify(self) -> None:
        """A schedule may have changed: look again now."""
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name="opsloom-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            # The flag ends the loop even if a cancellation is lost: on Python 3.11,
            # asyncio.wait_for swallows one that lands as its inner wait completes.
            self._stopping = True
            self._wake.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        ttl = max(3 * self.period, 2.0)
        while not self._stopping:
            self._wake.clear()
            timeout = self.period
            try:
                now = self.clock.now()
                if await self.store.hold_singleton("scheduler", self.owner, now, ttl):
                    await self.tick(now)
                    for due in (
                        await self.store.next_schedule_at(),
                        await self.store.next_debounce_at(),
                    ):
                        if due is not None:
                            timeout = min(timeout, max(0.0, due - self.clock.now()))
            except Exception:  # keep scheduling: the store may come back
                stop_if_cancelled()
                log.exception("scheduling failed")
            stop_if_cancelled()
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    async def tick(self, now: float) -> int:
        """Fire every schedule and debounced trigger key due at ``now``; how many runs were
        started (a debounced key handed to its open run counts too)."""
        started = 0
        await self.store.rearm_after_schedules(now)
        while True:
            due = await self.store.due_schedules(now, self.batch)
            for rec in due:
                if await self._fire(rec, now):
                    started += 1
            if len(due) < self.batch:
                break
        while True:
            debounced = await self.store.fire_debounced(now, self.batch)
            started += debounced
            if debounced < self.batch:
                break
        if now - self._pruned_at >= PRUNE_SECONDS:
            self._pruned_at = now
            await self.store.prune_rate_slots(now)
        if started and self.on_fired is not None:
            self.on_fired()
        self.fired += started
        return started

    async def _fire(self, rec: ScheduleRecord, now: float) -> bool:
        tick = rec.next_at
        assert tick is not None
        schedule = rec.schedule()
        if rec.kind == "after":
            # The next tick comes when this run has ended (rearm_after_schedules).
            return await self._start(rec, tick, None, tick, now)
        following = schedule.next_tick(tick, rec.anchor)
        missed = now - tick > self.misfire_grace or following <= now
        if not missed:
            return await self._start(rec, tick, following, tick, now)
        after_now = schedule.next_tick(now, rec.anchor)
        if rec.misfire == "skip":
            log.info("skipping missed ticks of schedule %s", rec.id)
            await self.store.fire_schedule(rec.id, tick, after_now, None, now)
            return False
        latest = schedule.last_tick(now, rec.anchor)
        return await self._start(rec, tick, after_now, max(latest, tick), now)

    async def _start(
        self, rec: ScheduleRecord, tick: float, next_at: float | None, run_tick: float, now: float
    ) -> bool:
        run_id = tick_run_id(rec.id, run_tick)
        try:
            new = self.build(rec, run_id, None if rec.input is None else decode(rec.input), now)
        except OpsloomError as exc:
            # The workflow is gone or the input no longer fits: move on, and say so.
            log.error("schedule %s cannot start a run: %s", rec.id, exc)
            await self.store.fire_schedule(rec.id, tick, next_at, None, now)
            return False
        return await self.store.fire_schedule(rec.id, tick, next_at, new, now)


async def pause(store: Store, schedule_id: str, now: float) -> ScheduleRecord:
    """Stop a schedule from firing until it is resumed (``ScheduleNotFoundError``)."""
    rec = await store.get_schedule(schedule_id)
    if rec is None:
        raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
    return await store.pause_schedule(schedule_id, True, rec.next_at, now)


async def resume(store: Store, schedule_id: str, now: float) -> ScheduleRecord:
    """Let a paused schedule fire again, from its next tick after ``now`` (nothing missed)."""
    rec = await store.get_schedule(schedule_id)
    if rec is None:
        raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
    schedule = rec.schedule()
    next_at = now if rec.kind == "after" else schedule.next_tick(now, rec.anchor)
    return await store.pause_schedule(schedule_id, False, next_at, now)
