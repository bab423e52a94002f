"""Group commit for SQLite: one writer thread, many state changes per transaction.

Callers on the event loop submit operations (functions of a ``sqlite3.Connection``); the writer
thread takes everything queued, runs it inside one ``BEGIN IMMEDIATE … COMMIT`` (one fsync), then
resolves all the callers' futures with a single hop back to the loop. While one batch commits the
next one fills up, so the number of fsyncs stays flat as the load grows.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from opsloom.errors import LeaseLostError, RunNotFoundError, RunStateError, StoreError

log = logging.getLogger("opsloom.store")

Op = Callable[[sqlite3.Connection], Any]

#: Errors an operation raises *before* it writes anything: the batch goes on without it.
CLEAN_ERRORS = (LeaseLostError, RunNotFoundError, RunStateError)

_STOP = object()


class GroupCommitWriter:
    """The single writer of one SQLite database file."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], max_batch: int = 2000) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self.batches = 0
        self.ops = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = self._connect()
        self._thread = threading.Thread(target=self._serve, name="opsloom-sqlite-writer",
                                        daemon=True)
        self._thread.start()

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op``; the future resolves once its transaction is committed."""
        if self._loop is None:
            raise StoreError("the store is not open")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put((op, future))
        return future

    async def stop(self) -> None:
        """Commit what is queued, then stop the thread and close the connection."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- writer thread -----------------------------------------------------------------------

    def _serve(self) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        stopping = False
        while not stopping:
            item = get()
            if item is _STOP:
                break
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            outcomes = self._commit(batch)
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(_resolve, outcomes)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return

    def _commit(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> list[Any]:
        conn = self._conn
        assert conn is not None
        self.batches += 1
        self.ops += len(batch)
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, future in batch:
                try:
                    outcomes.append((future, True, op(conn)))
                except CLEAN_ERRORS as exc:
                    outcomes.append((future, False, exc))
            conn.execute("COMMIT")
            return outcomes
        except Exception as exc:
            log.warning("group commit failed, retrying its operations one by one: %r", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        return [self._commit_one(conn, op, future) for op, future in batch]

    def _commit_one(self, conn: sqlite3.Connection, op: Op,
                    future: asyncio.Future[Any]) -> tuple[asyncio.Future[Any], bool, Any]:
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = op(conn)
            conn.execute("COMMIT")
            return (future, True, result)
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if not isinstance(exc, CLEAN_ERRORS + (StoreError,)):
                wrapped = StoreError(f"store write failed: {type(exc).__name__}: {exc}")
                wrapped.__cause__ = exc
                exc = wrapped
            return (future, False, exc)


def _resolve(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
