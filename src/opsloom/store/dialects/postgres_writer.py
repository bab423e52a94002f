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
import collections
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor, AsyncPipeline
from psycopg.pq import TransactionStatus

from opsloom.errors import StoreError
from opsloom.store.rollup import Finished, batched
from opsloom.store.tx import Dialect, Later, Op, Params, Row, Rows
from opsloom.store.writer import CLEAN_ERRORS, GroupCommit, Outcome, Pending, failure, log

IDLE = TransactionStatus.IDLE
#: Conflicts with another transaction that are worth trying again.
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
_ATTEMPTS = 3
#: A worker's row in ``idle_workers`` younger than this (seconds) is believed: idle workers
#: refresh theirs every 2 s (``postgres.IDLE_REFRESH_SECONDS``); an older one is a worker that
#: died or got busy, and waking it would wake no one.
IDLE_FRESH_SECONDS = 5.0
#: Wakes up to ``?`` idle workers, most recently idle first, each on its own channel, and
#: everyone on the shared channel when no worker said it was idle. Two writers wake different
#: workers (SKIP LOCKED); a woken worker's row goes, and its next claim puts it back.
_WAKE_IDLE = (
    "woken AS (DELETE FROM idle_workers WHERE channel IN (SELECT channel FROM idle_workers "
    f"WHERE since > extract(epoch FROM clock_timestamp()) - {IDLE_FRESH_SECONDS} "
    "ORDER BY since DESC LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING channel)"
)
_WAKE_WORK = (
    "(SELECT count(pg_notify(channel, 'work')) FROM woken), "
    "CASE WHEN NOT EXISTS (SELECT FROM woken) THEN pg_notify(?, 'work') END"
)
#: How long the writer keeps reconnecting before it fails the writes it holds.
RECONNECT_SECONDS = 15.0


@functools.lru_cache(maxsize=2048)
def placeholders(sql: str) -> str:
    """The psycopg form of a statement written with ``?`` placeholders."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresTx:
    """The :class:`~opsloom.store.tx.Tx` of a psycopg connection.

    With ``pipeline`` (psycopg's pipeline mode), statements whose results nobody reads yet
    (``BEGIN``, :meth:`send`) travel with the next one that is read: fewer round trips.
    ``rollups``, when a list, collects the runs finished in this transaction for one rollup
    statement at its end (see :func:`opsloom.store.rollup.roll_up`).
    """

    __slots__ = ("conn", "pipeline", "rollups")
    dialect: Dialect = "postgres"

    def __init__(
        self,
        conn: AsyncConnection[Any],
        pipeline: AsyncPipeline | None = None,
        rollups: list[tuple[Finished, int]] | None = None,
    ) -> None:
        self.conn = conn
        self.pipeline = pipeline
        self.rollups = rollups

    @property
    def pipelined(self) -> bool:
        return self.pipeline is not None

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        cur = await self.conn.execute(placeholders(sql), params)
        row: Row | None = await cur.fetchone()
        return row

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        cur = await self.conn.execute(placeholders(sql), params)
        return await cur.fetchall()

    async def execute(self, sql: str, params: Params = ()) -> int:
        cur = await self.conn.execute(placeholders(sql), params)
        if self.pipeline is not None:
            await self.pipeline.sync()  # the row count comes with the result
        return cur.rowcount

    async def send(self, sql: str, params: Params = ()) -> None:
        """Run ``sql`` whose result is not needed: in a pipeline it goes with the next round
        trip, and an error shows there (at the latest when the transaction commits)."""
        await self.conn.execute(placeholders(sql), params)

    async def later(self, sql: str, params: Params = ()) -> Rows:
        """Send ``sql`` now, read its rows later: in a pipeline, statements sent this way
        one after another share one round trip (the first read)."""
        return _Rows(await self.conn.execute(placeholders(sql), params))

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


class _Rows:
    """The rows of a statement sent ahead (:meth:`PostgresTx.later`)."""

    __slots__ = ("_cur",)

    def __init__(self, cur: AsyncCursor[Any]) -> None:
        self._cur = cur

    async def rows(self) -> list[Row]:
        return await self._cur.fetchall()


@contextlib.asynccontextmanager
async def pipelined_transaction(conn: AsyncConnection[Any]) -> AsyncIterator[AsyncPipeline]:
    """A transaction in pipeline mode: ``BEGIN`` travels with the first statement whose answer
    is awaited, ``COMMIT`` with the last statements, in one Sync.

    (psycopg's ``transaction()`` syncs the pipeline when it begins and when it ends: three
    round trips more.) On any error the transaction is rolled back before the connection is
    used again.
    """
    try:
        async with conn.pipeline() as pipeline:
            await conn.execute(b"BEGIN")
            yield pipeline
            await conn.execute(b"COMMIT")
    except BaseException:
        if not (conn.closed or conn.broken) and conn.info.transaction_status != IDLE:
            with contextlib.suppress(psycopg.Error):
                await conn.execute(b"ROLLBACK")
        raise


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
        notices: collections.Counter[str] = collections.Counter()
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
        """Every operation straight in one transaction: no savepoint round trips.

        In pipeline mode: ``BEGIN`` goes with the first statement, and the rollups of every
        run the batch finishes (added up), its wake-ups and ``COMMIT`` go together at the end.
        """
        outcomes: list[Outcome] = []
        notices: collections.Counter[str] = collections.Counter()
        conn = tx.conn
        try:
            async with pipelined_transaction(conn) as pipeline:
                fast = PostgresTx(conn, pipeline, rollups=[])
                for pending in batch:
                    outcomes.append((pending.future, True, await pending.op(fast)))
                    notices.update(pending.wake)
                # The answers that could wait: the first one read brings them all.
                for i, (future, _, value) in enumerate(outcomes):
                    if isinstance(value, Later):
                        outcomes[i] = (future, True, await value.check())
                closing = self._closing_statement(fast.rollups or [], notices)
                if closing is not None:
                    await fast.send(*closing)
                self._committing = True  # leaving the block sends COMMIT
        except Exception as exc:
            if conn.broken or conn.closed:
                raise  # the connection is gone: whether COMMIT happened is unknown
            if self._committing and not _refused(exc):
                raise  # the commit itself failed in a way that may have committed
            # The server refused a statement (maybe only known at COMMIT, in a pipeline):
            # the transaction was rolled back as a whole.
            raise _Fallback from exc
        return outcomes

    def _closing_statement(
        self, rollups: list[tuple[Finished, int]], wakes: dict[str, int]
    ) -> tuple[str, tuple[Any, ...]] | None:
        """The rollups of the batch and its wake-ups, in one statement (None: nothing).

        ``wakes``: how many operations asked for each wake-up. ``done`` goes to everyone;
        ``work`` to that many idle workers (see :data:`_WAKE_IDLE`).
        """
        parts: list[str] = []
        params: list[Any] = []
        rolled = batched(rollups) if rollups else None
        if rolled is not None:
            parts.append(rolled[0].removeprefix("WITH ").removesuffix(" SELECT 1"))
            params.extend(rolled[1])
        work = wakes.get("work", 0)
        if work:
            parts.append(_WAKE_IDLE)
            params.append(work)
        # ``done`` before ``work``: a woken worker's claim then never overtakes the outcome.
        selected = []
        for payload in sorted(wakes.keys() - {"work"}):
            selected.append("pg_notify(?, ?)")
            params.extend((self._channel, payload))
        if work:
            selected.append(_WAKE_WORK)
            params.append(self._channel)
        selected = selected or ["1"]
        if not parts and selected == ["1"]:
            return None
        head = f"WITH {', '.join(parts)} " if parts else ""
        return f"{head}SELECT {', '.join(selected)}", tuple(params)

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

    async def _notify(self, tx: PostgresTx, notices: dict[str, int]) -> None:
        closing = self._closing_statement([], notices)
        if closing is not None:
            await tx.execute(*closing)


def _refused(exc: BaseException) -> bool:
    """The server answered ``exc`` to a statement (so it rolled the transaction back), as
    opposed to a lost connection, where the outcome of a COMMIT is unknown."""
    if isinstance(exc, psycopg.errors.PipelineAborted):
        return True
    if not isinstance(exc, psycopg.Error) or exc.sqlstate is None:
        return False
    return not exc.sqlstate.startswith(("08", "57"))  # connection lost, server shutting down


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
