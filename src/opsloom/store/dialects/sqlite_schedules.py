"""Schedules in the SQLite store (a mixin of :class:`SqliteStore`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from opsloom.errors import ScheduleNotFoundError
from opsloom.model.run import NewRun
from opsloom.model.schedule import ScheduleRecord
from opsloom.store.dialects.sqlite_sql import _insert_run
from opsloom.store.schedule import (
    FIRE,
    INSERT,
    NEXT_AT,
    PAUSE,
    REARM_AFTER,
    REDEFINE,
    SELECT_ALL,
    SELECT_DUE,
    SELECT_ONE,
    insert_params,
    redefine_params,
    same_definition,
    schedule_from_row,
)


class SqliteSchedules:
    """Schedule operations; reads on the reader connection, writes through the writer."""

    def _read(self) -> sqlite3.Connection:  # provided by SqliteStore
        raise NotImplementedError

    def _write(self, op: Any) -> Any:  # provided by SqliteStore
        raise NotImplementedError

    async def save_schedule(self, rec: ScheduleRecord, now: float) -> ScheduleRecord:
        def op(conn: sqlite3.Connection) -> ScheduleRecord:
            row = conn.execute(SELECT_ONE, (rec.id,)).fetchone()
            if row is None:
                conn.execute(INSERT, insert_params(rec, now))
            else:
                old = schedule_from_row(row)
                if same_definition(old, rec):
                    return old
                conn.execute(REDEFINE, redefine_params(rec, now))
            return schedule_from_row(conn.execute(SELECT_ONE, (rec.id,)).fetchone())

        result: ScheduleRecord = await self._write(op)
        return result

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        row = self._read().execute(SELECT_ONE, (schedule_id,)).fetchone()
        return None if row is None else schedule_from_row(row)

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [schedule_from_row(row) for row in self._read().execute(SELECT_ALL)]

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        rows = self._read().execute(SELECT_DUE, (now, limit)).fetchall()
        return [schedule_from_row(row) for row in rows]

    async def next_schedule_at(self) -> float | None:
        row = self._read().execute(NEXT_AT).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def pause_schedule(
        self, schedule_id: str, paused: bool, next_at: float | None, now: float
    ) -> ScheduleRecord:
        def op(conn: sqlite3.Connection) -> ScheduleRecord:
            cur = conn.execute(PAUSE, (int(paused), next_at, now, schedule_id))
            if cur.rowcount != 1:
                raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
            return schedule_from_row(conn.execute(SELECT_ONE, (schedule_id,)).fetchone())

        result: ScheduleRecord = await self._write(op)
        return result

    async def fire_schedule(
        self,
        schedule_id: str,
        tick: float,
        next_at: float | None,
        run: NewRun | None,
        now: float,
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            run_id = None if run is None else run.id
            cur = conn.execute(FIRE, (next_at, now, run_id, now, schedule_id, tick))
            if cur.rowcount != 1:
                return False  # fired by another scheduler, paused or redefined meanwhile
            if run is not None:
                _insert_run(conn, run, now)
            return True

        result: bool = await self._write(op)
        return result

    async def rearm_after_schedules(self, now: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(REARM_AFTER.format(real="REAL"), (now,)).rowcount

        result: int = await self._write(op)
        return result
