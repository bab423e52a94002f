"""Group commit for PostgreSQL: the batch runs in one transaction of the writer's connection.

Operations are coroutine functions of a :class:`PostgresTx`, which awaits psycopg. An
operation submitted with ``wake=("work",)`` (or ``"done"``) makes the batch send that
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
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection

from opsloom.errors import StoreError
from opsloom.store.rollup import RollupSums
from opsloom.store.tx import Dialect, Op, Params, Row
from opsloom.store.writer import CLEAN_ERRORS, GroupCommit, Outcome, Pending, failure, log

#: Conflicts with another transaction that are worth trying again.
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
_ATTEMPTS = 3
#: How long the writer keeps reconnecting before it fails the writes it holds.
RECONNECT_SECONDS = 15.0


@functools.lru_cache(maxsize=2048)
def placeholders(sql: str) -> str:
    """The psycopg form of a statement written with ``?`` placeholders."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresTx:
    """The :class:`~opsloom.store.tx.Tx` of a psycopg connection."""

    __slots__ = ("conn",)
    dialect: Dialect = "postgres"
    #: Every statement is a round trip: an operation's rollups go in its own one statement.
    rollups: RollupSums | None = None

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        cur = await self.conn.execute(placeholders(sql), params)
        row: Row | None = await cur.fetchone()
        return row

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        cur = await self.conn.execute(placeholders(sql), params)
        return await cur.fetchall()

    async def execute(self, sql: str, params: Params = ()) -> int:
        cur = await self.conn.execute(placeholders(sql), params)
        return cur.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self.conn.cursor() as cur:
            await cur.executemany(placeholders(sql), rows)

    def among(self, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        return f"{column} = ANY(?)", (list(values),)

    def lock(self, clause: str) -> str:
        return f" {clause}"

    async def lock_key(self, key: str) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    def unindexed(self, column: str) -> str:
        return column


class PostgresWriter(GroupCommit):
    """The single writer connection of one store."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[AsyncConnection[Any]]],
        channel: str,
        max_batch: int = 1000,
    ) -> None:
        super().__init__("opsloom-postgres-writer", max_batch)
        self._connect = connect
        self._channel = channel
        self._conn: AsyncConnection[Any] | None = None
        self._committing = False

    async def start(self) -> None:
        self._conn = await self._connect()
        self._start()

    async def _close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _commit(self, batch: list[Pending]) -> list[Outcome]:
        # A connection found dead before COMMIT was sent (the server restarted, a killed
        # backend) committed nothing: the batch is run again on a new connection, reconnecting
        # with backoff for up to RECONNECT_SECONDS, so a short outage delays writes instead of
        # failing them. Once COMMIT was sent, whether it happened is unknown: callers are told.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECONNECT_SECONDS
        backoff = 0.05
        while True:
            try:
                return await self._commit_once(batch)
            except Exception as exc:
                lost = self._conn is None or self._conn.broken or self._conn.closed
                if self._committing or not lost or loop.time() + backoff > deadline:
                    raise
                log.warning("writer connection lost before commit, reconnecting: %r", exc)
                await self._failed()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _failed(self) -> None:
        # A lost connection is replaced before the next batch; the failed batch is reported to
        # its callers (whose runs are recovered by lease expiry if they give up).
        if self._conn is not None and (self._conn.broken or self._conn.closed):
            await self._conn.close()
            self._conn = None

    async def _commit_once(self, batch: list[Pending]) -> list[Outcome]:
        if self._conn is None:
            self._conn = await self._connect()
        tx = PostgresTx(self._conn)
        self._committing = False
        if len(batch) == 1 and batch[0].one_statement and not batch[0].wake:
            return [await self._commit_alone(tx, batch[0])]
        try:
            return await self._commit_fast(tx, batch)
        except _Fallback:
            # Something in the batch failed: the whole transaction was rolled back. Run the
            # batch again with each operation in its own savepoint, so that only the failing
            # one fails (the usual case: a write fenced off after its run changed owner).
            pass
        outcomes: list[Outcome] = []
        notices: set[str] = set()
        self._committing = False
        async with tx.conn.transaction():
            for pending in batch:
                outcome = await _isolated(tx, pending.op, pending.future)
                outcomes.append(outcome)
                if outcome[1]:
                    notices.update(pending.wake)
            await self._notify(tx, notices)
            self._committing = True  # leaving the block sends COMMIT
        return outcomes

    async def _commit_fast(self, tx: PostgresTx, batch: list[Pending]) -> list[Outcome]:
        """Every operation straight in one transaction: no savepoint round trips."""
        outcomes: list[Outcome] = []
        notices: set[str] = set()
        try:
            async with tx.conn.transaction():
                for pending in batch:
                    outcomes.append((pending.future, True, await pending.op(tx)))
                    notices.update(pending.wake)
                await self._notify(tx, notices)
                self._committing = True  # leaving the block sends COMMIT
        except Exception as exc:
            if self._committing or tx.conn.broken or tx.conn.closed:
                raise  # the connection is gone, or the commit itself failed: not retried here
            raise _Fallback from exc
        return outcomes

    async def _commit_alone(self, tx: PostgresTx, pending: Pending) -> Outcome:
        """A one-statement op on its own: the connection's autocommit commits it."""
        self._committing = True  # the statement is its own commit: its outcome may be unknown
        try:
            return (pending.future, True, await pending.op(tx))
        except CLEAN_ERRORS as exc:
            return (pending.future, False, exc)
        except _RETRYABLE as exc:
            return (pending.future, False, failure(exc))
        except Exception as exc:
            if tx.conn.broken or tx.conn.closed:
                raise
            return (pending.future, False, exc if isinstance(exc, StoreError) else failure(exc))

    async def _notify(self, tx: PostgresTx, notices: set[str]) -> None:
        for payload in sorted(notices):
            await tx.execute("SELECT pg_notify(?, ?)", (self._channel, payload))


class _Fallback(Exception):
    """The fast path of a batch failed before COMMIT; its transaction was rolled back."""


async def _isolated(tx: PostgresTx, op: Op[Any], future: asyncio.Future[Any]) -> Outcome:
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            async with tx.conn.transaction():  # a savepoint inside the batch
                result = await op(tx)
        except CLEAN_ERRORS as exc:
            return (future, False, exc)
        except _RETRYABLE as exc:
            if attempt < _ATTEMPTS:
                log.info("write conflicted with another transaction, retrying: %r", exc)
                continue
            return (future, False, failure(exc))
        except Exception as exc:
            if tx.conn.broken or tx.conn.closed:
                raise  # the connection is gone: the whole batch is lost
            log.warning("an operation failed inside a batch: %r", exc)
            return (future, False, exc if isinstance(exc, StoreError) else failure(exc))
        return (future, True, result)
    raise AssertionError("unreachable")
