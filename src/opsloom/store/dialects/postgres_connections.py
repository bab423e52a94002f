"""Connections and breakers in the PostgreSQL store (a mixin of :class:`PostgresStore`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from psycopg import AsyncConnection

from opsloom.store import connection as c
from opsloom.store.rows import pg

Conn = AsyncConnection[Any]
T = TypeVar("T")


class PostgresConnections:
    """Connection operations; reads on the pool, writes through the group-commit writer."""

    async def _read(  # provided by PostgresStore
        self, fn: Callable[[Conn], Awaitable[T]], *, transaction: bool = False
    ) -> T:
        raise NotImplementedError

    def _write(self, op: Any, notify: tuple[str, ...] = ()) -> Any:  # provided by PostgresStore
        raise NotImplementedError

    async def save_connection(self, rec: c.ConnectionRecord) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(pg(c.SAVE_CONNECTION), rec.params())

        await self._write(op)

    async def get_connection(self, name: str) -> c.ConnectionRecord | None:
        async def fn(conn: Conn) -> c.ConnectionRecord | None:
            row = await (await conn.execute(pg(c.SELECT_CONNECTION), (name,))).fetchone()
            return None if row is None else c.connection_from_row(row)

        return await self._read(fn)

    async def list_connections(self) -> list[c.ConnectionRecord]:
        async def fn(conn: Conn) -> list[c.ConnectionRecord]:
            rows = await (await conn.execute(c.SELECT_CONNECTIONS)).fetchall()
            return [c.connection_from_row(r) for r in rows]

        return await self._read(fn)

    async def delete_connection(self, name: str) -> bool:
        async def op(conn: Conn) -> bool:
            await conn.execute(pg(c.DELETE_BREAKER), (name,))
            cur = await conn.execute(pg(c.DELETE_CONNECTION), (name,))
            return cur.rowcount == 1

        deleted: bool = await self._write(op)
        return deleted

    async def save_breaker(self, rec: c.BreakerRecord) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(pg(c.SAVE_BREAKER), rec.params())

        await self._write(op)

    async def list_breakers(self) -> list[c.BreakerRecord]:
        async def fn(conn: Conn) -> list[c.BreakerRecord]:
            rows = await (await conn.execute(c.SELECT_BREAKERS)).fetchall()
            return [c.breaker_from_row(r) for r in rows]

        return await self._read(fn)
