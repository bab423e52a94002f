"""SQLite store: one embedded file in WAL mode, one group-commit writer, a reader on the loop.

Reads are point lookups of microseconds, so they run directly on the event loop thread with
their own connection (WAL readers never wait for the writer). Every write goes through the
:class:`GroupCommitWriter`.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlparse

from opsloom.codec import decode, encode
from opsloom.errors import (
    ConfigurationError,
    LeaseLostError,
    NotAnOpsloomDatabaseError,
    RunNotFoundError,
    RunStateError,
    SchemaTooNewError,
)
from opsloom.model import RunRecord, RunStatus, StepRecord
from opsloom.model.cloudevent import CloudEvent, StoredEvent
from opsloom.model.run import Fence, NewRun, sources_of
from opsloom.store.base import Claim, HeartbeatResult, RunFilter, WakeTopic
from opsloom.store.dialects import sqlite_documents as docs
from opsloom.store.dialects import sqlite_events as ev
from opsloom.store.dialects.sqlite_approvals import SqliteApprovals
from opsloom.store.dialects.sqlite_connections import SqliteConnections
from opsloom.store.dialects.sqlite_identity import SqliteIdentity
from opsloom.store.dialects.sqlite_schedules import SqliteSchedules
from opsloom.store.dialects.sqlite_sql import (
    _check_fence,
    _chunks,
    _claim,
    _close_run,
    _fenced_upsert_step,
    _fetch_run,
    _fetch_steps,
    _insert_run,
    _marks,
    _nudge,
    _requeue,
    _upsert_step,
)
from opsloom.store.dialects.sqlite_triggers import SqliteTriggers, close_runs
from opsloom.store.document import DocumentRecord
from opsloom.store.event import EventQuery, Subscription
from opsloom.store.migration import latest_version, migrations
from opsloom.store.rows import RUN_COLUMNS, SINGLETON_UPSERT, run_from_row, step_order
from opsloom.store.runquery import RUN_ORDER, SQLITE_TEXT, run_where
from opsloom.store.writer import GroupCommitWriter

#: Written into the file header (PRAGMA application_id) so opsloom files can be recognised.
APPLICATION_ID = 0x4F50534C  # "OPSL"


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


class SqliteStore(
    SqliteSchedules, SqliteTriggers, SqliteApprovals, SqliteIdentity, SqliteConnections
):
    """The embedded, single-file store."""

    dialect = "sqlite"
    #: Processes sharing the file do not hear each other's writes: workers poll.
    wakes_across_processes = False

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        self.url = url
        self.path = sqlite_path(url)
        if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
            raise ConfigurationError(f"unknown sqlite synchronous level {synchronous!r}")
        self.synchronous = synchronous.upper()
        self._reader: sqlite3.Connection | None = None
        self._writer: GroupCommitWriter | None = None

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
        self._writer = GroupCommitWriter(self._connect)
        self._writer.start()

    def _prepare(self) -> None:
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
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {migration.version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
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

    def _write(self, op: Any) -> Any:
        if self._writer is None:
            raise RuntimeError("the store is not open")
        return self._writer.submit(op)

    @property
    def writer_stats(self) -> tuple[int, int]:
        """(batches, operations) committed so far: operations per batch shows group commit."""
        return (0, 0) if self._writer is None else (self._writer.batches, self._writer.ops)

    # --- runs --------------------------------------------------------------------------------

    async def create_run(
        self, new: NewRun, now: float, *, lease: tuple[str, float] | None = None
    ) -> tuple[RunRecord, bool]:
        def op(conn: sqlite3.Connection) -> tuple[RunRecord, bool]:
            if _insert_run(conn, new, now, lease):
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
            run = _fetch_run(conn, new.id)
            assert run is not None
            return run, False

        result: tuple[RunRecord, bool] = await self._write(op)
        return result

    async def get_run(self, run_id: str, *, with_steps: bool = False) -> RunRecord | None:
        conn = self._read()
        run = _fetch_run(conn, run_id)
        if run is not None and with_steps:
            run.steps = sorted(
                _fetch_steps(conn, [run_id]).get(run_id, {}).values(), key=step_order
            )
        return run

    async def status_of(self, run_id: str) -> RunStatus | None:
        row = self._read().execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else RunStatus(row[0])

    async def finished_among(self, run_ids: list[str]) -> set[str]:
        conn = self._read()
        done: set[str] = set()
        for chunk in _chunks(run_ids):
            done.update(
                row[0]
                for row in conn.execute(
                    "SELECT id FROM runs WHERE completed_at IS NOT NULL "
                    f"AND id IN ({_marks(chunk)})",
                    chunk,
                )
            )
        return done

    async def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        where, params = run_where(flt, SQLITE_TEXT)
        rows = (
            self._read()
            .execute(
                f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY {RUN_ORDER} LIMIT ?",
                (*params, flt.limit),
            )
            .fetchall()
        )
        return [run_from_row(row) for row in rows]

    async def count_runs(self, flt: RunFilter) -> dict[RunStatus, int]:
        where, params = run_where(flt, SQLITE_TEXT, paged=False)
        rows = self._read().execute(
            f"SELECT status, COUNT(*) FROM runs {where} GROUP BY status", params
        )
        return {RunStatus(status): count for status, count in rows}

    async def request_cancel(self, run_id: str, now: float) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            run = _fetch_run(conn, run_id)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if run.status.terminal:
                raise RunStateError(f"run {run_id!r} is already {run.status}")
            ids = [
                row[0]
                for row in conn.execute(
                    "WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL "
                    "SELECT r.id FROM runs r JOIN tree t ON r.parent_id = t.id) "
                    "SELECT runs.id, runs.started_at, runs.parent_id FROM tree JOIN runs "
                    "ON runs.id = tree.id WHERE runs.completed_at IS NULL",
                    (run_id,),
                )
            ]
            for chunk in _chunks(ids):
                marks = _marks(chunk)
                conn.execute(
                    f"UPDATE runs SET cancel_requested = 1, updated_at = ? WHERE id IN ({marks})",
                    (now, *chunk),
                )
                conn.execute(
                    f"UPDATE jobs SET nudged = 1, blocked = 0, available_at = "
                    f"CASE WHEN owner IS NULL THEN ? ELSE available_at END "
                    f"WHERE run_id IN ({marks})",
                    (now, *chunk),
                )
            return ids

        result: list[str] = await self._write(op)
        return result

    async def retry_run(self, run_id: str, now: float) -> RunRecord:
        def op(conn: sqlite3.Connection) -> RunRecord:
            run = _fetch_run(conn, run_id)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if run.status not in (RunStatus.FAILED, RunStatus.TIMED_OUT):
                raise RunStateError(
                    f"run {run_id!r} is {run.status}; only failed or timed-out runs can be retried"
                )
            conn.execute("DELETE FROM steps WHERE run_id = ? AND status <> 'completed'", (run_id,))
            conn.execute(
                "UPDATE runs SET status = 'pending', error = NULL, output = NULL, deadline = NULL, "
                "completed_at = NULL, cancel_requested = 0, updated_at = ? WHERE id = ?",
                (now, run_id),
            )
            row = conn.execute(
                "SELECT concurrency_key, concurrency_limit FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            conn.execute(
                "INSERT INTO jobs (run_id, kind, priority, available_at, concurrency_key, "
                "concurrency_limit) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, f"{run.workflow}@{run.version}", run.priority, now, row[0], row[1]),
            )
            ev.restore_subscriptions(conn, run_id, now)
            fetched = _fetch_run(conn, run_id)
            assert fetched is not None
            return fetched

        result: RunRecord = await self._write(op)
        return result

    async def send_signal(self, run_id: str, name: str, payload: bytes, now: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if RunStatus(row[0]).terminal:
                raise RunStateError(f"run {run_id!r} is already {row[0]}; signal {name!r} refused")
            cur = conn.execute(
                "INSERT INTO signals (run_id, name, payload, created_at) VALUES (?, ?, ?, ?)",
                (run_id, name, payload, now),
            )
            _nudge(conn, [run_id], now)
            return int(cur.lastrowid or 0)

        result: int = await self._write(op)
        return result

    # --- jobs and leases ----------------------------------------------------------------------

    async def claim(
        self, owner: str, kinds: frozenset[str], limit: int, now: float, lease_seconds: float
    ) -> list[Claim]:
        if not kinds or limit <= 0:
            return []
        kind_list = sorted(kinds)

        def op(conn: sqlite3.Connection) -> list[Claim]:
            return _claim(conn, owner, kind_list, limit, now, now + lease_seconds)

        result: list[Claim] = await self._write(op)
        return result

    async def next_wake(self, kinds: frozenset[str]) -> float | None:
        if not kinds:
            return None
        kind_list = sorted(kinds)
        row = (
            self._read()
            .execute(
                f"SELECT min(available_at) FROM jobs WHERE owner IS NULL AND blocked = 0 "
                f"AND available_at IS NOT NULL AND kind IN ({_marks(kind_list)})",
                kind_list,
            )
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    async def heartbeat(self, owner: str, run_ids: list[str], until: float) -> HeartbeatResult:
        def op(conn: sqlite3.Connection) -> HeartbeatResult:
            # Only runs the worker still executes are extended: a lease it holds on a run it
            # gave up on (after a failed write) expires and the run is recovered elsewhere.
            for chunk in _chunks(run_ids):
                conn.execute(
                    f"UPDATE jobs SET lease_expires_at = ? WHERE owner = ? "
                    f"AND run_id IN ({_marks(chunk)})",
                    (until, owner, *chunk),
                )
            held: set[str] = set()
            cancel: set[str] = set()
            for run_id, cancel_requested in conn.execute(
                "SELECT j.run_id, r.cancel_requested FROM jobs j JOIN runs r "
                "ON r.id = j.run_id WHERE j.owner = ?",
                (owner,),
            ):
                held.add(run_id)
                if cancel_requested:
                    cancel.add(run_id)
            return HeartbeatResult(
                lost=frozenset(set(run_ids) - held), cancel_requested=frozenset(cancel)
            )

        result: HeartbeatResult = await self._write(op)
        return result

    async def reap_expired(self, now: float) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT run_id FROM jobs WHERE owner IS NOT NULL AND lease_expires_at < ?",
                    (now,),
                )
            ]
            _requeue(conn, ids, now, recovered=True)
            return ids

        result: list[str] = await self._write(op)
        return result

    async def release(self, owner: str, now: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            ids = [
                row[0] for row in conn.execute("SELECT run_id FROM jobs WHERE owner = ?", (owner,))
            ]
            _requeue(conn, ids, now, recovered=False)
            conn.execute("DELETE FROM singletons WHERE owner = ?", (owner,))
            return len(ids)

        result: int = await self._write(op)
        return result

    # --- coordination between processes ------------------------------------------------------

    def add_wake_listener(self, topic: WakeTopic, callback: Callable[[], None]) -> None:
        """Nothing to hear: SQLite cannot tell one process about another's commits."""

    async def hold_singleton(self, name: str, owner: str, now: float, ttl: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(SINGLETON_UPSERT, (name, owner, now + ttl, now)).fetchone()
            return row is not None

        result: bool = await self._write(op)
        return result

    # --- fenced writes -----------------------------------------------------------------------

    def record_step(self, fence: Fence, step: StepRecord) -> Awaitable[None]:
        def op(conn: sqlite3.Connection) -> None:
            _fenced_upsert_step(conn, fence, step)

        return self._write(op)  # type: ignore[no-any-return]

    def consume_signal(self, fence: Fence, signal_id: int, step: StepRecord) -> Awaitable[None]:
        def op(conn: sqlite3.Connection) -> None:
            _check_fence(conn, fence)
            conn.execute(
                "UPDATE signals SET consumed_seq = ? WHERE id = ? AND run_id = ?",
                (step.seq, signal_id, fence.run_id),
            )
            _upsert_step(conn, step)

        return self._write(op)  # type: ignore[no-any-return]

    def start_child(
        self, fence: Fence, step: StepRecord, child: NewRun, now: float
    ) -> Awaitable[None]:
        def op(conn: sqlite3.Connection) -> None:
            _check_fence(conn, fence)
            _upsert_step(conn, step)
            _insert_run(conn, child, now)

        return self._write(op)  # type: ignore[no-any-return]

    async def child_outcome(self, child_id: str) -> RunRecord | None:
        return _fetch_run(self._read(), child_id)

    def suspend(self, fence: Fence, wake_at: float | None, now: float) -> Awaitable[None]:
        def op(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "UPDATE jobs SET owner = NULL, lease_expires_at = NULL, nudged = 0, "
                "available_at = CASE WHEN nudged = 1 THEN ? ELSE ? END "
                "WHERE run_id = ? AND owner = ? AND token = ? RETURNING available_at",
                (now, wake_at, fence.run_id, fence.owner, fence.token),
            ).fetchone()
            if row is None:
                raise LeaseLostError(f"lease on run {fence.run_id!r} lost")
            # A run that may go on at once (nudged, drained) is pending, not waiting.
            ready = row[0] is not None and row[0] <= now
            conn.execute(
                "UPDATE runs SET status = ?, updated_at = ? WHERE id = ? AND status = 'running'",
                ("pending" if ready else "waiting", now, fence.run_id),
            )

        return self._write(op)  # type: ignore[no-any-return]

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

        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "DELETE FROM jobs WHERE run_id = ? AND owner = ? AND token = ?",
                (fence.run_id, fence.owner, fence.token),
            )
            if cur.rowcount != 1:
                raise LeaseLostError(f"lease on run {fence.run_id!r} lost: write rejected")
            _close_run(conn, fence.run_id, status, output, error_blob, now, sources)
            ev.drop_subscriptions(conn, fence.run_id)
            close_runs(conn, fence.run_id, now)

        return self._write(op)  # type: ignore[no-any-return]

    # --- events ------------------------------------------------------------------------------

    async def append_events(self, events: list[CloudEvent], now: float) -> list[bool]:
        batch = list(events)

        def op(conn: sqlite3.Connection) -> list[bool]:
            return ev.append(conn, batch, now)

        result: list[bool] = await self._write(op)
        return result

    async def append_event(self, event: CloudEvent, now: float) -> bool:
        return (await self.append_events([event], now))[0]

    async def get_event(self, source: str, event_id: str) -> StoredEvent | None:
        return ev.get_event(self._read(), source, event_id)

    async def list_events(self, query: EventQuery) -> list[StoredEvent]:
        return ev.list_events(self._read(), query)

    async def subscriptions_of(self, run_id: str) -> list[Subscription]:
        return ev.subscriptions_of(self._read(), run_id)

    def subscribe(
        self,
        fence: Fence,
        subscription_id: str,
        filters: list[dict[str, Any]],
        step: StepRecord,
        now: float,
    ) -> Awaitable[None]:
        def op(conn: sqlite3.Connection) -> None:
            ev.subscribe(conn, fence, subscription_id, filters, step, now)

        return self._write(op)  # type: ignore[no-any-return]

    def unsubscribe(self, fence: Fence, subscription_id: str, step: StepRecord) -> Awaitable[None]:
        def op(conn: sqlite3.Connection) -> None:
            ev.unsubscribe(conn, fence, subscription_id, step)

        return self._write(op)  # type: ignore[no-any-return]

    def emit_event(
        self, fence: Fence, event: CloudEvent, step: StepRecord, now: float
    ) -> Awaitable[bool]:
        def op(conn: sqlite3.Connection) -> bool:
            return ev.emit(conn, fence, event, step, now)

        return self._write(op)  # type: ignore[no-any-return]

    # --- documents ---------------------------------------------------------------------------

    async def save_document(self, doc: DocumentRecord) -> tuple[DocumentRecord, bool]:
        def op(conn: sqlite3.Connection) -> tuple[DocumentRecord, bool]:
            return docs.save(conn, doc)

        result: tuple[DocumentRecord, bool] = await self._write(op)
        return result

    async def get_document(
        self, namespace: str, name: str, version: str | None = None
    ) -> DocumentRecord | None:
        return docs.get(self._read(), namespace, name, version)

    async def list_documents(self, since: float | None = None) -> list[DocumentRecord]:
        return docs.list_all(self._read(), since)
