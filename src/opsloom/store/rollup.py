"""Rollups: finished runs and their steps added up per hour, as the runs finish.

Closing a run (:func:`opsloom.store.job.finish`) adds, in the same transaction, one count to
its hour's row of ``run_rollups`` for its duration and one for its queue wait, its final steps
to ``step_rollups``, and its failures (the run's and its steps', by error type and normalised
message) to ``failure_rollups``. Analytics then read a few rows per workflow and hour however
long the history is, and those rows outlive the runs that retention prunes.

Durations are counted in :data:`BOUNDS` buckets (1 ms, then each 10 % wider): a percentile
read from the counts (:func:`bucket_percentile`) is within 5 % of the exact one. The bounds are
also a table (``duration_buckets``, made by the migration with the same arithmetic) so that a
statement can place a value without Python: ``(SELECT count(*) FROM duration_buckets WHERE
upper < value)`` is :func:`bisect.bisect_left` on :data:`BOUNDS`.

Rows carry a ``shard`` (from the worker that finished the run) so that processes finishing
runs of one workflow at once update different rows instead of queueing for one row lock.
Readers add the shards up.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsloom.codec import decode
from opsloom.store.tx import Transactions, Tx

#: Upper bounds (seconds) of the duration buckets; bucket ``i`` holds ``BOUNDS[i-1] < d <=
#: BOUNDS[i]``, bucket ``len(BOUNDS)`` everything longer. Built as the migration builds them.
BOUNDS: tuple[float, ...]


def _bounds() -> tuple[float, ...]:
    out = [0.001]
    while len(out) < 240:
        out.append(out[-1] * 1.1)
    return tuple(out)


BOUNDS = _bounds()
#: Rollup rows are per hour of the runs' completion.
HOUR = 3600
SHARDS = 8

_NOISE = (
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<value>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b", re.I), "<id>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)


def normalise(message: str) -> str:
    """A message's first line with its varying parts (numbers, ids, quoted values) replaced.

    So that ``timeout after 31s`` and ``timeout after 30s`` count as one reason. Applying it
    twice changes nothing.
    """
    text = message.strip().splitlines()[0] if message.strip() else ""
    for pattern, placeholder in _NOISE:
        text = pattern.sub(placeholder, text)
    return text[:200]


def reason_of(error: Any) -> tuple[str, str]:
    """``(error type, normalised message)`` of a stored error."""
    if not isinstance(error, dict):
        return ("Error", "")
    return (str(error.get("type", "Error"))[:200], normalise(str(error.get("message", ""))))


def shard_of(owner: str) -> int:
    """The rollup shard of a worker (stable across processes, unlike ``hash``)."""
    return zlib.crc32(owner.encode()) % SHARDS


# --- writing, inside the transaction that finishes a run -------------------------------------

_SECONDS = (
    "CASE WHEN k.measure = 'duration' THEN "
    "CASE WHEN r.completed_at > coalesce(r.started_at, r.created_at) "
    "THEN r.completed_at - coalesce(r.started_at, r.created_at) ELSE 0.0 END "
    "ELSE CASE WHEN r.started_at > r.created_at THEN r.started_at - r.created_at ELSE 0.0 END END"
)
_STEP_SECONDS = (
    "CASE WHEN s.started_at IS NULL OR s.completed_at IS NULL THEN NULL "
    "WHEN s.completed_at > s.started_at THEN s.completed_at - s.started_at ELSE 0.0 END"
)
_BUCKET = "(SELECT count(*) FROM duration_buckets WHERE upper < {value})"

#: Adds one finished run (``{run}``: a relation with its columns) to ``run_rollups``;
#: parameters: hour, shard, then those of ``{run}``.
ROLL_RUN = (
    "INSERT INTO run_rollups (hour, workflow, version, status, measure, bucket, shard, runs, "
    "seconds) SELECT ?, workflow, version, status, measure, "
    + _BUCKET.format(value="m.seconds")
    + ", ?, 1, seconds FROM (SELECT r.workflow, r.version, r.status, k.measure, "
    f"{_SECONDS} AS seconds FROM {{run}} AS r "
    "CROSS JOIN (SELECT 'duration' AS measure UNION ALL SELECT 'wait') AS k "
    "WHERE k.measure = 'duration' OR r.started_at IS NOT NULL) AS m WHERE true "
    "ON CONFLICT (hour, workflow, version, status, measure, bucket, shard) DO UPDATE SET "
    "runs = run_rollups.runs + excluded.runs, seconds = run_rollups.seconds + excluded.seconds"
)
#: Adds the final steps of one finished run to ``step_rollups``; parameters as ``ROLL_RUN``.
ROLL_STEPS = (
    "INSERT INTO step_rollups (hour, workflow, step, status, bucket, shard, steps, retried, "
    "attempts, seconds) SELECT ?, workflow, name, status, bucket, ?, count(*), "
    "sum(CASE WHEN attempts > 1 THEN 1 ELSE 0 END), sum(attempts), coalesce(sum(seconds), 0.0) "
    "FROM (SELECT r.workflow, s.name, s.status, s.attempts, "
    f"{_STEP_SECONDS} AS seconds, CASE WHEN s.started_at IS NULL OR s.completed_at IS NULL "
    f"THEN -1 ELSE {_BUCKET.format(value=_STEP_SECONDS)} END AS bucket "
    "FROM {run} AS r JOIN steps s ON s.run_id = r.id "
    "WHERE s.kind = 'step' AND s.status IN ('completed', 'failed')) AS f "
    "GROUP BY workflow, name, status, bucket "
    "ON CONFLICT (hour, workflow, step, status, bucket, shard) DO UPDATE SET "
    "steps = step_rollups.steps + excluded.steps, "
    "retried = step_rollups.retried + excluded.retried, "
    "attempts = step_rollups.attempts + excluded.attempts, "
    "seconds = step_rollups.seconds + excluded.seconds"
)
#: The run's columns the statements above read, as a relation of one row (SQLite; PostgreSQL
#: uses the run its finishing statement just updated).
RUN_BY_ID = (
    "(SELECT id, workflow, version, status, created_at, started_at, completed_at "
    "FROM runs WHERE id = ?)"
)
ROLL_FAILURE = (
    "INSERT INTO failure_rollups (hour, workflow, version, step, type, message, shard, "
    "failures) VALUES (?, ?, ?, ?, ?, ?, ?, 1) "
    "ON CONFLICT (hour, workflow, version, step, type, message, shard) DO UPDATE SET "
    "failures = failure_rollups.failures + 1"
)
FAILED_STEPS = (
    "SELECT name, error FROM steps WHERE run_id = ? AND kind = 'step' AND status = 'failed'"
)


async def roll_failures(
    tx: Tx,
    hour: int,
    shard: int,
    run_id: str,
    workflow: str,
    version: str,
    reason: tuple[str, str] | None,
) -> None:
    """Count the failure of a finished run (``reason``, None when it completed) and of its
    steps that failed for good."""
    rows = [(hour, workflow, version, "", *reason, shard)] if reason is not None else []
    for name, error in await tx.all(FAILED_STEPS, (run_id,)):
        rows.append((hour, workflow, version, str(name), *reason_of(decode(error)), shard))
    for row in rows:
        await tx.execute(ROLL_FAILURE, row)


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunCell:
    """Runs of one group (the columns asked for) that fell in one duration bucket."""

    key: tuple[Any, ...]
    status: str
    measure: str
    bucket: int
    runs: int
    seconds: float


@dataclass(frozen=True, slots=True)
class StepCell:
    """Final steps of one workflow and name, one status and duration bucket."""

    workflow: str
    step: str
    status: str
    bucket: int
    steps: int
    retried: int
    attempts: int
    seconds: float


@dataclass(frozen=True, slots=True)
class FailureCell:
    """Failures of one reason."""

    workflow: str
    version: str
    step: str
    type: str
    message: str
    failures: int


#: Groupings of run rollups that reports ask for.
_RUN_GROUPS = {
    "all": (),
    "workflow": ("workflow", "version"),
    "hour": ("hour",),
    "workflow_hour": ("workflow", "hour"),
}


class RollupQueries(Transactions):
    """Reads of the rollups for analytics; mixed into both stores."""

    async def run_cells(self, first_hour: int, last_hour: int, by: str) -> list[RunCell]:
        """Run rollups of hours ``[first_hour, last_hour]`` added up by ``by`` (``all``,
        ``workflow``: workflow and version, ``hour``, ``workflow_hour``)."""
        group = _RUN_GROUPS[by]
        columns = "".join(f"{c}, " for c in group)
        sql = (
            f"SELECT {columns}status, measure, bucket, sum(runs), sum(seconds) FROM run_rollups "
            f"WHERE hour >= ? AND hour <= ? GROUP BY {columns}status, measure, bucket"
        )
        rows = await self.read(lambda tx: tx.all(sql, (first_hour, last_hour)))
        width = len(group)
        return [
            RunCell(
                tuple(row[:width]),
                str(row[width]),
                str(row[width + 1]),
                int(row[width + 2]),
                int(row[width + 3]),
                float(row[width + 4]),
            )
            for row in rows
        ]

    async def step_cells(self, first_hour: int, last_hour: int) -> list[StepCell]:
        """Step rollups of hours ``[first_hour, last_hour]`` per workflow, step, status, bucket."""
        sql = (
            "SELECT workflow, step, status, bucket, sum(steps), sum(retried), sum(attempts), "
            "sum(seconds) FROM step_rollups WHERE hour >= ? AND hour <= ? "
            "GROUP BY workflow, step, status, bucket"
        )
        rows = await self.read(lambda tx: tx.all(sql, (first_hour, last_hour)))
        return [
            StepCell(str(w), str(n), str(s), int(b), int(c), int(r), int(a), float(t))
            for w, n, s, b, c, r, a, t in rows
        ]

    async def failure_cells(self, first_hour: int, last_hour: int) -> list[FailureCell]:
        """Failure rollups of hours ``[first_hour, last_hour]`` per workflow, step and reason."""
        sql = (
            "SELECT workflow, version, step, type, message, sum(failures) FROM failure_rollups "
            "WHERE hour >= ? AND hour <= ? GROUP BY workflow, version, step, type, message"
        )
        rows = await self.read(lambda tx: tx.all(sql, (first_hour, last_hour)))
        return [
            FailureCell(str(w), str(v), str(s), str(t), str(m), int(f)) for w, v, s, t, m, f in rows
        ]


def bucket_percentile(counts: Sequence[tuple[int, int]], q: float) -> float | None:
    """Percentile ``q`` (0-100) of values counted per bucket (``(bucket, count)``, any order).

    Nearest rank, placed by linear interpolation inside its bucket; None for no values.
    """
    ordered = sorted((b, c) for b, c in counts if b >= 0 and c > 0)
    total = sum(c for _, c in ordered)
    if total == 0:
        return None
    rank = max(1.0, q / 100 * total)
    seen = 0
    for bucket, count in ordered:
        if seen + count >= rank:
            low = 0.0 if bucket == 0 else BOUNDS[min(bucket, len(BOUNDS)) - 1]
            high = BOUNDS[bucket] if bucket < len(BOUNDS) else low
            # The middle of the rank's share of the bucket: at most half a bucket off.
            share = max(0.0, rank - seen - 0.5) / count
            return round(low + (high - low) * share, 6)
        seen += count
    return round(BOUNDS[-1], 6)
