"""Connections and breakers in the SQLite store (a mixin of :class:`SqliteStore`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from opsloom.store import connection as c


class SqliteConnections:
    """Connection operations; reads on the reader connection, writes through the writer."""

    def _read(self) -> sqlite3.Connection:  # provided by SqliteStore
        raise NotImplementedError

    def _write(self, op: Any) -> Any:  # provided by SqliteStore
        raise NotImplementedError

    async def save_connection(self, rec: c.ConnectionRecord) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(c.SAVE_CONNECTION, rec.params())

        await self._write(op)

    async def get_connection(self, name: str) -> c.ConnectionRecord | None:
        row = self._read().execute(c.SELECT_CONNECTION, (name,)).fetchone()
        return None if row is None else c.connection_from_row(row)

    async def list_connections(self) -> list[c.ConnectionRecord]:
        return [c.connection_from_row(r) for r in self._read().execute(c.SELECT_CONNECTIONS)]

    async def delete_connection(self, name: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            conn.execute(c.DELETE_BREAKER, (name,))
            return conn.execute(c.DELETE_CONNECTION, (name,)).rowcount == 1

        deleted: bool = await self._write(op)
        return deleted

    async def save_breaker(self, rec: c.BreakerRecord) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(c.SAVE_BREAKER, rec.params())

        await self._write(op)

    async def list_breakers(self) -> list[c.BreakerRecord]:
        return [c.breaker_from_row(r) for r in self._read().execute(c.SELECT_BREAKERS)]
