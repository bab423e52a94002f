"""Schedules in the store: SQL, row mapping and the schedule operations."""

from __future__ import annotations

from typing import Any

from opsloom.errors import ScheduleNotFoundError
from opsloom.model.run import NewRun
from opsloom.model.schedule import ScheduleRecord
from opsloom.store.job import insert_run
from opsloom.store.tx import WORK, Row, Transactions, Tx

SCHEDULE_COLUMNS = (
    "id, workflow, version, kind, spec, timezone, misfire, input, anchor, next_at, paused, "
    "last_at, last_run_id, created_at, updated_at"
)
SELECT_ONE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?"
SELECT_ALL = f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY id"
SELECT_DUE = (
    f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE paused = 0 AND next_at <= ? "
    "ORDER BY next_at LIMIT ?"
)
NEXT_AT = "SELECT min(next_at) FROM schedules WHERE paused = 0"
INSERT = (
    f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: A new definition for an existing schedule: it keeps whether it is paused and its history.
REDEFINE = (
    "UPDATE schedules SET workflow = ?, version = ?, kind = ?, spec = ?, timezone = ?, "
    "misfire = ?, input = ?, anchor = ?, next_at = ?, updated_at = ? WHERE id = ?"
)
PAUSE = "UPDATE schedules SET paused = ?, next_at = ?, updated_at = ? WHERE id = ?"
#: Guarded by the tick it fires: of several schedulers firing one tick, one moves it on.
FIRE = (
    "UPDATE schedules SET next_at = ?, last_at = ?, "
    "last_run_id = coalesce(?, last_run_id), updated_at = ? "
    "WHERE id = ? AND paused = 0 AND next_at = ?"
)
#: ``after`` schedules whose last run has ended get their next tick.
REARM_AFTER = (
    "UPDATE schedules SET next_at = (SELECT r.completed_at FROM runs r "
    "WHERE r.id = schedules.last_run_id) + CAST(spec AS DOUBLE PRECISION), updated_at = ? "
    "WHERE kind = 'after' AND paused = 0 AND next_at IS NULL AND EXISTS "
    "(SELECT 1 FROM runs r WHERE r.id = schedules.last_run_id AND r.completed_at IS NOT NULL)"
)

#: The columns that define a schedule: a change to any of them is a new definition.
DEFINITION = ("workflow", "version", "kind", "spec", "timezone", "misfire", "input")


def schedule_from_row(row: Row) -> ScheduleRecord:
    (
        id_,
        workflow,
        version,
        kind,
        spec,
        timezone,
        misfire,
        input_,
        anchor,
        next_at,
        paused,
        last_at,
        last_run_id,
        created_at,
        updated_at,
    ) = row
    return ScheduleRecord(
        id=id_,
        workflow=workflow,
        version=version,
        kind=kind,
        spec=spec,
        timezone=timezone,
        misfire=misfire,
        input=None if input_ is None else bytes(input_),
        anchor=float(anchor),
        next_at=None if next_at is None else float(next_at),
        paused=bool(paused),
        last_at=None if last_at is None else float(last_at),
        last_run_id=last_run_id,
        created_at=float(created_at),
        updated_at=float(updated_at),
    )


def _definition_params(rec: ScheduleRecord) -> tuple[Any, ...]:
    """The definition and its next tick, in ``REDEFINE`` order."""
    return (*(getattr(rec, name) for name in DEFINITION), rec.anchor, rec.next_at)


def insert_params(rec: ScheduleRecord, now: float) -> tuple[Any, ...]:
    """A new schedule in ``SCHEDULE_COLUMNS`` order."""
    history = (int(rec.paused), rec.last_at, rec.last_run_id)
    return (rec.id, *_definition_params(rec), *history, now, now)


def redefine_params(rec: ScheduleRecord, now: float) -> tuple[Any, ...]:
    """The parameters of ``REDEFINE``."""
    return (*_definition_params(rec), now, rec.id)


def same_definition(a: ScheduleRecord, b: ScheduleRecord) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in DEFINITION)


async def _one(tx: Tx, schedule_id: str) -> ScheduleRecord | None:
    row = await tx.one(SELECT_ONE, (schedule_id,))
    return None if row is None else schedule_from_row(row)


class ScheduleOps(Transactions):
    """The schedule operations of :class:`~opsloom.store.base.Store`."""

    async def save_schedule(self, rec: ScheduleRecord, now: float) -> ScheduleRecord:
        async def save(tx: Tx) -> ScheduleRecord:
            old = await _one(tx, rec.id)
            if old is None:
                await tx.execute(INSERT, insert_params(rec, now))
            elif same_definition(old, rec):
                return old
            else:
                await tx.execute(REDEFINE, redefine_params(rec, now))
            saved = await _one(tx, rec.id)
            assert saved is not None
            return saved

        return await self.write(save)

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        return await self.read(lambda tx: _one(tx, schedule_id))

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [schedule_from_row(row) for row in await self.read(lambda tx: tx.all(SELECT_ALL))]

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        rows = await self.read(lambda tx: tx.all(SELECT_DUE, (now, limit)))
        return [schedule_from_row(row) for row in rows]

    async def next_schedule_at(self) -> float | None:
        row = await self.read(lambda tx: tx.one(NEXT_AT))
        return None if row is None or row[0] is None else float(row[0])

    async def pause_schedule(
        self, schedule_id: str, paused: bool, next_at: float | None, now: float
    ) -> ScheduleRecord:
        async def pause(tx: Tx) -> ScheduleRecord:
            if await tx.execute(PAUSE, (int(paused), next_at, now, schedule_id)) != 1:
                raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
            saved = await _one(tx, schedule_id)
            assert saved is not None
            return saved

        return await self.write(pause)

    async def fire_schedule(
        self,
        schedule_id: str,
        tick: float,
        next_at: float | None,
        run: NewRun | None,
        now: float,
    ) -> bool:
        async def fire(tx: Tx) -> bool:
            run_id = None if run is None else run.id
            if await tx.execute(FIRE, (next_at, now, run_id, now, schedule_id, tick)) != 1:
                return False  # fired by another scheduler, paused or redefined meanwhile
            if run is not None:
                await insert_run(tx, run, now)
            return True

        return await self.write(fire, WORK)

    async def rearm_after_schedules(self, now: float) -> int:
        return await self.write(lambda tx: tx.execute(REARM_AFTER, (now,)))
