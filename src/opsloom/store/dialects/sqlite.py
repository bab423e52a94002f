"""SQLite store: one embedded file in WAL mode, one group-commit writer, a reader on the loop.

Reads are point lookups of microseconds, so they run directly on the event loop thread with
their own connection (WAL readers never wait for the writer). Every write goes through the
:class:`SqliteWriter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse

from opsloom.errors import ConfigurationError, NotAnOpsloomDatabaseError, SchemaTooNewError
from opsloom.model.observer import Observer
from opsloom.store.base import Claim, Kept, WakeTopic
from opsloom.store.dialects import sqlite_slot
from opsloom.store.dialects.sqlite_writer import SqliteTx, SqliteWriter
from opsloom.store.job import take
from opsloom.store.migration import latest_version, migrations
from opsloom.store.rollup import HISTORY_RUNS, HISTORY_STEPS, ROLLUP_VERSION, Backfill
from opsloom.store.sql import SqlStore
from opsloom.store.tx import Op, Tx

#: Written into the file header (PRAGMA application_id) so opsloom files can be recognised.
APPLICATION_ID = 0x4F50534C  # "OPSL"

T = TypeVar("T")


def sqlite_path(url: str) -> str:
    """The file path in a ``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` URL."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise ConfigurationError(f"not a sqlite URL: {url!r}")
    path = unquote(parsed.path)
    if path.startswith("/"):
        path = path[1:]  # sqlite:///rel.db -> rel.db; sqlite:////abs.db -> /abs.db
    if not path:
        raise ConfigurationError(f"the sqlite URL {url!r} names no file")
    return path


class SqliteStore(SqlStore):
    """The embedded, single-file store."""

    dialect = "sqlite"
    #: Processes sharing the file do not hear each other's writes (unless something relays
    #: them, see :meth:`relay_wakes`): workers poll.
    wakes_across_processes = False

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        self.url = url
        self.path = sqlite_path(url)
        if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
            raise ConfigurationError(f"unknown sqlite synchronous level {synchronous!r}")
        self.synchronous = synchronous.upper()
        self._reader: sqlite3.Connection | None = None
        self._writer: SqliteWriter | None = None
        self._slots: list[int] = []
        self.observer = Observer()
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._relay: Callable[[frozenset[str]], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")
        return conn

    async def open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise ConfigurationError(f"the folder of the database {self.path!r} does not exist")
        # Checking and migrating may wait for another process's lock: keep the loop free.
        await asyncio.to_thread(self._prepare)
        self._reader = self._connect()
        turn = None if self.path == ":memory:" else f"{self.path}-writer"
        self._writer = SqliteWriter(self._connect, turn_path=turn)
        self._writer.observer = self.observer
        self._writer.on_commit = self._relay
        self._writer.start()

    def _prepare(self) -> None:
        # A new database is readable by its owner only (it holds tokens' hashes, run data,
        # the audit log); SQLite gives its -wal and -shm files the mode of the database file.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        try:
            conn = self._connect()
        except sqlite3.DatabaseError as exc:
            raise NotAnOpsloomDatabaseError(
                f"{self.path} is not an opsloom database (SQLite says: {exc})"
            ) from None
        try:
            self._check(conn)
            self._enable_wal(conn)
            self._upgrade(conn)
        finally:
            conn.close()

    def _check(self, conn: sqlite3.Connection) -> int:
        """Refuse files that are not opsloom's or are too new; return the schema version."""
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise NotAnOpsloomDatabaseError(
                f"{self.path} is not an opsloom database (SQLite says: {exc})"
            ) from None
        if app_id != APPLICATION_ID and (tables or app_id):
            raise NotAnOpsloomDatabaseError(
                f"{self.path} is a SQLite database of another program (application_id "
                f"{app_id:#x}, {tables} tables); opsloom will not touch it"
            )
        latest = latest_version(self.dialect)
        if version > latest:
            raise SchemaTooNewError(
                f"{self.path} has schema version {version}, newer than this opsloom knows "
                f"({latest}); upgrade opsloom"
            )
        return version

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment of exclusive access and does not use the busy
        # handler: when several processes open a new file together, try again briefly.
        deadline = time.monotonic() + 30
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise ConfigurationError(f"{self.path}: SQLite refused WAL mode ({mode})")

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        if self._check(conn) >= latest_version(self.dialect):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock: look again.
            current = self._check(conn)
            for migration in migrations(self.dialect):
                if migration.version <= current:
                    continue
                for statement in migration.statements():
                    conn.execute(statement)
                if migration.version == ROLLUP_VERSION:
                    backfill = Backfill()
                    for row in conn.execute(HISTORY_RUNS):
                        backfill.add_run(row)
                    for row in conn.execute(HISTORY_STEPS):
                        backfill.add_step(row)
                    for sql, rows in backfill.inserts():
                        conn.executemany(sql, rows)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {migration.version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        for slot in self._slots:
            sqlite_slot.give_back(self._slot_file, slot)
        self._slots = []
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def schema_version(self) -> int:
        return int(self._read().execute("PRAGMA user_version").fetchone()[0])

    def _read(self) -> sqlite3.Connection:
        if self._reader is None:
            raise RuntimeError("the store is not open")
        return self._reader

    def write(
        self, op: Op[T], wake: tuple[str, ...] = (), *, one_statement: bool = False
    ) -> Awaitable[T]:
        if self._writer is None:
            raise RuntimeError("the store is not open")
        return self._writer.submit(op, wake)

    async def read(self, fn: Op[T], *, snapshot: bool = False) -> T:
        # WAL readers never wait for the writer: a read is a few microseconds on the loop.
        return await fn(SqliteTx(self._read()))

    @property
    def writer_stats(self) -> tuple[int, int]:
        """(batches, operations) committed so far: operations per batch shows group commit."""
        return (0, 0) if self._writer is None else (self._writer.batches, self._writer.ops)

    @property
    def durable_commits(self) -> int:
        """Transactions committed so far that changed the database, each one flush to disk
        (``writer_stats`` also counts those that only read)."""
        return 0 if self._writer is None else self._writer.durable_commits

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

        async def claim(tx: Tx) -> list[Claim]:
            # Look a little past ``limit`` so that jobs held back by a concurrency limit do not
            # starve the rest of the batch. The writer is alone: counting open runs per key
            # and admitting them cannot race with another claim.
            among, kind_params = tx.among("kind", kind_list)
            rows = await tx.all(
                "SELECT run_id, concurrency_key, concurrency_limit FROM jobs "
                # The unary + keeps SQLite from choosing jobs_due_idx for the range and then
                # sorting every ready job: walking jobs_ready_idx in order stops after LIMIT.
                "WHERE owner IS NULL AND blocked = 0 AND available_at IS NOT NULL "
                f"AND +available_at <= ? AND {among} "
                "ORDER BY priority DESC, available_at LIMIT ?",
                (now, *kind_params, limit * 2 + 8),
            )
            chosen: list[str] = []
            admitted: list[str] = []
            blocked: list[str] = []
            open_per_key: dict[str, int] = {}
            for run_id, key, key_limit in rows:
                if len(chosen) >= limit:
                    break
                if key is not None:
                    if key not in open_per_key:
                        row = await tx.one(
                            "SELECT count(*) FROM runs WHERE concurrency_key = ? "
                            "AND completed_at IS NULL AND started_at IS NOT NULL",
                            (key,),
                        )
                        open_per_key[key] = 0 if row is None else int(row[0])
                    if open_per_key[key] >= key_limit:
                        blocked.append(run_id)
                        continue
                    open_per_key[key] += 1
                    admitted.append(run_id)
                chosen.append(run_id)
            return await take(tx, owner, chosen, admitted, blocked, now, now + lease_seconds, known)

        return await self.write(claim)

    # --- worker slots ----------------------------------------------------------------------

    @property
    def _slot_file(self) -> str:
        return f"{self.path}-workers"

    async def take_worker_slot(self) -> str | None:
        if self.path == ":memory:":
            return None
        slot = sqlite_slot.take_slot(self._slot_file)
        if slot is None:
            return None
        self._slots.append(slot)
        # No host name: the file is on this machine, whatever the container calls itself.
        return f"worker-{slot}"

    async def worker_slot_free(self, identity: str) -> bool:
        number = identity.removeprefix("worker-")
        if self.path == ":memory:" or not number.isdigit():
            return False
        return sqlite_slot.slot_free(self._slot_file, int(number))

    # --- coordination between processes ------------------------------------------------------

    def add_wake_listener(self, topic: WakeTopic, callback: Callable[[], None]) -> None:
        """SQLite cannot tell one process about another's commits: ``callback`` is called only
        for the wake-ups someone relays to :meth:`hear` (``opsloom up`` relays those of its
        API processes)."""
        self._listeners.setdefault(topic, []).append(callback)

    def relay_wakes(self, send: Callable[[frozenset[str]], None] | None) -> None:
        """Give ``send`` the wake-ups of each commit of this store (``work``, ``done``,
        ``control``), for another process on the file to :meth:`hear`. ``send`` runs on the
        writer's loop right after the commit: it must not block."""
        self._relay = send
        if self._writer is not None:
            self._writer.on_commit = send

    def hear(self, topics: Iterable[str]) -> None:
        """Wake-ups another process relayed: call this store's listeners of ``topics``."""
        for topic in topics:
            for callback in self._listeners.get(topic, ()):
                callback()


def dump_schema(path: str | Path) -> list[tuple[str, str, str]]:
    """The schema of a SQLite file as (type, name, normalised sql) rows, for comparisons."""
    conn = sqlite3.connect(str(path))
    try:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall()
        meta = [
            ("pragma", "user_version", str(conn.execute("PRAGMA user_version").fetchone()[0])),
            ("pragma", "application_id", str(conn.execute("PRAGMA application_id").fetchone()[0])),
        ]
    finally:
        conn.close()
    return [(t, n, " ".join((s or "").split())) for t, n, s in rows] + meta
