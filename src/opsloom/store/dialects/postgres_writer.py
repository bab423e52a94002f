"""Group commit for PostgreSQL: one writer connection, many state changes per transaction.

Callers submit operations (coroutine functions of an ``AsyncConnection``) in the order they
want them applied. The writer takes everything queued, runs the operations one after another
inside one transaction and resolves all the callers' futures once it has committed: one WAL
flush for the whole batch, and writes of one run are applied in call order.

An operation submitted with ``notify=("work",)`` (or ``"done"``) makes the batch send that
notification on the store's channel; PostgreSQL delivers it to listeners only once the batch has
committed (and folds duplicates), so a woken worker always finds the write.

A batch first runs every operation straight in one transaction (a savepoint per operation
costs two more round trips each). If any operation fails — a clean refusal
(``LeaseLostError``…) or an unexpected database error — that transaction is rolled back and the
batch runs again with each operation inside its own savepoint, so the failing one leaves
nothing behind and fails alone while the rest commits. A deadlock with another process (which
PostgreSQL resolves by failing one statement) is retried a few times before the operation fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg import AsyncConnection

from opsloom.errors import LeaseLostError, RunNotFoundError, RunStateError, StoreError
from opsloom.model.observer import Observer

log = logging.getLogger("opsloom.store")

Op = Callable[[AsyncConnection[Any]], Awaitable[Any]]

#: Errors an operation raises on purpose: passed to the caller as they are.
CLEAN_ERRORS = (LeaseLostError, RunNotFoundError, RunStateError)
#: Conflicts with another transaction that are worth trying again.
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
_ATTEMPTS = 3
#: Wake-ups sent with a write: a job may be ready; a run finished (which may also unblock its
#: parent or a run waiting for its concurrency slot).
WORK = ("work",)
DONE = ("done", "work")
#: How long the writer keeps reconnecting before it fails the writes it holds.
RECONNECT_SECONDS = 15.0

Outcome = tuple["asyncio.Future[Any]", bool, Any]
Pending = tuple[Op, "asyncio.Future[Any]", tuple[str, ...], bool]


class PostgresWriter:
    """The single writer connection of one store."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[AsyncConnection[Any]]],
        channel: str,
        max_batch: int = 1000,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._max_batch = max_batch
        self._pending: list[Pending] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: AsyncConnection[Any] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._committing = False
        self.batches = 0
        self.ops = 0
        #: Told the size and duration of every committed batch.
        self.observer = Observer()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = await self._connect()
        self._task = self._loop.create_task(self._serve(), name="opsloom-postgres-writer")

    def submit(
        self, op: Op, notify: tuple[str, ...] = (), *, one_statement: bool = False
    ) -> asyncio.Future[Any]:
        """Queue ``op``; the future resolves once its transaction is committed.

        ``one_statement``: the op makes at most one change in one statement, so when it is
        alone in its batch it runs without BEGIN and COMMIT round trips (the statement commits
        by itself).
        """
        if self._loop is None or self._closing:
            raise StoreError("the store is not open")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append((op, future, notify, one_statement))
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
            await self._conn.close()
            self._conn = None

    async def _serve(self) -> None:
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
                outcomes = await self._commit_retrying(batch)
                self.observer.store_committed(len(batch), time.perf_counter() - started)
            except Exception as exc:  # the connection or the commit failed
                log.error("group commit failed: %r", exc)
                error = StoreError(f"store write failed: {type(exc).__name__}: {exc}")
                outcomes = [(future, False, error) for _, future, _, _ in batch]
                await self._drop_broken()
            _resolve(outcomes)

    async def _commit_retrying(self, batch: list[Pending]) -> list[Outcome]:
        # A connection found dead before COMMIT was sent (the server restarted, a killed
        # backend) committed nothing: the batch is run again on a new connection, reconnecting
        # with backoff for up to RECONNECT_SECONDS, so a short outage delays writes instead of
        # failing them. Once COMMIT was sent, whether it happened is unknown: callers are told.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECONNECT_SECONDS
        backoff = 0.05
        while True:
            try:
                return await self._commit(batch)
            except Exception as exc:
                lost = self._conn is None or self._conn.broken or self._conn.closed
                if self._committing or not lost or loop.time() + backoff > deadline:
                    raise
                log.warning("writer connection lost before commit, reconnecting: %r", exc)
                await self._drop_broken()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _drop_broken(self) -> None:
        # A lost connection is replaced before the next batch; the failed batch is reported to
        # its callers (whose runs are recovered by lease expiry if they give up).
        if self._conn is not None and (self._conn.broken or self._conn.closed):
            await self._conn.close()
            self._conn = None

    async def _commit(self, batch: list[Pending]) -> list[Outcome]:
        if self._conn is None:
            self._conn = await self._connect()
        conn = self._conn
        self.batches += 1
        self.ops += len(batch)
        self._committing = False
        if len(batch) == 1 and batch[0][3] and not batch[0][2]:
            return await self._commit_alone(conn, batch[0])
        try:
            return await self._commit_fast(conn, batch)
        except _Fallback:
            # Something in the batch failed: the whole transaction was rolled back. Run the
            # batch again with each operation in its own savepoint, so that only the failing
            # one fails (the usual case: a write fenced off after its run changed owner).
            pass
        outcomes: list[Outcome] = []
        notices: set[str] = set()
        self._committing = False
        async with conn.transaction():
            for op, future, notify, _ in batch:
                outcome = await _isolated(conn, op, future)
                outcomes.append(outcome)
                if outcome[1]:
                    notices.update(notify)
            await self._notify(conn, notices)
            self._committing = True  # leaving the block sends COMMIT
        return outcomes

    async def _commit_fast(self, conn: AsyncConnection[Any], batch: list[Pending]) -> list[Outcome]:
        """Every operation straight in one transaction: no savepoint round trips."""
        outcomes: list[Outcome] = []
        notices: set[str] = set()
        try:
            async with conn.transaction():
                for op, future, notify, _ in batch:
                    outcomes.append((future, True, await op(conn)))
                    notices.update(notify)
                await self._notify(conn, notices)
                self._committing = True  # leaving the block sends COMMIT
        except Exception as exc:
            if self._committing or conn.broken or conn.closed:
                raise  # the connection is gone, or the commit itself failed: not retried here
            raise _Fallback from exc
        return outcomes

    async def _commit_alone(self, conn: AsyncConnection[Any], pending: Pending) -> list[Outcome]:
        """A one-statement op on its own: the connection's autocommit commits it."""
        op, future, _, _ = pending
        self._committing = True  # the statement is its own commit: its outcome may be unknown
        try:
            result = await op(conn)
        except CLEAN_ERRORS as exc:
            return [(future, False, exc)]
        except _RETRYABLE as exc:
            return [(future, False, _wrap(exc))]
        except Exception as exc:
            if conn.broken or conn.closed:
                raise
            return [(future, False, exc if isinstance(exc, StoreError) else _wrap(exc))]
        return [(future, True, result)]

    async def _notify(self, conn: AsyncConnection[Any], notices: set[str]) -> None:
        for payload in sorted(notices):
            await conn.execute("SELECT pg_notify(%s, %s)", (self._channel, payload))


class _Fallback(Exception):
    """The fast path of a batch failed before COMMIT; its transaction was rolled back."""


async def _isolated(conn: AsyncConnection[Any], op: Op, future: asyncio.Future[Any]) -> Outcome:
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            async with conn.transaction():  # a savepoint inside the batch
                result = await op(conn)
        except CLEAN_ERRORS as exc:
            return (future, False, exc)
        except _RETRYABLE as exc:
            if attempt < _ATTEMPTS:
                log.info("write conflicted with another transaction, retrying: %r", exc)
                continue
            return (future, False, _wrap(exc))
        except Exception as exc:
            if conn.broken or conn.closed:
                raise  # the connection is gone: the whole batch is lost
            log.warning("an operation failed inside a batch: %r", exc)
            return (future, False, exc if isinstance(exc, StoreError) else _wrap(exc))
        return (future, True, result)
    raise AssertionError("unreachable")


def _wrap(exc: Exception) -> StoreError:
    wrapped = StoreError(f"store write failed: {type(exc).__name__}: {exc}")
    wrapped.__cause__ = exc
    return wrapped


def _resolve(outcomes: list[Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
