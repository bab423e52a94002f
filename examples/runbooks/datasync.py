"""Multi-system data sync: keep a PostgreSQL table and a team's Linear issues consistent.

Install it with the settings of your team (which table, which columns map to which issue
fields, the Linear team, the conflict policy)::

    from examples.runbooks.datasync import SyncSettings, install
    install(app, SyncSettings(table="support_tickets", team_id="…", policy="merge"))

Each pass (a run of ``datasync``, started by the schedule ``install`` registers, or by hand)
is incremental on both sides: rows whose ``updated_at`` is after the local cursor, issues
Linear changed after the remote cursor (paged by Linear's cursor). Both cursors are read again
with an ``overlap`` so a transaction that committed late is not missed; reading a change twice
does nothing, because every decision is a three-way comparison with the values both sides
last agreed on (the *base*, kept per record in ``opsloom_sync_records``):

* only one side changed since the base: the change is copied to the other side;
* both changed to the same values: the base moves, nothing is written;
* both changed differently: a **conflict**, settled by ``policy``: ``last-writer-wins`` (the
  later change wins whole), ``merge`` (field by field: each side's changed fields are kept;
  a field both changed goes to ``then``), or ``ask`` (a person decides in an approval, in a
  run of ``datasync-conflict``; the record is held until then).

Effects are exactly once. A row written in PostgreSQL is written by one statement that also
records its idempotency key (``opsloom_sync_applied``) and the new base, and that only
changes the row if it still holds the values the decision was made on (else the record waits
for the next pass, now as a change on both sides). An issue is created with an id derived from
the record's idempotency key, so a create that ran but was not recorded (a crash) is found
again rather than made twice; an update sets values, so running it again changes nothing.

A record that fails (Linear or PostgreSQL refuses it) is kept in ``opsloom_sync_failures``
with the error; the pass goes on. ``datasync-replay`` tries those records again from the
current values of both sides; ``datasync-reconcile`` compares both sides in full and reports
what is in sync, pending, unlinked, held or failed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from opsloom import App, Context
from opsloom.approvals.approval import approval
from opsloom.approvals.spec import ApprovalRequest, Stage
from opsloom.connectors.builtin import linear, sql
from opsloom.errors import StepFailedError
from opsloom.model.schedule import Schedule

WORKFLOW = "datasync"
REPLAY = "datasync-replay"
RECONCILE = "datasync-reconcile"
CONFLICT = "datasync-conflict"
Policy = Literal["last-writer-wins", "merge", "ask"]
#: Issue fields a column can map to.
ISSUE_FIELDS = ("title", "description", "priority")
_EPOCH = "1970-01-01T00:00:00Z"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS opsloom_sync_records (
  sync text NOT NULL, local_id text NOT NULL, remote_id text NOT NULL, base jsonb NOT NULL,
  held_by text, synced_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sync, local_id), UNIQUE (sync, remote_id));
CREATE TABLE IF NOT EXISTS opsloom_sync_cursors (
  sync text PRIMARY KEY, local_after timestamptz, remote_after text);
CREATE TABLE IF NOT EXISTS opsloom_sync_applied (
  key text PRIMARY KEY, local_id text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS opsloom_sync_failures (
  sync text NOT NULL, side text NOT NULL, record text NOT NULL, error text NOT NULL,
  attempts int NOT NULL DEFAULT 1, failed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sync, side, record));
"""


class SyncSettingsError(ValueError):
    """A setting of the sync is not usable; the message names it."""


@dataclass(frozen=True)
class SyncSettings:
    """What a team changes: the table, the column to field map, the team, the policy."""

    table: str
    team_id: str
    #: Column of the table -> issue field (``title``, ``description``, ``priority``).
    fields: dict[str, str] = field(
        default_factory=lambda: {"title": "title", "body": "description", "priority": "priority"}
    )
    #: The name of this sync (several can share a database).
    name: str = "tickets"
    database: str = "database"  # an ``sql`` connection
    linear: str = "linear"
    policy: Policy = "merge"
    #: Where a field changed on both sides goes under ``merge``.
    then: Literal["last-writer-wins", "ask"] = "last-writer-wins"
    approvers: tuple[str, ...] = ("data-owners",)
    requester: str = "datasync"
    #: Seconds read again before each cursor (late commits, clock skew).
    overlap: float = 300.0
    page: int = 100
    #: Seconds between passes (``None``: no schedule, start passes yourself).
    every: float | None = 300.0

    def __post_init__(self) -> None:
        for what, value in (("table", self.table), *((f"fields[{c!r}]", c) for c in self.fields)):
            if not _NAME.match(value):
                raise SyncSettingsError(f"{what}: {value!r} is not a plain lower-case SQL name")
        for column, target in self.fields.items():
            if target not in ISSUE_FIELDS:
                raise SyncSettingsError(
                    f"fields[{column!r}]: {target!r} is not one of {', '.join(ISSUE_FIELDS)}"
                )
        if "title" not in self.fields.values():
            raise SyncSettingsError("fields: a column must map to the issue's title")
        if self.policy not in ("last-writer-wins", "merge", "ask"):
            raise SyncSettingsError(
                f"policy: {self.policy!r} is not last-writer-wins, merge or ask"
            )


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Record:
    """One record as the pass sees it: the base and each side's values (None: unknown)."""

    local_id: str | None
    remote_id: str | None
    base: dict[str, Any] | None
    local: dict[str, Any] | None = None
    remote: dict[str, Any] | None = None
    local_at: str | None = None
    remote_at: str | None = None
    identifier: str | None = None
    held_by: str | None = None

    @property
    def name(self) -> str:
        return f"local:{self.local_id}" if self.local_id else f"remote:{self.remote_id}"


class DataSync:
    """The runbook bound to one sync's settings (the workflows are its methods)."""

    def __init__(self, app: App, settings: SyncSettings) -> None:
        self.app = app
        self.s = settings
        self.columns = list(settings.fields)

    # --- the two sides -----------------------------------------------------------------------

    async def _sql(
        self, ctx: Context, text: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        found = await ctx.step(
            sql.query, connection=self.s.database, sql=text, params=params, max_rows=10_000
        )
        rows: list[dict[str, Any]] = found["rows"]
        return rows

    def _local_values(self, row: dict[str, Any]) -> dict[str, Any]:
        return {self.s.fields[c]: _plain(self.s.fields[c], row[c]) for c in self.columns}

    def _remote_values(self, issue: dict[str, Any]) -> dict[str, Any]:
        return {f: _plain(f, issue[f]) for f in self.s.fields.values()}

    def _row(self, values: dict[str, Any]) -> dict[str, Any]:
        return {c: values[self.s.fields[c]] for c in self.columns}

    async def _local_rows(
        self, ctx: Context, since: str | None, ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Rows changed after ``since`` (minus the overlap), or the rows ``ids``."""
        cols = ", ".join(f'"{c}"' for c in self.columns)
        table = f'"{self.s.table}"'
        if ids is not None:
            return await self._sql(
                ctx,
                f"SELECT id::text AS id, {cols}, updated_at FROM {table} "
                "WHERE id::text = ANY(%(ids)s)",
                {"ids": ids},
            )
        rows: list[dict[str, Any]] = []
        after: tuple[str, str] | None = None
        while True:
            page = await self._sql(
                ctx,
                f"SELECT id::text AS id, {cols}, updated_at FROM {table} "
                "WHERE (%(since)s::timestamptz IS NULL "
                "OR updated_at > %(since)s::timestamptz - make_interval(secs => %(overlap)s)) "
                "AND (%(at)s::timestamptz IS NULL OR (updated_at, id::text) > "
                "(%(at)s::timestamptz, %(id)s)) ORDER BY updated_at, id::text LIMIT %(page)s",
                {
                    "since": since,
                    "overlap": self.s.overlap,
                    "at": after and after[0],
                    "id": after and after[1],
                    "page": self.s.page,
                },
            )
            rows += page
            if len(page) < self.s.page:
                return rows
            after = (page[-1]["updated_at"], page[-1]["id"])

    async def _remote_issues(
        self, ctx: Context, since: str | None, ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Issues Linear changed after ``since`` (minus the overlap), or the issues ``ids``."""
        after_moment = None
        if since is not None:
            moment = _moment(since) - timedelta(seconds=self.s.overlap)
            after_moment = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        issues: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await ctx.step(
                linear.list_issues,
                connection=self.s.linear,
                team_id=self.s.team_id,
                updated_after=after_moment,
                ids=ids,
                after=cursor,
                first=min(self.s.page, 250),
            )
            issues += page["issues"]
            if not page["has_next_page"]:
                return issues
            cursor = page["end_cursor"]

    # --- one pass ----------------------------------------------------------------------------

    async def run(self, ctx: Context, input: Any = None) -> dict[str, Any]:
        """One incremental pass; returns what it did, record by record."""
        s = self.s
        await self._sql(ctx, SCHEMA)
        cursors = await self._sql(
            ctx,
            "SELECT local_after, remote_after FROM opsloom_sync_cursors WHERE sync = %(sync)s",
            {"sync": s.name},
        )
        local_after = cursors[0]["local_after"] if cursors else None
        remote_after = cursors[0]["remote_after"] if cursors else None
        rows = await self._local_rows(ctx, local_after)
        issues = await self._remote_issues(ctx, remote_after)
        records = await self._records(ctx, rows, issues)
        report = await self._settle(ctx, records)
        new_local = _latest([local_after, *(r["updated_at"] for r in rows)])
        new_remote = _latest([remote_after, *(i["updated_at"] for i in issues)])
        await self._sql(
            ctx,
            "INSERT INTO opsloom_sync_cursors (sync, local_after, remote_after) "
            "VALUES (%(sync)s, %(local)s, %(remote)s) ON CONFLICT (sync) DO UPDATE "
            "SET local_after = EXCLUDED.local_after, remote_after = EXCLUDED.remote_after",
            {"sync": s.name, "local": new_local, "remote": new_remote},
        )
        report["read"] = {"rows": len(rows), "issues": len(issues)}
        return report

    async def _records(
        self, ctx: Context, rows: list[dict[str, Any]], issues: list[dict[str, Any]]
    ) -> list[Record]:
        """Pair the changed rows and issues through the sync state."""
        state = await self._sql(
            ctx,
            "SELECT local_id, remote_id, base, held_by FROM opsloom_sync_records "
            "WHERE sync = %(sync)s "
            "AND (local_id = ANY(%(locals)s) OR remote_id = ANY(%(remotes)s))",
            {
                "sync": self.s.name,
                "locals": [r["id"] for r in rows],
                "remotes": [i["id"] for i in issues],
            },
        )
        by_local = {st["local_id"]: st for st in state}
        by_remote = {st["remote_id"]: st for st in state}
        records: dict[str, Record] = {}

        def record_of(
            st: dict[str, Any] | None, local_id: str | None, remote_id: str | None
        ) -> Record:
            key = (
                f"local:{st['local_id']}"
                if st
                else (f"local:{local_id}" if local_id else f"remote:{remote_id}")
            )
            if key not in records:
                records[key] = Record(
                    local_id=st["local_id"] if st else local_id,
                    remote_id=st["remote_id"] if st else remote_id,
                    base=st["base"] if st else None,
                    held_by=st["held_by"] if st else None,
                )
            return records[key]

        for row in rows:
            rec = record_of(by_local.get(row["id"]), row["id"], None)
            rec.local, rec.local_at = self._local_values(row), row["updated_at"]
        for issue in issues:
            rec = record_of(by_remote.get(issue["id"]), None, issue["id"])
            rec.remote, rec.remote_at = self._remote_values(issue), issue["updated_at"]
            rec.identifier = issue["identifier"]
        return list(records.values())

    async def _settle(self, ctx: Context, records: list[Record]) -> dict[str, Any]:
        """Decide and apply each record; failures are kept and the pass goes on."""
        report: dict[str, Any] = {
            "to_remote": [],
            "to_local": [],
            "created_remote": [],
            "created_local": [],
            "merged": [],
            "conflicts": [],
            "held": [],
            "deferred": [],
            "failed": [],
        }
        for rec in records:
            if rec.held_by:
                report["held"].append(rec.name)
                continue
            try:
                outcome = await self._apply(ctx, rec)
            except StepFailedError as exc:
                error = f"{exc.error_type}: {exc.message}"
                await self._failed(ctx, rec, error)
                report["failed"].append({"record": rec.name, "error": error})
                continue
            if outcome:
                report.setdefault(outcome, []).append(rec.name)
            if rec.local_id or rec.remote_id:
                await self._cleared(ctx, rec)
        return report

    async def _apply(self, ctx: Context, rec: Record) -> str | None:
        base = rec.base
        if base is None:
            if rec.remote_id is None and rec.local is not None:
                await self._create_remote(ctx, rec)
                return "created_remote"
            if rec.local_id is None and rec.remote is not None:
                return await self._create_local(ctx, rec)
            return None
        local = rec.local if rec.local is not None else base
        remote = rec.remote if rec.remote is not None else base
        if local == remote:
            if local != base:
                await self._save(ctx, rec, local)  # both moved the same way
            return None
        if remote == base:
            await self._to_remote(ctx, rec, local)
            return "to_remote"
        if local == base:
            return await self._to_local(ctx, rec, remote, expected=local)
        return await self._conflict(ctx, rec, base, local, remote)

    async def _conflict(
        self,
        ctx: Context,
        rec: Record,
        base: dict[str, Any],
        local: dict[str, Any],
        remote: dict[str, Any],
    ) -> str | None:
        s = self.s
        policy: str = s.policy
        merged = dict(base)
        clash: list[str] = []
        if policy == "merge":
            for name in base:
                mine, theirs = local.get(name), remote.get(name)
                if mine == theirs or theirs == base[name]:
                    merged[name] = mine
                elif mine == base[name]:
                    merged[name] = theirs
                else:
                    clash.append(name)
            if not clash:
                await self._both(ctx, rec, merged, local, remote)
                return "merged"
            policy = s.then
        if policy == "last-writer-wins":
            local_later = _moment(rec.local_at or _EPOCH) >= _moment(rec.remote_at or _EPOCH)
            later = local if local_later else remote
            # Whole records under last-writer-wins; under merge only the fields both changed.
            winner = later if s.policy != "merge" else {**merged, **{k: later[k] for k in clash}}
            await self._both(ctx, rec, winner, local, remote)
            return "conflicts"
        run_id = await ctx.step(
            self.start_conflict, rec.local_id, rec.remote_id, base, local, remote
        )
        await self._sql(
            ctx,
            "UPDATE opsloom_sync_records SET held_by = %(run)s "
            "WHERE sync = %(sync)s AND local_id = %(local)s",
            {"run": run_id, "sync": s.name, "local": rec.local_id},
        )
        return "held"

    async def _both(
        self,
        ctx: Context,
        rec: Record,
        values: dict[str, Any],
        local: dict[str, Any],
        remote: dict[str, Any],
    ) -> None:
        """Make both sides hold ``values`` (each written only if it differs)."""
        if remote != values:
            await self._to_remote(ctx, rec, values, save=local == values)
        if local != values:
            await self._to_local(ctx, rec, values, expected=local)

    # --- writes ------------------------------------------------------------------------------

    async def _create_remote(self, ctx: Context, rec: Record) -> None:
        assert rec.local is not None
        made = await ctx.step(
            self.create_issue, rec.local_id, rec.local
        )  # the issue id derives from the record: created once, whatever happens
        rec.remote_id = made["id"]
        await self._save(ctx, rec, rec.local)

    async def create_issue(self, local_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Create the record's issue; its id derives from the sync and the row."""
        return await self.app.connections.call(
            linear.create_issue,
            self.s.linear,
            {"team_id": self.s.team_id, **values},
            idempotency_key=f"{self.s.name}:create:{local_id}",
        )

    async def _to_remote(
        self, ctx: Context, rec: Record, values: dict[str, Any], *, save: bool = True
    ) -> None:
        await ctx.step(
            linear.update_issue, connection=self.s.linear, issue_id=rec.remote_id, **values
        )
        if save:
            await self._save(ctx, rec, values)

    def _write(self, key: str, change: str) -> str:
        """One statement: skip if ``key`` was applied, else ``change`` (a CTE named
        ``changed`` returning ``id``), record the key and the record's new base."""
        return (
            "WITH done AS (SELECT local_id FROM opsloom_sync_applied WHERE key = %(key)s), "
            f"changed AS ({change}), "
            "ledger AS (INSERT INTO opsloom_sync_applied (key, local_id) "
            "SELECT %(key)s, id FROM changed), "
            "state AS (INSERT INTO opsloom_sync_records (sync, local_id, remote_id, base) "
            "SELECT %(sync)s, id, %(remote)s, %(base)s::jsonb FROM changed "
            "ON CONFLICT (sync, local_id) DO UPDATE SET remote_id = EXCLUDED.remote_id, "
            "base = EXCLUDED.base, held_by = NULL, synced_at = now()) "
            "SELECT id, 'applied' AS outcome FROM changed "
            "UNION ALL SELECT local_id, 'already' FROM done"
        )

    async def _to_local(
        self, ctx: Context, rec: Record, values: dict[str, Any], *, expected: dict[str, Any]
    ) -> str | None:
        """Write ``values`` to the row if it still holds ``expected``; exactly once."""
        table = f'"{self.s.table}"'
        cols = ", ".join(f'"{c}"' for c in self.columns)
        mine = ", ".join(f't."{c}"' for c in self.columns)
        wanted = ", ".join(f'e."{c}"' for c in self.columns)
        change = (
            f"UPDATE {table} AS t SET ({cols}, updated_at) = "
            f"(SELECT {cols}, now() FROM jsonb_populate_record(NULL::{table}, %(new)s::jsonb)) "
            f"FROM jsonb_populate_record(NULL::{table}, %(expected)s::jsonb) AS e "
            f"WHERE t.id::text = %(id)s AND NOT EXISTS (SELECT 1 FROM done) "
            f"AND ({mine}) IS NOT DISTINCT FROM ({wanted}) RETURNING t.id::text AS id"
        )
        key = f"{ctx.run_id}:{rec.name}"
        done = await self._sql(
            ctx,
            self._write(key, change),
            {
                "key": key,
                "id": rec.local_id,
                "new": json.dumps(self._row(values)),
                "expected": json.dumps(self._row(expected)),
                "sync": self.s.name,
                "remote": rec.remote_id,
                "base": json.dumps(values),
            },
        )
        if not done:
            return "deferred"  # the row changed meanwhile: the next pass sees both changes
        return "to_local"

    async def _create_local(self, ctx: Context, rec: Record) -> str:
        assert rec.remote is not None
        table = f'"{self.s.table}"'
        cols = ", ".join(f'"{c}"' for c in self.columns)
        change = (
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM "
            f"jsonb_populate_record(NULL::{table}, %(new)s::jsonb) "
            "WHERE NOT EXISTS (SELECT 1 FROM done) RETURNING id::text AS id"
        )
        key = f"{self.s.name}:insert:{rec.remote_id}"
        [row] = await self._sql(
            ctx,
            self._write(key, change),
            {
                "key": key,
                "new": json.dumps(self._row(rec.remote)),
                "sync": self.s.name,
                "remote": rec.remote_id,
                "base": json.dumps(rec.remote),
            },
        )
        rec.local_id = row["id"]
        return "created_local"

    async def _save(self, ctx: Context, rec: Record, values: dict[str, Any]) -> None:
        await self._sql(
            ctx,
            "INSERT INTO opsloom_sync_records (sync, local_id, remote_id, base) "
            "VALUES (%(sync)s, %(local)s, %(remote)s, %(base)s::jsonb) "
            "ON CONFLICT (sync, local_id) DO UPDATE SET remote_id = EXCLUDED.remote_id, "
            "base = EXCLUDED.base, held_by = NULL, synced_at = now()",
            {
                "sync": self.s.name,
                "local": rec.local_id,
                "remote": rec.remote_id,
                "base": json.dumps(values),
            },
        )

    async def _failed(self, ctx: Context, rec: Record, error: str) -> None:
        side, record = rec.name.split(":", 1)
        await self._sql(
            ctx,
            "INSERT INTO opsloom_sync_failures (sync, side, record, error) "
            "VALUES (%(sync)s, %(side)s, %(record)s, %(error)s) ON CONFLICT (sync, side, record) "
            "DO UPDATE SET error = EXCLUDED.error, attempts = opsloom_sync_failures.attempts + 1, "
            "failed_at = now()",
            {"sync": self.s.name, "side": side, "record": record, "error": error[:2000]},
        )

    async def _cleared(self, ctx: Context, rec: Record) -> None:
        await self._sql(
            ctx,
            "DELETE FROM opsloom_sync_failures WHERE sync = %(sync)s AND "
            "((side = 'local' AND record = %(local)s) "
            "OR (side = 'remote' AND record = %(remote)s))",
            {"sync": self.s.name, "local": rec.local_id, "remote": rec.remote_id},
        )

    # --- replay, reconcile, conflicts ----------------------------------------------------------

    async def replay(self, ctx: Context, input: Any = None) -> dict[str, Any]:
        """Try the failed records again, from the current values of both sides."""
        await self._sql(ctx, SCHEMA)
        failures = await self._sql(
            ctx,
            "SELECT side, record FROM opsloom_sync_failures WHERE sync = %(sync)s "
            "ORDER BY failed_at",
            {"sync": self.s.name},
        )
        local_ids = [f["record"] for f in failures if f["side"] == "local"]
        remote_ids = [f["record"] for f in failures if f["side"] == "remote"]
        linked = await self._sql(
            ctx,
            "SELECT local_id, remote_id FROM opsloom_sync_records WHERE sync = %(sync)s "
            "AND (local_id = ANY(%(locals)s) OR remote_id = ANY(%(remotes)s))",
            {"sync": self.s.name, "locals": local_ids, "remotes": remote_ids},
        )
        local_ids = sorted({*local_ids, *(r["local_id"] for r in linked)})
        remote_ids = sorted({*remote_ids, *(r["remote_id"] for r in linked)})
        rows = await self._local_rows(ctx, None, local_ids) if local_ids else []
        issues = await self._remote_issues(ctx, None, remote_ids) if remote_ids else []
        report = await self._settle(ctx, await self._records(ctx, rows, issues))
        report["replayed"] = len(failures)
        return report

    async def reconcile(self, ctx: Context, input: Any = None) -> dict[str, Any]:
        """Compare both sides in full with the sync state; nothing is written."""
        await self._sql(ctx, SCHEMA)
        rows = {r["id"]: self._local_values(r) for r in await self._local_rows(ctx, None)}
        issues = {i["id"]: i for i in await self._remote_issues(ctx, None)}
        state = await self._sql(
            ctx,
            "SELECT local_id, remote_id, base, held_by FROM opsloom_sync_records "
            "WHERE sync = %(sync)s",
            {"sync": self.s.name},
        )
        failures = await self._sql(
            ctx,
            "SELECT side, record, error, attempts FROM opsloom_sync_failures WHERE sync = %(sync)s",
            {"sync": self.s.name},
        )
        report: dict[str, list[Any]] = {
            "in_sync": [],
            "pending": [],
            "unlinked_local": [],
            "unlinked_remote": [],
            "held": [],
            "missing": [],
        }
        linked_remote = set()
        for st in state:
            linked_remote.add(st["remote_id"])
            local = rows.pop(st["local_id"], None)
            issue = issues.get(st["remote_id"])
            name = f"local:{st['local_id']}"
            if local is None or issue is None:
                report["missing"].append(name)
            elif st["held_by"]:
                report["held"].append({"record": name, "run": st["held_by"]})
            elif local == self._remote_values(issue) == st["base"]:
                report["in_sync"].append(name)
            else:
                report["pending"].append(name)
        report["unlinked_local"] = [f"local:{i}" for i in sorted(rows)]
        report["unlinked_remote"] = [
            f"remote:{i['identifier']}" for k, i in issues.items() if k not in linked_remote
        ]
        counts = {k: len(v) for k, v in report.items()}
        counts["failed"] = len(failures)
        return {"counts": counts, **report, "failed": failures}

    async def start_conflict(
        self,
        local_id: str,
        remote_id: str,
        base: dict[str, Any],
        local: dict[str, Any],
        remote: dict[str, Any],
    ) -> str:
        """Start the run that asks a person (one per record and conflicting values)."""
        subject = {"local_id": local_id, "remote_id": remote_id, "base": base}
        subject |= {"local": local, "remote": remote}
        run_id = f"datasync-conflict-{self.s.name}-{local_id}-{_digest([local, remote])}"
        await self.app.start(CONFLICT, subject, run_id=run_id)
        return run_id

    async def settle_conflict(self, ctx: Context, subject: dict[str, Any]) -> dict[str, Any]:
        """Ask the approvers which side wins, then make both sides hold it."""
        s = self.s
        changed = sorted(k for k in subject["base"] if subject["local"][k] != subject["remote"][k])
        decided = await approval(
            ctx,
            ApprovalRequest(
                title=(
                    f"Sync conflict on {s.table} {subject['local_id']} ({', '.join(changed)}): "
                    "approve to keep PostgreSQL's values, deny to keep Linear's"
                ),
                requester=s.requester,
                subject=subject,
                risk="low",
                stages=(Stage("data-owner", groups=s.approvers),),
            ),
        )
        winner = subject["local"] if decided.approved else subject["remote"]
        rec = Record(subject["local_id"], subject["remote_id"], subject["base"])
        await self._both(ctx, rec, winner, subject["local"], subject["remote"])
        outcome = (
            "deferred"
            if not await self._sql(
                ctx,
                "SELECT 1 AS ok FROM opsloom_sync_records WHERE sync = %(sync)s "
                "AND local_id = %(local)s AND base = %(base)s::jsonb",
                {"sync": s.name, "local": rec.local_id, "base": json.dumps(winner)},
            )
            else "settled"
        )
        if outcome == "deferred":
            # The row changed again while the person decided: the next pass looks again.
            await self._sql(
                ctx,
                "UPDATE opsloom_sync_records SET held_by = NULL "
                "WHERE sync = %(sync)s AND local_id = %(local)s",
                {"sync": s.name, "local": rec.local_id},
            )
        kept = "postgresql" if decided.approved else "linear"
        return {"record": rec.name, "kept": kept, "by": decided.decided_by, "outcome": outcome}


def _latest(moments: list[str | None]) -> str | None:
    known = [m for m in moments if m]
    return max(known, key=_moment) if known else None


def _plain(name: str, value: Any) -> Any:
    """A field's value in the form both sides compare: Linear's priority is a float, and 0
    when the issue has none (an empty column); an empty description is none."""
    if name == "priority":
        return int(value or 0)
    if name == "description":
        return value or None
    return value


def install(app: App, settings: SyncSettings) -> DataSync:
    """Register the sync, its replay, reconciliation and conflict workflows on ``app``."""
    sync = DataSync(app, settings)
    one = f"datasync:{settings.name}"  # one pass (or replay) of a sync at a time
    every = None if settings.every is None else Schedule(after=settings.every)
    app.workflow(name=WORKFLOW, concurrency=1, concurrency_key=lambda _: one, schedule=every)(
        sync.run
    )
    for name, fn in ((REPLAY, sync.replay), (RECONCILE, sync.reconcile)):
        app.workflow(name=name, concurrency=1, concurrency_key=lambda _: one)(fn)
    app.workflow(name=CONFLICT)(sync.settle_conflict)
    return sync
