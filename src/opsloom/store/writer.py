"""Group commit for SQLite: one writer connection, many state changes per transaction.

Callers on the event loop submit operations (functions of a ``sqlite3.Connection``). The writer
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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opsloom.errors import LeaseLostError, RunNotFoundError, RunStateError, StoreError
from opsloom.model.observer import Observer

log = logging.getLogger("opsloom.store")

Op = Callable[[sqlite3.Connection], Any]

#: Errors an operation raises *before* it writes anything: the batch goes on without it.
CLEAN_ERRORS = (LeaseLostError, RunNotFoundError, RunStateError)

_LOCK_WAIT_MS = 30_000
#: Batches up to this size commit on the loop thread; larger ones on the writer thread.
_INLINE_COMMIT = 4


class GroupCommitWriter:
    """The single writer of one SQLite database file."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], max_batch: int = 5000) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsloom-sqlite")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.ops = 0
        #: Told the size and duration of every committed batch.
        self.observer = Observer()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = self._connect()
        # Never wait for the lock on the loop thread: BEGIN fails at once and is retried on
        # the writer thread with a long timeout.
        self._conn.execute("PRAGMA busy_timeout = 0")
        self._task = self._loop.create_task(self._serve(), name="opsloom-sqlite-writer")

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op``; the future resolves once its transaction is committed."""
        if self._loop is None or self._closing:
            raise StoreError("the store is not open")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append((op, future))
        self._wake.set()
        return future

    @property
    def alive(self) -> bool:
        """The writer is serving: started, not stopped, and its loop has not died."""
        return self._task is not None and not self._task.done() and not self._closing

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
            started = time.perf_counter()
            try:
                outcomes = await self._commit(loop, batch)
                self.observer.store_committed(len(batch), time.perf_counter() - started)
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
        self, loop: asyncio.AbstractEventLoop, batch: list[tuple[Op, asyncio.Future[Any]]]
    ) -> list[Any]:
        conn = self._conn
        assert conn is not None
        self.batches += 1
        self.ops += len(batch)
        await self._begin(loop)
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            for op, future in batch:
                try:
                    outcomes.append((future, True, op(conn)))
                except CLEAN_ERRORS as exc:
                    outcomes.append((future, False, exc))
        except Exception as exc:
            # Something failed half-way through an operation: undo the whole batch and replay
            # it with a savepoint around each operation, so only the culprit fails.
            log.warning("an operation failed inside a batch, isolating it: %r", exc)
            conn.execute("ROLLBACK")
            await self._begin(loop)
            outcomes = [_isolated(conn, op, future) for op, future in batch]
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
    conn: sqlite3.Connection, op: Op, future: asyncio.Future[Any]
) -> tuple[asyncio.Future[Any], bool, Any]:
    conn.execute("SAVEPOINT op")
    try:
        result = op(conn)
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
