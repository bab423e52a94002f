"""PostgreSQL store: many workers on many machines share one database.

Every write of the engine goes through one :class:`PostgresWriter` per store (one connection,
group commit, writes applied in call order); reads and claims use a small connection pool.
Claims run in their own transactions on pool connections with ``FOR UPDATE SKIP LOCKED``, so
workers (in this process or in others) claim in parallel without waiting for one another or
for the writer; they need no ordering with the writer because a claimed run belongs to no one
and any former owner's late writes are refused by the fence.

All tables live in one schema (``opsloom`` unless the URL says ``?schema=name``), created on
open; its version is kept in ``schema_version`` and migrations run under an advisory lock.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from opsloom.codec import decode, encode
from opsloom.errors import (
    ConfigurationError,
    LeaseLostError,
    NotAnOpsloomDatabaseError,
    RunNotFoundError,
    RunStateError,
    SchemaTooNewError,
    StoreError,
)
from opsloom.model import RunRecord, RunStatus, StepRecord
from opsloom.model.cloudevent import CloudEvent, StoredEvent
from opsloom.model.run import Fence, NewRun, sources_of
from opsloom.store.base import Claim, HeartbeatResult, RunFilter, WakeTopic
from opsloom.store.dialects import postgres_documents as docs
from opsloom.store.dialects import postgres_events as ev
from opsloom.store.dialects import postgres_sql as q
from opsloom.store.dialects.postgres_approvals import PostgresApprovals
from opsloom.store.dialects.postgres_connections import PostgresConnections
from opsloom.store.dialects.postgres_identity import PostgresIdentity
from opsloom.store.dialects.postgres_listen import Listener, channel_name
from opsloom.store.dialects.postgres_schedules import PostgresSchedules
from opsloom.store.dialects.postgres_triggers import PostgresTriggers
from opsloom.store.dialects.postgres_writer import DONE, WORK, Op, PostgresWriter
from opsloom.store.document import DocumentRecord
from opsloom.store.event import EventQuery, Subscription
from opsloom.store.migration import latest_version, migrations
from opsloom.store.rows import RUN_COLUMNS, SINGLETON_UPSERT, pg, run_from_row, step_order
from opsloom.store.runquery import POSTGRES_TEXT, RUN_ORDER, run_where

DEFAULT_SCHEMA = "opsloom"
#: Every statement of every connection gives up after this long (a stuck lock, a huge scan).
STATEMENT_TIMEOUT = "30s"
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

Conn = AsyncConnection[Any]
T = TypeVar("T")


def postgres_target(url: str, schema: str | None = None) -> tuple[str, str]:
    """Split a store URL into the libpq connection URL and the schema the store uses.

    ``schema`` (the constructor argument) wins over the URL's ``?schema=`` parameter, which
    libpq would not understand and is removed.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a PostgreSQL URL: {url!r}")
    params = parse_qsl(parsed.query, keep_blank_values=True)
    from_url = [value for name, value in params if name == "schema"]
    rest = [(name, value) for name, value in params if name != "schema"]
    chosen = schema or (from_url[-1] if from_url else DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.match(chosen):
        raise ConfigurationError(f"invalid schema name {chosen!r} in the database URL")
    return urlunparse(parsed._replace(query=urlencode(rest))), chosen


class PostgresStore(
    PostgresSchedules, PostgresTriggers, PostgresApprovals, PostgresIdentity, PostgresConnections
):
    """The shared, networked store."""

    dialect = "postgres"
    wakes_across_processes = True

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 8) -> None:
        self.url = url
        self.conninfo, self.schema = postgres_target(url, schema)
        self.pool_size = pool_size
        self.channel = channel_name(self.schema)
        self._pool: AsyncConnectionPool[Any] | None = None
        self._writer: PostgresWriter | None = None
        self._listener: Listener | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def _configure(self, conn: Conn) -> None:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        await conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")

    async def _connect(self) -> Conn:
        conn = await AsyncConnection.connect(self.conninfo, autocommit=True)
        await self._configure(conn)
        return conn

    async def open(self) -> None:
        try:
            await self._prepare()
            self._pool = AsyncConnectionPool(
                self.conninfo,
                kwargs={"autocommit": True},
                configure=self._configure,
                min_size=1,
                max_size=self.pool_size,
                open=False,
                name=f"opsloom-{self.schema}",
            )
            await self._pool.open(wait=True, timeout=30)
            self._writer = PostgresWriter(self._connect, self.channel)
            await self._writer.start()
            self._listener = Listener(self._connect, self.channel)
        except psycopg.OperationalError as exc:
            await self.close()
            raise StoreError(f"cannot use PostgreSQL at {self._safe_url()}: {exc}") from exc
        except BaseException:
            await self.close()
            raise

    def _safe_url(self) -> str:
        parsed = urlparse(self.conninfo)
        host = parsed.hostname or "localhost"
        return f"{host}:{parsed.port or 5432}{parsed.path}"

    async def _prepare(self) -> None:
        conn = await self._connect()
        try:
            async with conn.transaction():
                # Processes starting together migrate one after the other; the later ones find
                # the work done when they get the lock.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"opsloom-migrate:{self.schema}",),
                )
                await conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
                current = await self._check(conn)
                for migration in migrations(self.dialect):
                    if migration.version <= current:
                        continue
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        "UPDATE schema_version SET version = %s", (migration.version,)
                    )
        finally:
            await conn.close()

    async def _check(self, conn: Conn) -> int:
        """Refuse schemas that are not opsloom's or are too new; return the schema version."""
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (self.schema,),
        )
        tables = {row[0] for row in await cur.fetchall()}
        if "schema_version" not in tables:
            if tables:
                raise NotAnOpsloomDatabaseError(
                    f"schema {self.schema!r} holds {len(tables)} tables of another program "
                    f"and no opsloom schema_version; opsloom will not touch it"
                )
            await conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
            await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        cur = await conn.execute("SELECT max(version) FROM schema_version")
        row = await cur.fetchone()
        version = int(row[0]) if row is not None and row[0] is not None else 0
        latest = latest_version(self.dialect)
        if version > latest:
            raise SchemaTooNewError(
                f"schema {self.schema!r} has version {version}, newer than this opsloom knows "
                f"({latest}); upgrade opsloom"
            )
        return version

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _read(self, fn: Callable[[Conn], Awaitable[T]], *, transaction: bool = False) -> T:
        """Run ``fn`` on a pooled connection; once more on a fresh one if that one was dead.

        The pool may hand out a connection the server has closed (a restart, an idle
        timeout); reads and claims change nothing until they commit, so trying again is safe.
        """
        if self._pool is None:
            raise RuntimeError("the store is not open")
        for attempt in (1, 2):
            conn: Conn | None = None
            try:
                async with self._pool.connection() as conn:
                    if not transaction:
                        return await fn(conn)
                    async with conn.transaction():
                        return await fn(conn)
            except psycopg.OperationalError as exc:  # includes the pool's PoolTimeout
                dead = conn is not None and (conn.broken or conn.closed)
                if attempt == 2 or not dead:
                    raise StoreError(f"store read failed: {type(exc).__name__}: {exc}") from exc
                # The server may have dropped every connection (a restart): test the idle
                # ones now rather than hand them out one failure at a time.
                with contextlib.suppress(Exception):
                    await self._pool.check()
        raise AssertionError("unreachable")

    async def _fetchone(self, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        async def fetch(conn: Conn) -> tuple[Any, ...] | None:
            cur = await conn.execute(query, params)
            row: tuple[Any, ...] | None = await cur.fetchone()
            return row

        return await self._read(fetch)

    def _write(self, op: Op, notify: tuple[str, ...] = ()) -> Any:
        if self._writer is None:
            raise RuntimeError("the store is not open")
        return self._writer.submit(op, notify)

    # --- coordination between processes ------------------------------------------------------

    def add_wake_listener(self, topic: WakeTopic, callback: Callable[[], None]) -> None:
        if self._listener is None:
            raise RuntimeError("the store is not open")
        self._listener.add(topic, callback)

    async def wait_listening(self, timeout: float = 10.0) -> None:
        """Until wake-ups are heard (a NOTIFY sent before is lost); for tests and benchmarks."""
        if self._listener is None:
            raise RuntimeError("the store is not open")
        await self._listener.wait_listening(timeout)

    async def hold_singleton(self, name: str, owner: str, now: float, ttl: float) -> bool:
        async def op(conn: Conn) -> bool:
            cur = await conn.execute(pg(SINGLETON_UPSERT), (name, owner, now + ttl, now))
            return await cur.fetchone() is not None

        result: bool = await self._write(op)
        return result

    @property
    def writer_stats(self) -> tuple[int, int]:
        """(batches, operations) committed so far: operations per batch shows group commit."""
        return (0, 0) if self._writer is None else (self._writer.batches, self._writer.ops)

    async def schema_version(self) -> int:
        row = await self._fetchone("SELECT max(version) FROM schema_version", ())
        return 0 if row is None or row[0] is None else int(row[0])

    # --- runs --------------------------------------------------------------------------------

    async def create_run(
        self, new: NewRun, now: float, *, lease: tuple[str, float] | None = None
    ) -> tuple[RunRecord, bool]:
        async def op(conn: Conn) -> tuple[RunRecord, bool]:
            if await q.insert_run(conn, new, now, lease):
                return RunRecord(
                    id=new.id,
                    workflow=new.workflow,
                    version=new.version,
                    status=RunStatus.PENDING if lease is None else RunStatus.RUNNING,
                    input=decode(new.input),
                    parent_id=new.parent_id,
                    priority=new.priority,
                    concurrency_key=new.concurrency_key,
                    deadline=new.deadline,
                    created_at=now,
                    started_at=None if lease is None else now,
                    updated_at=now,
                ), True
            run = await q.fetch_run(conn, new.id)
            assert run is not None
            return run, False

        result: tuple[RunRecord, bool] = await self._write(op, () if lease is not None else WORK)
        return result

    async def get_run(self, run_id: str, *, with_steps: bool = False) -> RunRecord | None:
        async def fetch(conn: Conn) -> RunRecord | None:
            run = await q.fetch_run(conn, run_id)
            if run is not None and with_steps:
                steps = await q.fetch_steps(conn, [run_id])
                run.steps = sorted(steps.get(run_id, {}).values(), key=step_order)
            return run

        return await self._read(fetch)

    async def status_of(self, run_id: str) -> RunStatus | None:
        row = await self._fetchone("SELECT status FROM runs WHERE id = %s", (run_id,))
        return None if row is None else RunStatus(row[0])

    async def finished_among(self, run_ids: list[str]) -> set[str]:
        if not run_ids:
            return set()

        async def fetch(conn: Conn) -> set[str]:
            cur = await conn.execute(
                "SELECT id FROM runs WHERE completed_at IS NOT NULL AND id = ANY(%s)",
                (list(run_ids),),
            )
            return {row[0] for row in await cur.fetchall()}

        return await self._read(fetch)

    async def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        where, params = run_where(flt, POSTGRES_TEXT)

        async def fetch(conn: Conn) -> list[RunRecord]:
            cur = await conn.execute(
                pg(f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY {RUN_ORDER} LIMIT ?"),
                (*params, flt.limit),
            )
            return [run_from_row(row) for row in await cur.fetchall()]

        return await self._read(fetch)

    async def count_runs(self, flt: RunFilter) -> dict[RunStatus, int]:
        where, params = run_where(flt, POSTGRES_TEXT, paged=False)

        async def fetch(conn: Conn) -> dict[RunStatus, int]:
            cur = await conn.execute(
                pg(f"SELECT status, COUNT(*) FROM runs {where} GROUP BY status"), params
            )
            return {RunStatus(status): count for status, count in await cur.fetchall()}

        return await self._read(fetch)

    async def request_cancel(self, run_id: str, now: float) -> list[str]:
        async def op(conn: Conn) -> list[str]:
            run = await q.fetch_run(conn, run_id)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if run.status.terminal:
                raise RunStateError(f"run {run_id!r} is already {run.status}")
            cur = await conn.execute(
                "WITH RECURSIVE tree(id) AS (SELECT %s::text UNION ALL "
                "SELECT r.id FROM runs r JOIN tree t ON r.parent_id = t.id) "
                "SELECT runs.id FROM tree JOIN runs ON runs.id = tree.id "
                "WHERE runs.completed_at IS NULL",
                (run_id,),
            )
            ids = [row[0] for row in await cur.fetchall()]
            # jobs before runs: the lock order every transaction of this store follows.
            await conn.execute(
                "UPDATE jobs SET nudged = 1, blocked = 0, available_at = "
                "CASE WHEN owner IS NULL THEN %s ELSE available_at END WHERE run_id = ANY(%s)",
                (now, ids),
            )
            await conn.execute(
                "UPDATE runs SET cancel_requested = 1, updated_at = %s WHERE id = ANY(%s)",
                (now, ids),
            )
            return ids

        result: list[str] = await self._write(op, WORK)
        return result

    async def retry_run(self, run_id: str, now: float) -> RunRecord:
        async def op(conn: Conn) -> RunRecord:
            run = await q.fetch_run(conn, run_id)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if run.status not in (RunStatus.FAILED, RunStatus.TIMED_OUT):
                raise RunStateError(
                    f"run {run_id!r} is {run.status}; only failed or timed-out runs can be retried"
                )
            await conn.execute(
                "DELETE FROM steps WHERE run_id = %s AND status <> 'completed'", (run_id,)
            )
            cur = await conn.execute(
                "UPDATE runs SET status = 'pending', error = NULL, output = NULL, "
                "deadline = NULL, completed_at = NULL, cancel_requested = 0, updated_at = %s "
                "WHERE id = %s AND status IN ('failed', 'timed_out') "
                "RETURNING concurrency_key, concurrency_limit",
                (now, run_id),
            )
            row = await cur.fetchone()
            if row is None:  # finished differently since it was read
                raise RunStateError(f"run {run_id!r} can no longer be retried")
            await conn.execute(
                "INSERT INTO jobs (run_id, kind, priority, available_at, concurrency_key, "
                "concurrency_limit) VALUES (%s, %s, %s, %s, %s, %s)",
                (run_id, f"{run.workflow}@{run.version}", run.priority, now, row[0], row[1]),
            )
            await ev.restore_subscriptions(conn, run_id, now)
            fetched = await q.fetch_run(conn, run_id)
            assert fetched is not None
            return fetched

        result: RunRecord = await self._write(op, WORK)
        return result

    async def send_signal(self, run_id: str, name: str, payload: bytes, now: float) -> int:
        async def op(conn: Conn) -> int:
            cur = await conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,))
            row = await cur.fetchone()
            if row is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if RunStatus(row[0]).terminal:
                raise RunStateError(f"run {run_id!r} is already {row[0]}; signal {name!r} refused")
            cur = await conn.execute(
                "INSERT INTO signals (run_id, name, payload, created_at) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (run_id, name, payload, now),
            )
            inserted = await cur.fetchone()
            assert inserted is not None
            await q.nudge(conn, [run_id], now)
            return int(inserted[0])

        result: int = await self._write(op, WORK)
        return result

    # --- jobs and leases ----------------------------------------------------------------------

    async def claim(
        self, owner: str, kinds: frozenset[str], limit: int, now: float, lease_seconds: float
    ) -> list[Claim]:
        if not kinds or limit <= 0:
            return []
        kind_list = sorted(kinds)

        async def claim(conn: Conn) -> list[Claim]:
            # A claim need not wait for its WAL flush: if the server crashes before the flush,
            # the claim is simply gone (the job is unclaimed again and its token unchanged), so
            # the worker's fenced writes are refused and another worker claims the run.
            await conn.execute("SET LOCAL synchronous_commit TO off")
            return await q.claim(conn, owner, kind_list, limit, now, now + lease_seconds)

        try:
            return await self._read(claim, transaction=True)
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            return []  # nothing was claimed; the worker polls again

    async def next_wake(self, kinds: frozenset[str]) -> float | None:
        if not kinds:
            return None
        row = await self._fetchone(
            "SELECT min(available_at) FROM jobs WHERE owner IS NULL AND blocked = 0 "
            "AND available_at IS NOT NULL AND kind = ANY(%s)",
            (sorted(kinds),),
        )
        return None if row is None or row[0] is None else float(row[0])

    async def heartbeat(self, owner: str, run_ids: list[str], until: float) -> HeartbeatResult:
        async def op(conn: Conn) -> HeartbeatResult:
            # Only runs the worker still executes are extended: a lease it holds on a run it
            # gave up on (after a failed write) expires and the run is recovered elsewhere.
            await conn.execute(
                "UPDATE jobs SET lease_expires_at = %s WHERE owner = %s AND run_id = ANY(%s)",
                (until, owner, list(run_ids)),
            )
            cur = await conn.execute(
                "SELECT j.run_id, r.cancel_requested FROM jobs j JOIN runs r "
                "ON r.id = j.run_id WHERE j.owner = %s",
                (owner,),
            )
            held: set[str] = set()
            cancel: set[str] = set()
            for run_id, cancel_requested in await cur.fetchall():
                held.add(run_id)
                if cancel_requested:
                    cancel.add(run_id)
            return HeartbeatResult(
                lost=frozenset(set(run_ids) - held), cancel_requested=frozenset(cancel)
            )

        result: HeartbeatResult = await self._write(op)
        return result

    async def reap_expired(self, now: float) -> list[str]:
        async def op(conn: Conn) -> list[str]:
            # SKIP LOCKED: a job whose owner is writing right now is not expired in practice.
            cur = await conn.execute(
                "SELECT run_id FROM jobs WHERE owner IS NOT NULL AND lease_expires_at < %s "
                "ORDER BY run_id FOR UPDATE SKIP LOCKED",
                (now,),
            )
            ids = [row[0] for row in await cur.fetchall()]
            await q.requeue(conn, ids, now, recovered=True)
            return ids

        result: list[str] = await self._write(op, WORK)
        return result

    async def release(self, owner: str, now: float) -> int:
        async def op(conn: Conn) -> int:
            cur = await conn.execute(
                "SELECT run_id FROM jobs WHERE owner = %s ORDER BY run_id FOR UPDATE", (owner,)
            )
            ids = [row[0] for row in await cur.fetchall()]
            await q.requeue(conn, ids, now, recovered=False)
            await conn.execute("DELETE FROM singletons WHERE owner = %s", (owner,))
            return len(ids)

        result: int = await self._write(op, WORK)
        return result

    # --- fenced writes -----------------------------------------------------------------------

    def record_step(self, fence: Fence, step: StepRecord) -> Awaitable[None]:
        async def op(conn: Conn) -> None:
            await q.fenced_upsert_step(conn, fence, step)

        if self._writer is None:
            raise RuntimeError("the store is not open")
        # One fenced upsert (a refused one only reads the fence to say why).
        return self._writer.submit(op, one_statement=True)

    def consume_signal(self, fence: Fence, signal_id: int, step: StepRecord) -> Awaitable[None]:
        async def op(conn: Conn) -> None:
            await q.check_fence(conn, fence)
            await conn.execute(
                "UPDATE signals SET consumed_seq = %s WHERE id = %s AND run_id = %s",
                (step.seq, signal_id, fence.run_id),
            )
            await q.upsert_step(conn, step)

        return self._write(op)  # type: ignore[no-any-return]

    def start_child(
        self, fence: Fence, step: StepRecord, child: NewRun, now: float
    ) -> Awaitable[None]:
        async def op(conn: Conn) -> None:
            await q.check_fence(conn, fence)
            await q.upsert_step(conn, step)
            await q.insert_run(conn, child, now)

        return self._write(op, WORK)  # type: ignore[no-any-return]

    async def child_outcome(self, child_id: str) -> RunRecord | None:
        async def fetch(conn: Conn) -> RunRecord | None:
            return await q.fetch_run(conn, child_id)

        return await self._read(fetch)

    def suspend(self, fence: Fence, wake_at: float | None, now: float) -> Awaitable[None]:
        async def op(conn: Conn) -> None:
            cur = await conn.execute(
                "UPDATE jobs SET owner = NULL, lease_expires_at = NULL, nudged = 0, "
                "available_at = CASE WHEN nudged = 1 THEN %s ELSE %s::float8 END "
                "WHERE run_id = %s AND owner = %s AND token = %s RETURNING available_at",
                (now, wake_at, fence.run_id, fence.owner, fence.token),
            )
            row = await cur.fetchone()
            if row is None:
                raise LeaseLostError(f"lease on run {fence.run_id!r} lost")
            # A run that may go on at once (nudged, drained) is pending, not waiting.
            ready = row[0] is not None and row[0] <= now
            await conn.execute(
                "UPDATE runs SET status = %s, updated_at = %s WHERE id = %s AND status = 'running'",
                ("pending" if ready else "waiting", now, fence.run_id),
            )

        return self._write(op, () if wake_at is None else WORK)  # type: ignore[no-any-return]

    def finish_run(
        self,
        fence: Fence,
        status: RunStatus,
        output: bytes | None,
        error: dict[str, Any] | None,
        now: float,
    ) -> Awaitable[None]:
        if not status.terminal:
            raise ValueError(f"finish_run needs a terminal status, not {status}")
        error_blob = None if error is None else encode(error, what="run error")
        sources = sources_of(status)

        async def op(conn: Conn) -> None:
            await q.finish(conn, fence, status, output, error_blob, now, sources)

        return self._write(op, DONE)  # type: ignore[no-any-return]

    # --- events ------------------------------------------------------------------------------

    async def append_events(self, events: list[CloudEvent], now: float) -> list[bool]:
        batch = list(events)

        async def op(conn: Conn) -> list[bool]:
            return await ev.append(conn, batch, now)

        result: list[bool] = await self._write(op, WORK)
        return result

    async def append_event(self, event: CloudEvent, now: float) -> bool:
        return (await self.append_events([event], now))[0]

    async def get_event(self, source: str, event_id: str) -> StoredEvent | None:
        async def fetch(conn: Conn) -> StoredEvent | None:
            return await ev.get_event(conn, source, event_id)

        return await self._read(fetch)

    async def list_events(self, query: EventQuery) -> list[StoredEvent]:
        async def fetch(conn: Conn) -> list[StoredEvent]:
            return await ev.list_events(conn, query)

        return await self._read(fetch)

    async def subscriptions_of(self, run_id: str) -> list[Subscription]:
        async def fetch(conn: Conn) -> list[Subscription]:
            return await ev.subscriptions_of(conn, run_id)

        return await self._read(fetch)

    def subscribe(
        self,
        fence: Fence,
        subscription_id: str,
        filters: list[dict[str, Any]],
        step: StepRecord,
        now: float,
    ) -> Awaitable[None]:
        async def op(conn: Conn) -> None:
            await ev.subscribe(conn, fence, subscription_id, filters, step, now)

        return self._write(op)  # type: ignore[no-any-return]

    def unsubscribe(self, fence: Fence, subscription_id: str, step: StepRecord) -> Awaitable[None]:
        async def op(conn: Conn) -> None:
            await ev.unsubscribe(conn, fence, subscription_id, step)

        return self._write(op)  # type: ignore[no-any-return]

    def emit_event(
        self, fence: Fence, event: CloudEvent, step: StepRecord, now: float
    ) -> Awaitable[bool]:
        async def op(conn: Conn) -> bool:
            return await ev.emit(conn, fence, event, step, now)

        return self._write(op, WORK)  # type: ignore[no-any-return]

    # --- documents ---------------------------------------------------------------------------

    async def save_document(self, doc: DocumentRecord) -> tuple[DocumentRecord, bool]:
        async def op(conn: Conn) -> tuple[DocumentRecord, bool]:
            return await docs.save(conn, doc)

        result: tuple[DocumentRecord, bool] = await self._write(op)
        return result

    async def get_document(
        self, namespace: str, name: str, version: str | None = None
    ) -> DocumentRecord | None:
        async def fetch(conn: Conn) -> DocumentRecord | None:
            return await docs.get(conn, namespace, name, version)

        return await self._read(fetch)

    async def list_documents(self, since: float | None = None) -> list[DocumentRecord]:
        async def fetch(conn: Conn) -> list[DocumentRecord]:
            return await docs.list_all(conn, since)

        return await self._read(fetch)
