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
import hashlib
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from opsloom.errors import (
    ConfigurationError,
    NotAnOpsloomDatabaseError,
    SchemaTooNewError,
    StoreError,
)
from opsloom.model.observer import Observer
from opsloom.store.base import MAX_WORKER_SLOTS, Claim, Kept, WakeTopic
from opsloom.store.dialects.postgres_listen import Listener, channel_name, private_channel
from opsloom.store.dialects.postgres_writer import (
    PostgresTx,
    PostgresWriter,
    pipelined_transaction,
)
from opsloom.store.job import take
from opsloom.store.migration import latest_version, migrations
from opsloom.store.rollup import HISTORY_RUNS, HISTORY_STEPS, ROLLUP_VERSION, Backfill
from opsloom.store.sql import SqlStore
from opsloom.store.tx import Op, Tx

log = logging.getLogger("opsloom.store")

DEFAULT_SCHEMA = "opsloom"
#: How long a worker slot must stay free before its holder is taken for dead. A server restart
#: frees every slot at once, and a living holder takes its slots back on its first reaper tick
#: after it reconnects; on a loaded machine that took more than 3 s, and another worker then
#: ran a step that was still running. A false takeover runs steps twice; a late one only waits.
SLOT_CONFIRM_SECONDS = 10.0
#: Every statement of every connection gives up after this long (a stuck lock, a huge scan).
STATEMENT_TIMEOUT = "30s"
#: A worker that waits for work says so again this often (its row in ``idle_workers`` is
#: refreshed by the claim that found too little); writers wake only rows fresher than
#: ``IDLE_FRESH_SECONDS`` (see ``postgres_writer.IDLE_FRESH_SECONDS``).
IDLE_REFRESH_SECONDS = 2.0
_SAY_IDLE = (
    "INSERT INTO idle_workers (channel, since) VALUES (?, extract(epoch FROM clock_timestamp())) "
    "ON CONFLICT (channel) DO UPDATE SET since = excluded.since"
)
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


class PostgresStore(SqlStore):
    """The shared, networked store."""

    dialect = "postgres"
    wakes_across_processes = True

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 8) -> None:
        self.url = url
        self.conninfo, self.schema = postgres_target(url, schema)
        self.pool_size = pool_size
        self.channel = channel_name(self.schema)
        #: Where writers wake this process's worker alone (see ``idle_workers``).
        self.private_channel = private_channel()
        #: When this process last said its worker was idle (monotonic), None once woken.
        self._idle_since: float | None = None
        self._pool: AsyncConnectionPool[Any] | None = None
        self._writer: PostgresWriter | None = None
        self.observer = Observer()
        self._listener: Listener | None = None
        #: The session holding this process's worker slots (advisory locks), once it has one.
        self._slots: Conn | None = None
        self._held: list[str] = []
        #: When each slot of another process was first seen free (see ``worker_slot_free``).
        self._free_since: dict[str, float] = {}
        self.slot_confirm_seconds = SLOT_CONFIRM_SECONDS

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
            self._writer.observer = self.observer
            await self._writer.start()
            self._listener = Listener(self._connect, self.channel, self.private_channel)
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
                # A migration may roll up a long history once (0016): no statement timeout.
                await conn.execute("SET LOCAL statement_timeout = 0")
                current = await self._check(conn)
                for migration in migrations(self.dialect):
                    if migration.version <= current:
                        continue
                    await conn.execute(migration.sql.encode())
                    if migration.version == ROLLUP_VERSION:
                        await self._roll_up_history(conn)
                    await conn.execute(
                        "UPDATE schema_version SET version = %s", (migration.version,)
                    )
        finally:
            await conn.close()

    async def _roll_up_history(self, conn: Conn) -> None:
        """Roll up the runs finished before the rollups existed (see ``Backfill``)."""
        backfill = Backfill()
        for query, add in ((HISTORY_RUNS, backfill.add_run), (HISTORY_STEPS, backfill.add_step)):
            async with conn.cursor(name="opsloom_history") as cur:
                await cur.execute(query)
                async for row in cur:
                    add(row)
        async with conn.cursor() as cur:
            for statement, rows in backfill.inserts():
                if rows:
                    await cur.executemany(statement.replace("?", "%s"), rows)

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
        if self._idle_since is not None and self._writer is not None and self._writer.alive:
            # No longer waiting for work: writers must not spend a wake-up on this process.
            channel = self.private_channel
            self._idle_since = None
            with contextlib.suppress(Exception):
                await self.write(
                    lambda tx: tx.execute("DELETE FROM idle_workers WHERE channel = ?", (channel,))
                )
        if self._slots is not None:
            with contextlib.suppress(psycopg.Error):
                # Given back before the answer comes: the server ends a closed session (and
                # frees its locks) a moment after the client has gone.
                await self._slots.execute("SELECT pg_advisory_unlock_all()")
                await self._slots.close()
            self._slots = None
            self._held = []
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def read(self, fn: Op[T], *, snapshot: bool = False, pipelined: bool = False) -> T:
        """Run ``fn`` on a pooled connection; once more on a fresh one if that one was dead.

        ``pipelined`` (with ``snapshot``): in psycopg's pipeline mode, so that ``BEGIN``, the
        statements ``fn`` sends ahead and ``COMMIT`` share round trips with the others.

        The pool may hand out a connection the server has closed (a restart, an idle
        timeout); reads and claims change nothing until they commit, so trying again is safe.
        """
        if self._pool is None:
            raise RuntimeError("the store is not open")
        for attempt in (1, 2):
            conn: Conn | None = None
            try:
                async with self._pool.connection() as conn:
                    if not snapshot:
                        return await fn(PostgresTx(conn))
                    if pipelined:
                        async with pipelined_transaction(conn) as pipeline:
                            return await fn(PostgresTx(conn, pipeline))
                    async with conn.transaction():
                        return await fn(PostgresTx(conn))
            except psycopg.OperationalError as exc:  # includes the pool's PoolTimeout
                dead = conn is not None and (conn.broken or conn.closed)
                if attempt == 2 or not dead:
                    raise StoreError(f"store read failed: {type(exc).__name__}: {exc}") from exc
                # The server may have dropped every connection (a restart): test the idle
                # ones now rather than hand them out one failure at a time.
                with contextlib.suppress(Exception):
                    await self._pool.check()
        raise AssertionError("unreachable")

    def write(
        self, op: Op[T], wake: tuple[str, ...] = (), *, one_statement: bool = False
    ) -> Awaitable[T]:
        if self._writer is None:
            raise RuntimeError("the store is not open")
        return self._writer.submit(op, wake, one_statement=one_statement)

    @property
    def writer_stats(self) -> tuple[int, int]:
        """(batches, operations) committed so far: operations per batch shows group commit."""
        return (0, 0) if self._writer is None else (self._writer.batches, self._writer.ops)

    async def schema_version(self) -> int:
        row = await self.read(lambda tx: tx.one("SELECT max(version) FROM schema_version"))
        return 0 if row is None or row[0] is None else int(row[0])

    # --- worker slots ----------------------------------------------------------------------

    def _slot_key(self, identity: str) -> int:
        digest = hashlib.blake2b(f"opsloom-worker:{self.schema}:{identity}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big", signed=True)

    async def take_worker_slot(self) -> str | None:
        # Held by a session of its own: the server frees the lock the moment that session
        # ends, which is when the process ends (or loses the server), however it ends.
        if self._slots is None or self._slots.closed or self._slots.broken:
            self._slots = await self._connect()
        host = socket.gethostname()
        for slot in range(MAX_WORKER_SLOTS):
            identity = f"{host}/worker-{slot}"
            if identity not in self._held and await self._lock_slot(identity):
                self._held.append(identity)
                return identity
        return None

    async def _lock_slot(self, identity: str) -> bool:
        assert self._slots is not None
        cur = await self._slots.execute(
            "SELECT pg_try_advisory_lock(%s)", (self._slot_key(identity),)
        )
        row = await cur.fetchone()
        return bool(row and row[0])

    async def keep_worker_slots(self) -> None:
        # A lost session (a server restart) lost its locks: take them again at once, before
        # the others, who wait ``slot_confirm_seconds`` before they believe a slot is free.
        if not self._held:
            return
        if self._slots is not None and not self._slots.closed:
            try:
                await self._slots.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                with contextlib.suppress(psycopg.Error):
                    await self._slots.close()
        self._slots = await self._connect()
        for identity in self._held:
            if not await self._lock_slot(identity):
                log.error(
                    "worker slot %s was taken by another process while this one was cut off "
                    "from the database; the runs it leased will be resumed there",
                    identity,
                    extra={"event": "worker_slot_lost", "slot": identity},
                )

    async def worker_slot_free(self, identity: str) -> bool:
        key = self._slot_key(identity)
        # A transaction-level try: given back at once, and never waits for the holder.
        row = await self.read(
            lambda tx: tx.one("SELECT pg_try_advisory_xact_lock(?)", (key,)), snapshot=True
        )
        if not (row and row[0]):
            self._free_since.pop(identity, None)
            return False
        # Free twice, ``slot_confirm_seconds`` apart: a server restart frees every slot at once,
        # and their living holders take them back within a reaper period.
        first = self._free_since.setdefault(identity, time.monotonic())
        return time.monotonic() - first >= self.slot_confirm_seconds

    # --- coordination between processes ------------------------------------------------------

    def add_wake_listener(self, topic: WakeTopic, callback: Callable[[], None]) -> None:
        if self._listener is None:
            raise RuntimeError("the store is not open")
        if topic == "work":
            # Woken on its own channel: its row in idle_workers is gone, say it again.
            self._listener.add(topic, self._woken)
        self._listener.add(topic, callback)

    def _woken(self) -> None:
        self._idle_since = None

    def _says_idle(self) -> bool:
        """Whether a claim that found too little should (again) record this worker as idle."""
        if self._listener is None or not self._listener.listening:
            return False  # a wake-up sent now would not be heard: let writers wake everyone
        last = self._idle_since
        return last is None or time.monotonic() - last >= IDLE_REFRESH_SECONDS

    async def wait_listening(self, timeout: float = 10.0) -> None:
        """Until wake-ups are heard (a NOTIFY sent before is lost); for tests and benchmarks."""
        if self._listener is None:
            raise RuntimeError("the store is not open")
        await self._listener.wait_listening(timeout)

    # --- jobs and leases ----------------------------------------------------------------------

    async def claim(
        self,
        owner: str,
        kinds: frozenset[str],
        limit: int,
        now: float,
        lease_seconds: float,
        known: Mapping[str, Kept] | None = None,
    ) -> list[Claim]:
        if not kinds or limit <= 0:
            return []
        kind_list = sorted(kinds)

        said_idle = said_busy = False

        async def claim(tx: Tx) -> list[Claim]:
            nonlocal said_idle, said_busy
            # A claim need not wait for its WAL flush: if the server crashes before the flush,
            # the claim is simply gone (the job is unclaimed again and its token unchanged), so
            # the worker's fenced writes are refused and another worker claims the run.
            await tx.send("SET LOCAL synchronous_commit TO off")
            claims = await _claim(tx, owner, kind_list, limit, now, now + lease_seconds, known)
            if len(claims) < limit:
                if self._says_idle():
                    # The worker will wait: writers may now wake it alone (with the COMMIT).
                    await tx.send(_SAY_IDLE, (self.private_channel,))
                    said_idle = True
            elif self._idle_since is not None:
                # Full now: a wake-up meant for an idle worker must not be spent on this one.
                await tx.send("DELETE FROM idle_workers WHERE channel = ?", (self.private_channel,))
                said_busy = True
            return claims

        try:
            claims = await self.read(claim, snapshot=True, pipelined=True)
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            return []  # nothing was claimed; the worker polls again
        if said_idle:
            self._idle_since = time.monotonic()
        elif said_busy:
            self._idle_since = None
        return claims


Row = tuple[str, str | None, int | None]


async def _claim(
    tx: Tx,
    owner: str,
    kinds: list[str],
    limit: int,
    now: float,
    lease_until: float,
    known: Mapping[str, Kept] | None,
) -> list[Claim]:
    """Lease ready jobs, in the caller's transaction on a pool connection (not the writer's).

    Rows are locked a few at a time, in queue order, skipping those another claim holds:
    locking a whole look-ahead window at once would hide its extra rows from concurrent
    claims until this one commits. Like the SQLite store, a claim examines at most
    ``limit * 2 + 8`` ready jobs, so jobs held back by a concurrency limit do not starve the
    rest of the batch.
    """
    chosen: list[str] = []
    admitted: list[str] = []
    blocked: list[str] = []
    open_per_key: dict[str, int] = {}
    busy: set[str] = set()
    examined: list[str] = []
    window = limit * 2 + 8
    while len(chosen) < limit and len(examined) < window:
        ask = min(limit - len(chosen), window - len(examined))
        rows: list[Row] = await tx.all(
            "SELECT run_id, concurrency_key, concurrency_limit FROM jobs "
            "WHERE owner IS NULL AND blocked = 0 AND available_at IS NOT NULL "
            "AND available_at <= ? AND kind = ANY(?) AND run_id <> ALL(?) "
            "ORDER BY priority DESC, available_at LIMIT ? FOR UPDATE SKIP LOCKED",
            (now, kinds, examined, ask),
        )
        examined.extend(row[0] for row in rows)
        await _count_open(tx, rows, open_per_key, busy)
        took, kept_back = _admit(rows, ask, open_per_key, busy)
        chosen.extend(took)
        taken = set(took)
        admitted.extend(row[0] for row in rows if row[0] in taken and row[1] is not None)
        blocked.extend(kept_back)
        if len(rows) < ask:
            break
    return await take(tx, owner, chosen, admitted, blocked, now, lease_until, known)


async def _count_open(
    tx: Tx, rows: list[Row], open_per_key: dict[str, int], busy: set[str]
) -> None:
    """Lock the concurrency keys of ``rows`` not seen yet and count their open runs."""
    keys = sorted({key for _, key, _ in rows if key is not None} - busy - set(open_per_key))
    if not keys:
        return
    # Try-locks only: a key another transaction is deciding on is left for the next claim,
    # and a claim never waits for a lock while it holds job rows (no deadlock).
    held = [
        row[0]
        for row in await tx.all(
            "SELECT key FROM unnest(?::text[]) AS key "
            "WHERE pg_try_advisory_xact_lock(hashtext(key))",
            (keys,),
        )
    ]
    busy.update(set(keys) - set(held))
    if not held:
        return
    counts = await tx.all(
        "SELECT concurrency_key, count(*) FROM runs WHERE concurrency_key = ANY(?) "
        "AND completed_at IS NULL AND started_at IS NOT NULL GROUP BY concurrency_key",
        (held,),
    )
    open_per_key.update({key: 0 for key in held})
    open_per_key.update({key: int(n) for key, n in counts})


def _admit(
    rows: list[Row], want: int, open_per_key: dict[str, int], busy: set[str]
) -> tuple[list[str], list[str]]:
    """Which rows to take and which to mark blocked, in queue order (counts are updated)."""
    take: list[str] = []
    block: list[str] = []
    for run_id, key, key_limit in rows:
        if len(take) >= want:
            break
        if key is not None:
            if key in busy:
                continue  # another worker is admitting runs of this key right now
            if key_limit is not None and open_per_key[key] >= key_limit:
                block.append(run_id)
                continue
            open_per_key[key] += 1
        take.append(run_id)
    return take, block
