"""Group commit for SQLite: the batch runs inside one ``BEGIN IMMEDIATE … COMMIT``.

Operations are coroutine functions of a :class:`SqliteTx`, whose methods call sqlite3 directly
and never suspend: awaiting an operation runs it to its end at once, so a batch is never
interleaved with anything else on the loop.

The statements run on the event loop thread (each takes microseconds), and only the calls that
may block — taking the write lock when another process holds it, and the COMMIT with its fsync
— run on the writer's own thread. Running every statement on a second thread would make the two
threads trade the GIL for every statement, which costs far more than the SQL.

If an operation fails half-way (not a clean refusal), the whole batch is rolled back and run
again with a savepoint around each operation, so only the culprit fails.

Several processes may write one file (``opsloom up --api-processes``, or workers beside a
server). SQLite lets one of them write at a time and makes the others poll for its lock with
growing sleeps (1, 2, 5 … 100 ms), which under steady contention adds tens of milliseconds to
a write for nothing. So the writers of cooperating processes first take their turn on a lock
file beside the database (``<database>-writer``, an ``flock``): the kernel wakes the next
waiter the moment the holder lets go, and SQLite's own lock is then free. The turn is a
courtesy between opsloom writers; SQLite's lock still guards the file against everyone else.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from opsloom.errors import StoreError
from opsloom.store.rollup import Finished, sqlite_batched
from opsloom.store.tx import Dialect, Op, Params, Row, Rows
from opsloom.store.writer import CLEAN_ERRORS, GroupCommit, Outcome, Pending, failure, log

_LOCK_WAIT_MS = 30_000
#: Batches up to this size commit on the loop thread; larger ones on the writer thread.
_INLINE_COMMIT = 4
#: Lists longer than this are passed as one JSON parameter (SQLite limits bound variables).
_INLINE_LIST = 500


class _Fetched:
    """Rows read already (SQLite runs in process: nothing to gain by waiting)."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    async def rows(self) -> list[Row]:
        return self._rows


class SqliteTx:
    """The :class:`~opsloom.store.tx.Tx` of a sqlite3 connection: calls it directly."""

    __slots__ = ("conn", "rollups")
    dialect: Dialect = "sqlite"
    pipelined = False

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        #: The runs closed in the writer's transaction, added to the rollups at its end.
        self.rollups: list[tuple[Finished, int]] | None = None

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self.conn.execute(sql, params).fetchone()
        return row

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: Params = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self.conn.executemany(sql, rows)

    async def send(self, sql: str, params: Params = ()) -> None:
        self.conn.execute(sql, params)

    async def later(self, sql: str, params: Params = ()) -> Rows:
        return _Fetched(self.conn.execute(sql, params).fetchall())

    def among(self, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        if len(values) <= _INLINE_LIST:
            return f"{column} IN ({','.join('?' * len(values))})", tuple(values)
        return f"{column} IN (SELECT value FROM json_each(?))", (
            orjson.dumps(list(values)).decode(),
        )

    def lock(self, clause: str) -> str:
        return ""

    async def lock_key(self, key: str) -> None:
        return None

    def unindexed(self, column: str) -> str:
        return f"+{column}"


class SqliteWriter(GroupCommit):
    """The single writer of one SQLite database file."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        max_batch: int = 5000,
        *,
        turn_path: str | None = None,
    ) -> None:
        """``turn_path``: the lock file writers of several processes take turns on (None: no
        other process writes, e.g. an in-memory database)."""
        super().__init__("opsloom-sqlite-writer", max_batch)
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._tx: SqliteTx | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsloom-sqlite")
        self._turn_path = turn_path
        self._turn: int | None = None
        #: Batches that had to wait for another process's writer first.
        self.turns_waited = 0
        #: Batches that changed the database: each is one flush to disk (a batch that only
        #: read, such as a claim that found nothing, writes no log and flushes nothing).
        self.durable_commits = 0

    def start(self) -> None:
        self._conn = self._connect()
        self._tx = SqliteTx(self._conn)
        # Never wait for the lock on the loop thread: BEGIN fails at once and is retried on
        # the writer thread with a long timeout.
        self._conn.execute("PRAGMA busy_timeout = 0")
        if self._turn_path is not None:
            self._turn = os.open(self._turn_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._start()

    async def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._turn is not None:
            os.close(self._turn)
            self._turn = None
        self._thread.shutdown(wait=True)

    async def _take_turn(self) -> None:
        """Hold the writers' lock file: at once when free, else wait on the writer thread."""
        if self._turn is None:
            return
        try:
            fcntl.flock(self._turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.turns_waited += 1
            await asyncio.get_running_loop().run_in_executor(
                self._thread, fcntl.flock, self._turn, fcntl.LOCK_EX
            )

    def _end_turn(self) -> None:
        if self._turn is not None:
            fcntl.flock(self._turn, fcntl.LOCK_UN)

    async def _begin(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            await asyncio.get_running_loop().run_in_executor(self._thread, _begin_waiting, conn)

    async def _commit(self, batch: list[Pending]) -> list[Outcome]:
        await self._take_turn()
        try:
            return await self._commit_in_turn(batch)
        finally:
            self._end_turn()

    async def _commit_in_turn(self, batch: list[Pending]) -> list[Outcome]:
        conn, tx = self._conn, self._tx
        assert conn is not None and tx is not None
        await self._begin(conn)
        changes = conn.total_changes
        # The runs the batch closes are added to the rollups together, at the end.
        tx.rollups = []
        outcomes: list[Outcome] = []
        try:
            try:
                for pending in batch:
                    try:
                        outcomes.append((pending.future, True, await pending.op(tx)))
                    except CLEAN_ERRORS as exc:
                        outcomes.append((pending.future, False, exc))
            except Exception as exc:
                log.warning("an operation failed inside a batch, isolating it: %r", exc)
                conn.execute("ROLLBACK")
                await self._begin(conn)
                changes = conn.total_changes
                tx.rollups = []
                outcomes = [await _isolated(tx, pending.op, pending.future) for pending in batch]
            for sql, params in sqlite_batched(tx.rollups):
                conn.execute(sql, params)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            tx.rollups = None
        wrote = conn.total_changes != changes
        if len(batch) <= _INLINE_COMMIT:
            # A small batch means a quiet system: the fsync costs less than the hop to the
            # writer thread and back, which would add to every step's latency.
            conn.execute("COMMIT")
        else:
            await asyncio.get_running_loop().run_in_executor(self._thread, conn.execute, "COMMIT")
        self.durable_commits += wrote
        return outcomes


def _begin_waiting(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {_LOCK_WAIT_MS}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


async def _isolated(tx: SqliteTx, op: Op[Any], future: asyncio.Future[Any]) -> Outcome:
    batch, tx.rollups = tx.rollups, []  # what the op adds counts only if it stays
    assert batch is not None
    tx.conn.execute("SAVEPOINT op")
    try:
        result = await op(tx)
    except Exception as exc:
        tx.conn.execute("ROLLBACK TO op")
        tx.conn.execute("RELEASE op")
        return (
            future,
            False,
            exc if isinstance(exc, (*CLEAN_ERRORS, StoreError)) else failure(exc),
        )
    finally:
        op_rollups, tx.rollups = tx.rollups, batch
    tx.conn.execute("RELEASE op")
    batch.extend(op_rollups)
    return (future, True, result)
