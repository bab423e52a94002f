"""Read-only counts about the store's own state, for metrics and readiness checks.

Written once for both dialects: each store supplies :meth:`StatsQueries._rows`, which runs one
read-only statement written with ``?`` placeholders and returns its rows. Every query here is
bounded by an index or by a small table (open runs by status, singletons, approval stages), so a
scrape or a probe costs one cheap round trip each, whatever the history holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from opsloom.codec import decode
from opsloom.model import RunStatus
from opsloom.model.observer import Observer
from opsloom.store.rows import QUARANTINED
from opsloom.store.tx import Transactions

#: Statuses of runs that have not ended.
OPEN_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING)

# One count per status, each a range of runs_status_idx: never a scan of finished runs.
_OPEN_COUNTS = " UNION ALL ".join(
    f"SELECT '{status}', count(*) FROM runs WHERE status = '{status}'" for status in OPEN_STATUSES
)
_SINGLETONS = "SELECT name, owner, expires_at FROM singletons ORDER BY name"
_APPROVAL_OUTCOMES = (
    "SELECT status, count(*) FROM approval_requests "
    "WHERE status <> 'pending' GROUP BY status ORDER BY status"
)
# A breach is a deadline that passed: each escalation, and each stage decided at its SLA.
_SLA_BREACHES = (
    "SELECT coalesce(sum(escalations), 0), "
    "coalesce(sum(CASE WHEN decided_by = 'sla' THEN 1 ELSE 0 END), 0) FROM approval_stages"
)


# Finished runs of a window, newest first: a range of runs_created_idx, cut at a limit.
_FINISHED_RUNS = (
    "SELECT workflow, version, status, created_at, started_at, completed_at, "
    "CASE WHEN status <> 'completed' THEN error END "
    "FROM runs WHERE created_at >= ? AND completed_at IS NOT NULL "
    "ORDER BY created_at DESC LIMIT ?"
)
# The steps of the window's newest runs (by primary key from each run), errors of failures only.
_STEP_ATTEMPTS = (
    "SELECT r.workflow, s.name, s.status, s.attempts, s.started_at, s.completed_at, "
    "CASE WHEN s.status = 'failed' THEN s.error END "
    "FROM runs r JOIN steps s ON s.run_id = r.id "
    "WHERE r.created_at >= ? AND s.kind = 'step' "
    "ORDER BY r.created_at DESC LIMIT ?"
)
# Open runs with a job (the jobs table holds only those) that show no sign of life since
# ``?``: held by a worker but neither claimed nor moved a step since then, or due and unclaimed
# since then. Runs with a deadline are left out: their timeout ends them. Bounded by ``?``.
_STALLED = (
    "SELECT r.id, r.workflow, r.version, r.status, j.owner, j.available_at, r.updated_at, "
    "(SELECT max(coalesce(s.completed_at, s.started_at)) FROM steps s WHERE s.run_id = r.id) "
    "FROM jobs j JOIN runs r ON r.id = j.run_id WHERE r.deadline IS NULL AND ("
    "(j.owner IS NOT NULL AND r.updated_at < ? AND NOT EXISTS (SELECT 1 FROM steps s "
    "WHERE s.run_id = r.id AND coalesce(s.completed_at, s.started_at) >= ?)) "
    "OR (j.owner IS NULL AND j.blocked = 0 AND j.available_at < ?)) "
    "ORDER BY r.updated_at LIMIT ?"
)
_QUARANTINED_COUNT = f"SELECT count(*) FROM jobs WHERE blocked = {QUARANTINED}"


@dataclass(frozen=True, slots=True)
class StalledRun:
    """An open run with no sign of life for a while (see :meth:`StatsQueries.stalled_runs`).

    ``held``: a worker holds it (it should be making progress); otherwise it has been due
    since ``due_at`` and nobody took it. ``active_at``: its last sign of life (claim, step
    start or end; for an unclaimed run, when it became due).
    """

    run_id: str
    workflow: str
    version: str
    status: str
    held: bool
    active_at: float


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """What analytics need of one finished run."""

    workflow: str
    version: str
    status: str
    created_at: float
    started_at: float | None
    completed_at: float
    error: Any = None


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What analytics need of one recorded step."""

    workflow: str
    name: str
    status: str
    attempts: int
    started_at: float | None
    completed_at: float | None
    error: Any = None


@dataclass(frozen=True, slots=True)
class SingletonHolder:
    """Who holds a process-wide singleton, and until when."""

    name: str
    owner: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class ApprovalCounts:
    """Approval requests decided so far, by outcome, and SLA deadlines that passed."""

    decided: dict[str, int]
    sla_breaches: int


class _Writer(Protocol):
    observer: Observer

    @property
    def alive(self) -> bool: ...


class StatsQueries(Transactions):
    """Counts for metrics and readiness, and the writer's observer; mixed into both stores."""

    _writer: _Writer | None
    observer: Observer

    def observe(self, observer: Observer) -> None:
        """Tell ``observer`` about committed write batches and trigger decisions."""
        self.observer = observer
        if self._writer is not None:
            self._writer.observer = observer

    @property
    def writer_alive(self) -> bool:
        """The writer is open and serving."""
        return self._writer is not None and self._writer.alive

    async def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only statement (``?`` placeholders) and return all its rows."""
        rows = await self.read(lambda tx: tx.all(query, params))
        return [tuple(row) for row in rows]

    async def open_run_counts(self) -> dict[RunStatus, int]:
        """How many runs are pending, running and waiting right now."""
        rows = await self._rows(_OPEN_COUNTS)
        return {RunStatus(status): int(count) for status, count in rows}

    async def singleton_holders(self) -> list[SingletonHolder]:
        """Every singleton that was ever taken, with its holder (expired ones included)."""
        rows = await self._rows(_SINGLETONS)
        return [SingletonHolder(str(name), str(owner), float(at)) for name, owner, at in rows]

    async def approval_counts(self) -> ApprovalCounts:
        """Decided approval requests by outcome, and passed SLA deadlines."""
        decided = {
            str(status): int(count) for status, count in await self._rows(_APPROVAL_OUTCOMES)
        }
        escalations, at_sla = (await self._rows(_SLA_BREACHES))[0]
        return ApprovalCounts(decided, int(escalations) + int(at_sla))

    async def quarantined_count(self) -> int:
        """Open runs quarantined for crashing their workers."""
        return int((await self._rows(_QUARANTINED_COUNT))[0][0])

    async def stalled_runs(self, quiet_since: float, limit: int = 500) -> list[StalledRun]:
        """Open runs without a deadline and with no sign of life since ``quiet_since``: held by
        a worker with no claim nor step since then, or due since then and not claimed."""
        rows = await self._rows(_STALLED, (quiet_since, quiet_since, quiet_since, limit))
        out = []
        for run_id, workflow, version, status, owner, due, updated, stepped in rows:
            held = owner is not None
            active = max(float(updated), float(stepped or 0.0)) if held else float(due)
            out.append(StalledRun(run_id, workflow, version, str(status), held, active))
        return out

    async def finished_runs(self, since: float, limit: int) -> list[FinishedRun]:
        """Runs created since ``since`` that have ended, newest first, at most ``limit``."""
        rows = await self._rows(_FINISHED_RUNS, (since, limit))
        return [
            FinishedRun(w, v, str(s), float(c), st, float(done), decode(e))
            for w, v, s, c, st, done, e in rows
        ]

    async def step_outcomes(self, since: float, limit: int) -> list[StepOutcome]:
        """Steps of runs created since ``since``, newest runs first, at most ``limit``."""
        rows = await self._rows(_STEP_ATTEMPTS, (since, limit))
        return [
            StepOutcome(w, n, str(s), int(a), st, done, decode(e))
            for w, n, s, a, st, done, e in rows
        ]
