"""Group commit for SQLite: one writer connection, many state changes per transaction.

Callers on the event loop submit operations (coroutine functions of a :class:`SqliteTx`, which
never suspend: :func:`drive` runs one to its end in a single step). The writer
takes everything queued, runs it inside one ``BEGIN IMMEDIATE … COMMIT`` and resolves all the
callers' futures at once: one fsync for the whole batch. While a batch commits, the next one
fills up, so the number of fsyncs stays flat as the load grows.

The statements themselves run on the event loop thread (each takes microseconds), and only the
calls that may block — taking the write lock when another process holds it, and the COMMIT with
its fsync — run on the writer's own thread. Running every statement on a second thread would
make the two threads trade the GIL for every statement, which costs far more than the SQL.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from opsloom.errors import LeaseLostError, RunNotFoundError, RunStateError, StoreError
from opsloom.store.tx import Dialect, Op, Params, Row

T = TypeVar("T")

log = logging.getLogger("opsloom.store")

#: Errors an operation raises *before* it writes anything: the batch goes on without it.
CLEAN_ERRORS = (LeaseLostError, RunNotFoundError, RunStateError)

_LOCK_WAIT_MS = 30_000
#: Batches up to this size commit on the loop thread; larger ones on the writer thread.
_INLINE_COMMIT = 4


#: Lists longer than this are passed as one JSON parameter (SQLite limits bound variables).
_INLINE_LIST = 500


class SqliteTx:
    """The :class:`~opsloom.store.tx.Tx` of a sqlite3 connection: calls it directly.

    Its coroutines never suspend, so an operation runs to its end in one :func:`drive`.
    """

    __slots__ = ("conn",)
    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self.conn.execute(sql, params).fetchone()
        return row

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: Params = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self.conn.executemany(sql, rows)

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


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run an operation on a :class:`SqliteTx` to its end, here and now."""
    try:
        coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coro.close()
    raise StoreError("a store operation waited for something inside a SQLite transaction")


class GroupCommitWriter:
    """The single writer of one SQLite database file."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], max_batch: int = 5000) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._pending: list[tuple[Op[Any], asyncio.Future[Any]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._tx: SqliteTx | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsloom-sqlite")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.ops = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = self._connect()
        self._tx = SqliteTx(self._conn)
        # Never wait for the lock on the loop thread: BEGIN fails at once and is retried on
        # the writer thread with a long timeout.
        self._conn.execute("PRAGMA busy_timeout = 0")
        self._task = self._loop.create_task(self._serve(), name="opsloom-sqlite-writer")

    def submit(self, op: Op[T]) -> asyncio.Future[T]:
        """Queue ``op``; the future resolves once its transaction is committed."""
        if self._loop is None or self._closing:
            raise StoreError("the store is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append((op, future))
        self._wake.set()
        return future

    async def stop(self) -> None:
        """Commit what is queued, then close the connection."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        self._task = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._thread.shutdown(wait=True)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                outcomes = await self._commit(loop, batch)
            except Exception as exc:  # the database itself failed (disk full, I/O error…)
                log.error("group commit failed: %r", exc)
                error = StoreError(f"store write failed: {type(exc).__name__}: {exc}")
                outcomes = [(future, False, error) for _, future in batch]
            _resolve(outcomes)

    async def _begin(self, loop: asyncio.AbstractEventLoop) -> None:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            await loop.run_in_executor(self._thread, _begin_waiting, conn)

    async def _commit(
        self, loop: asyncio.AbstractEventLoop, batch: list[tuple[Op[Any], asyncio.Future[Any]]]
    ) -> list[Any]:
        conn, tx = self._conn, self._tx
        assert conn is not None and tx is not None
        self.batches += 1
        self.ops += len(batch)
        await self._begin(loop)
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            for op, future in batch:
                try:
                    outcomes.append((future, True, drive(op(tx))))
                except CLEAN_ERRORS as exc:
                    outcomes.append((future, False, exc))
        except Exception as exc:
            # Something failed half-way through an operation: undo the whole batch and replay
            # it with a savepoint around each operation, so only the culprit fails.
            log.warning("an operation failed inside a batch, isolating it: %r", exc)
            conn.execute("ROLLBACK")
            await self._begin(loop)
            outcomes = [_isolated(tx, op, future) for op, future in batch]
        if len(batch) <= _INLINE_COMMIT:
            # A small batch means a quiet system: the fsync costs less than the hop to the
            # writer thread and back, which would add to every step's latency.
            conn.execute("COMMIT")
        else:
            await loop.run_in_executor(self._thread, conn.execute, "COMMIT")
        return outcomes


def _begin_waiting(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {_LOCK_WAIT_MS}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


def _isolated(
    tx: SqliteTx, op: Op[Any], future: asyncio.Future[Any]
) -> tuple[asyncio.Future[Any], bool, Any]:
    conn = tx.conn
    conn.execute("SAVEPOINT op")
    try:
        result = drive(op(tx))
    except Exception as exc:
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        if not isinstance(exc, (*CLEAN_ERRORS, StoreError)):
            wrapped = StoreError(f"store write failed: {type(exc).__name__}: {exc}")
            wrapped.__cause__ = exc
            exc = wrapped
        return (future, False, exc)
    conn.execute("RELEASE op")
    return (future, True, result)


def _resolve(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
