"""Schedules in the PostgreSQL store (a mixin of :class:`PostgresStore`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from psycopg import AsyncConnection

from opsloom.errors import ScheduleNotFoundError
from opsloom.model.run import NewRun
from opsloom.model.schedule import ScheduleRecord
from opsloom.store.dialects import postgres_sql as q
from opsloom.store.dialects.postgres_writer import WORK
from opsloom.store.rows import pg
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

Conn = AsyncConnection[Any]
T = TypeVar("T")


async def _one(conn: Conn, schedule_id: str) -> ScheduleRecord | None:
    cur = await conn.execute(pg(SELECT_ONE), (schedule_id,))
    row = await cur.fetchone()
    return None if row is None else schedule_from_row(row)


class PostgresSchedules:
    """Schedule operations; reads on the pool, writes through the group-commit writer."""

    async def _read(  # provided by PostgresStore
        self, fn: Callable[[Conn], Awaitable[T]], *, transaction: bool = False
    ) -> T:
        raise NotImplementedError

    def _write(self, op: Any, notify: tuple[str, ...] = ()) -> Any:  # provided by PostgresStore
        raise NotImplementedError

    async def save_schedule(self, rec: ScheduleRecord, now: float) -> ScheduleRecord:
        async def op(conn: Conn) -> ScheduleRecord:
            old = await _one(conn, rec.id)
            if old is None:
                await conn.execute(pg(INSERT), insert_params(rec, now))
            elif same_definition(old, rec):
                return old
            else:
                await conn.execute(pg(REDEFINE), redefine_params(rec, now))
            saved = await _one(conn, rec.id)
            assert saved is not None
            return saved

        result: ScheduleRecord = await self._write(op)
        return result

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        async def fetch(conn: Conn) -> ScheduleRecord | None:
            return await _one(conn, schedule_id)

        return await self._read(fetch)

    async def list_schedules(self) -> list[ScheduleRecord]:
        async def fetch(conn: Conn) -> list[ScheduleRecord]:
            cur = await conn.execute(SELECT_ALL)
            return [schedule_from_row(row) for row in await cur.fetchall()]

        return await self._read(fetch)

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        async def fetch(conn: Conn) -> list[ScheduleRecord]:
            cur = await conn.execute(pg(SELECT_DUE), (now, limit))
            return [schedule_from_row(row) for row in await cur.fetchall()]

        return await self._read(fetch)

    async def next_schedule_at(self) -> float | None:
        async def fetch(conn: Conn) -> float | None:
            cur = await conn.execute(NEXT_AT)
            row = await cur.fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._read(fetch)

    async def pause_schedule(
        self, schedule_id: str, paused: bool, next_at: float | None, now: float
    ) -> ScheduleRecord:
        async def op(conn: Conn) -> ScheduleRecord:
            cur = await conn.execute(pg(PAUSE), (int(paused), next_at, now, schedule_id))
            if cur.rowcount != 1:
                raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
            saved = await _one(conn, schedule_id)
            assert saved is not None
            return saved

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
        async def op(conn: Conn) -> bool:
            run_id = None if run is None else run.id
            cur = await conn.execute(pg(FIRE), (next_at, now, run_id, now, schedule_id, tick))
            if cur.rowcount != 1:
                return False  # fired by another scheduler, paused or redefined meanwhile
            if run is not None:
                await q.insert_run(conn, run, now)
            return True

        result: bool = await self._write(op, WORK)
        return result

    async def rearm_after_schedules(self, now: float) -> int:
        async def op(conn: Conn) -> int:
            cur = await conn.execute(pg(REARM_AFTER.format(real="double precision")), (now,))
            return cur.rowcount

        result: int = await self._write(op)
        return result
