"""Rollups: finished runs and their steps added up per hour and per day, as the runs finish.

Closing a run (:func:`opsloom.store.job.finish`) adds, in the same transaction, its duration and
its queue wait to the rows of its hour and of its day in ``run_rollups``, its final steps to
``step_rollups``, and its failures (the run's and its steps', by error type and normalised
message) to ``failure_rollups``. Analytics then read a few rows per workflow and period however
long the history is, and those rows outlive the runs that retention prunes.

Durations are counted in :data:`BUCKETS` histogram columns (``b0`` … ``b127``): ``b0`` up to
1 ms, each next bucket 2^(1/4) times wider, the last one beyond 49 days. A percentile read from
the counts (:func:`bucket_percentile`) is within 10 % of the exact one. The bounds are also a
table (``duration_buckets``), for the upgrade that rolls up an existing history in SQL.

Rows carry a ``shard`` (from the worker that finished the run) so that processes finishing
runs of one workflow at once update different rows instead of queueing for one row lock.
Readers add the shards up.
"""

from __future__ import annotations

import re
import zlib
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from opsloom.codec import decode
from opsloom.store.tx import Transactions, Tx

#: Histogram columns of a rollup row.
BUCKETS = 128
#: Upper bounds (seconds) of buckets ``0 … BUCKETS - 2``; the last bucket is unbounded.
BOUNDS = tuple(0.001 * 2 ** (i / 4) for i in range(BUCKETS - 1))
#: The periods rows are kept for (seconds): hours, and days for long windows.
HOUR = 3600
DAY = 86400
SHARDS = 8
_COLUMNS = tuple(f"b{i}" for i in range(BUCKETS))

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
# The buckets are placed here, in Python, so that each statement adds to the few histogram
# columns that change (``b17 = run_rollups.b17 + excluded.b17``) instead of all of them.


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration."""
    return bisect_left(BOUNDS, seconds)


def periods(now: float) -> tuple[int, int]:
    """The starts of the hour and of the day ``now`` is in (UTC epoch seconds)."""
    return int(now // HOUR) * HOUR, int(now // DAY) * DAY


@dataclass(frozen=True, slots=True)
class FinishedStep:
    """A final step entry of a run that finished."""

    name: str
    status: str
    attempts: int
    started_at: float | None
    completed_at: float | None
    error: bytes | None


@dataclass(frozen=True, slots=True)
class Finished:
    """What a run that just finished adds to the rollups."""

    workflow: str
    version: str
    status: str
    created_at: float
    started_at: float | None
    completed_at: float
    steps: Sequence[FinishedStep]
    #: The run's failure (error type, normalised message); None when it completed.
    reason: tuple[str, str] | None


#: Columns of the final step entries :class:`FinishedStep` reads (of ``steps``).
STEP_FIELDS = "name, status, attempts, started_at, completed_at, error"
FINISHED_STEPS = (
    f"SELECT {STEP_FIELDS} FROM steps WHERE run_id = ? AND kind = 'step' "
    "AND status IN ('completed', 'failed')"
)

Upsert = tuple[str, tuple[Any, ...]]


@lru_cache(maxsize=512)
def _upsert(table: str, keys: tuple[str, ...], sums: tuple[str, ...]) -> str:
    """Two rows (the hour's and the day's) added to ``table``: ``sums`` are added up."""
    names = (*keys, *sums)
    marks = ", ".join("?" * len(names))
    added = ", ".join(f"{n} = {table}.{n} + excluded.{n}" for n in sums)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks}), ({marks}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"
    )


_RUN_KEYS = ("width", "start", "workflow", "version", "status", "measure", "shard")
_STEP_KEYS = ("width", "start", "workflow", "step", "status", "shard")
_FAILURE_KEYS = ("width", "start", "workflow", "version", "step", "type", "message", "shard")


def _both(
    table: str, keys: tuple[str, ...], sums: tuple[str, ...], now: float, row: tuple[Any, ...]
) -> Upsert:
    hour, day = periods(now)
    return _upsert(table, keys, sums), (HOUR, hour, *row, DAY, day, *row)


#: What a run adds to one row of a rollup table: (table, key columns, summed columns, the row's
#: key values without width and start, then the values added to the summed columns).
Addition = tuple[str, tuple[str, ...], tuple[str, ...], tuple[Any, ...]]


def upserts(run: Finished, shard: int) -> list[Upsert]:
    """The statements that add ``run`` to the rollups; no two change the same row, so that
    PostgreSQL may run them as one statement."""
    now = run.completed_at
    return [_both(table, keys, sums, now, row) for table, keys, sums, row in _additions(run, shard)]


def _additions(run: Finished, shard: int) -> list[Addition]:
    now = run.completed_at
    begun = run.started_at if run.started_at is not None else run.created_at
    measures = [("duration", max(0.0, now - begun))]
    if run.started_at is not None:
        measures.append(("wait", max(0.0, run.started_at - run.created_at)))
    out: list[Addition] = []
    head = (run.workflow, run.version, run.status)
    for measure, seconds in measures:
        column = f"b{bucket_of(seconds)}"
        row: tuple[Any, ...] = (*head, measure, shard, 1, seconds, 1)
        out.append(("run_rollups", _RUN_KEYS, ("runs", "seconds", column), row))
    # Steps of one name and status share a row: one statement adds all their buckets.
    groups: dict[tuple[str, str], list[FinishedStep]] = {}
    for step in run.steps:
        groups.setdefault((step.name, step.status), []).append(step)
    for (name, status), steps in groups.items():
        counts: dict[str, int] = {}
        seconds = 0.0
        for step in steps:
            if step.started_at is not None and step.completed_at is not None:
                took = max(0.0, step.completed_at - step.started_at)
                seconds += took
                column = f"b{bucket_of(took)}"
                counts[column] = counts.get(column, 0) + 1
        columns = tuple(sorted(counts))
        totals = (
            len(steps),
            sum(1 for s in steps if s.attempts > 1),
            sum(s.attempts for s in steps),
            seconds,
        )
        row = (run.workflow, name, status, shard, *totals, *(counts[c] for c in columns))
        sums = ("steps", "retried", "attempts", "seconds", *columns)
        out.append(("step_rollups", _STEP_KEYS, sums, row))
    reasons: dict[tuple[str, str, str], int] = {}
    if run.reason is not None:
        reasons[("", *run.reason)] = 1
    for step in run.steps:
        if step.status == "failed":
            key = (step.name, *reason_of(decode(step.error)))
            reasons[key] = reasons.get(key, 0) + 1
    for (step_name, kind, message), failures in reasons.items():
        row = (run.workflow, run.version, step_name, kind, message, shard, failures)
        out.append(("failure_rollups", _FAILURE_KEYS, ("failures",), row))
    return out


class RollupSums:
    """Rollup additions gathered over one transaction, written just before it commits.

    Runs that finish in one group commit mostly add to the same rows (their workflow, hour and
    day, a few duration buckets), so one upsert per row replaces a few per run. Only the
    totals reach the rows, and in the same transaction as the runs' closing.
    """

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[tuple[Any, ...], dict[str, float]] = {}

    def add(self, run: Finished, shard: int) -> None:
        """Count ``run`` in."""
        hour, day = periods(run.completed_at)
        for table, keys, sums, row in _additions(run, shard):
            held = len(keys) - 2  # width and start are the period's
            totals = self._rows.setdefault((table, keys, hour, day, row[:held]), {})
            for column, value in zip(sums, row[held:], strict=True):
                totals[column] = totals.get(column, 0) + value

    def merge(self, other: RollupSums) -> None:
        """Count in what ``other`` holds."""
        for key, sums in other._rows.items():
            totals = self._rows.setdefault(key, {})
            for column, value in sums.items():
                totals[column] = totals.get(column, 0) + value

    def statements(self) -> list[Upsert]:
        """One upsert per row, adding its totals to the hour's and the day's."""
        out: list[Upsert] = []
        for (table, keys, hour, day, held), totals in self._rows.items():
            row = (*held, *totals.values())
            out.append((_upsert(table, keys, tuple(totals)), (HOUR, hour, *row, DAY, day, *row)))
        return out


async def roll_up(tx: Tx, run: Finished, shard: int) -> None:
    """Add a finished run to the rollups, inside the transaction that finished it.

    SQLite's writer gathers them over its transaction (``tx.rollups``, see :class:`RollupSums`);
    otherwise SQLite runs each statement (in process, no round trip) and PostgreSQL runs them
    all as one statement (one round trip).
    """
    if tx.rollups is not None:
        tx.rollups.add(run, shard)
        return
    statements = upserts(run, shard)
    if tx.dialect == "sqlite":
        for sql, params in statements:
            await tx.execute(sql, params)
        return
    parts = ", ".join(f"u{i} AS ({sql})" for i, (sql, _) in enumerate(statements))
    await tx.execute(f"WITH {parts} SELECT 1", tuple(p for _, params in statements for p in params))


# --- the history that was there before the rollups ---------------------------------------

#: The schema version that brought the rollups: right after it, the history is rolled up.
ROLLUP_VERSION = 16  # 0016_rollups
HISTORY_RUNS = (
    "SELECT id, workflow, version, status, created_at, started_at, completed_at, error "
    "FROM runs WHERE completed_at IS NOT NULL"
)
HISTORY_STEPS = (
    f"SELECT s.run_id, {', '.join(f's.{c}' for c in STEP_FIELDS.split(', '))} "
    "FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.completed_at IS NOT NULL "
    "AND s.kind = 'step' AND s.status IN ('completed', 'failed')"
)


class Backfill:
    """Rolls up a history read row by row (:data:`HISTORY_RUNS`, then :data:`HISTORY_STEPS`)
    in memory, into the rows :meth:`inserts` writes: an upgrade of a large store takes one
    pass over it instead of a statement per run."""

    def __init__(self) -> None:
        self._runs: dict[str, tuple[str, str, float]] = {}
        self._sums: dict[tuple[str, tuple[Any, ...]], list[float]] = {}

    def _add(self, table: str, key: tuple[Any, ...], values: Sequence[float], bucket: int) -> None:
        for width in (HOUR, DAY):
            row = (width, int(key[0] // width) * width, *key[1:])
            sums = self._sums.get((table, row))
            if sums is None:
                sums = self._sums[(table, row)] = [0.0] * (len(values) + BUCKETS)
            for i, value in enumerate(values):
                sums[i] += value
            if bucket >= 0:
                sums[len(values) + bucket] += 1

    def add_run(self, row: Sequence[Any]) -> None:
        """One row of :data:`HISTORY_RUNS`."""
        run_id, workflow, version, status, created, started, completed, error = row
        self._runs[run_id] = (workflow, version, completed)
        begun = started if started is not None else created
        took = max(0.0, completed - begun)
        key = (completed, workflow, version, status)
        self._add("run_rollups", (*key, "duration"), (1, took), bucket_of(took))
        if started is not None:
            waited = max(0.0, started - created)
            self._add("run_rollups", (*key, "wait"), (1, waited), bucket_of(waited))
        if status != "completed":
            reason = reason_of(decode(error))
            self._add("failure_rollups", (completed, workflow, version, "", *reason), (1,), -1)

    def add_step(self, row: Sequence[Any]) -> None:
        """One row of :data:`HISTORY_STEPS` (after every run was added)."""
        run_id, name, status, attempts, started, completed, error = row
        workflow, version, finished = self._runs[run_id]
        took = None if started is None or completed is None else max(0.0, completed - started)
        values = (1, 1 if attempts > 1 else 0, attempts, took or 0.0)
        bucket = -1 if took is None else bucket_of(took)
        self._add("step_rollups", (finished, workflow, name, status), values, bucket)
        if status == "failed":
            reason = reason_of(decode(error))
            self._add("failure_rollups", (finished, workflow, version, name, *reason), (1,), -1)

    def inserts(self) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """``(statement, rows)`` to run with ``executemany``, one per table."""
        heads = {
            "run_rollups": (_RUN_KEYS, ("runs", "seconds")),
            "step_rollups": (_STEP_KEYS, ("steps", "retried", "attempts", "seconds")),
            "failure_rollups": (_FAILURE_KEYS, ("failures",)),
        }
        out = []
        for table, (keys, sums) in heads.items():
            histogram = table != "failure_rollups"
            names = (*keys, *sums, *(_COLUMNS if histogram else ()))
            floats = [n == "seconds" for n in names[len(keys) :]]
            rows = []
            for (of, row), values in self._sums.items():
                if of == table:
                    # The keys but the shard (0 for the history), then the sums.
                    pairs = zip(values[: len(floats)], floats, strict=True)
                    counted = (float(v) if f else int(v) for v, f in pairs)
                    rows.append((*row, 0, *counted))
            marks = ", ".join("?" * len(names))
            out.append((f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", rows))
        return out


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunCell:
    """Runs of one group (the columns asked for), one status and measure: their histogram."""

    key: tuple[Any, ...]
    status: str
    measure: str
    runs: int
    seconds: float
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StepCell:
    """Final steps of one workflow and name with one status: counts and their histogram."""

    workflow: str
    step: str
    status: str
    steps: int
    retried: int
    attempts: int
    seconds: float
    counts: tuple[int, ...]


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
    "start": ("start",),
    "workflow_start": ("workflow", "start"),
}
_SUMS = ", ".join(f"sum({c})" for c in _COLUMNS)
_PERIOD = "WHERE width = ? AND start >= ? AND start <= ?"


class RollupQueries(Transactions):
    """Reads of the rollups for analytics; mixed into both stores."""

    async def run_cells(
        self,
        width: int,
        first: int,
        last: int,
        by: str,
        *,
        measure: str | None = None,
        by_status: bool = True,
        histogram: bool = True,
    ) -> list[RunCell]:
        """Run rollups of the ``width`` periods starting in ``[first, last]``, added up by
        ``by`` (``all``, ``workflow``: workflow and version, ``start``, ``workflow_start``).

        ``measure``: only that measure; ``by_status=False``: statuses added up (``status`` is
        ''); ``histogram=False``: counts only (``counts`` is empty), which reads much less.
        """
        group = [*_RUN_GROUPS[by], *(["status"] if by_status else []), "measure"]
        columns = ", ".join(group)
        where, params = _PERIOD, [width, first, last, measure or ""]
        if measure is not None:
            where += " AND measure = ?"
        else:
            params.pop()
        sums = f", {_SUMS}" if histogram else ""
        sql = (
            f"SELECT {columns}, sum(runs), sum(seconds){sums} FROM run_rollups {where} "
            f"GROUP BY {columns}"
        )
        rows = await self.read(lambda tx: tx.all(sql, params))
        n = len(_RUN_GROUPS[by])
        m = len(group)
        return [
            RunCell(
                tuple(row[:n]),
                str(row[n]) if by_status else "",
                str(row[m - 1]),
                int(row[m]),
                float(row[m + 1]),
                tuple(row[m + 2 :]),
            )
            for row in rows
        ]

    async def step_cells(self, width: int, first: int, last: int) -> list[StepCell]:
        """Step rollups of the ``width`` periods starting in ``[first, last]``."""
        sql = (
            "SELECT workflow, step, status, sum(steps), sum(retried), sum(attempts), "
            f"sum(seconds), {_SUMS} FROM step_rollups {_PERIOD} GROUP BY workflow, step, status"
        )
        rows = await self.read(lambda tx: tx.all(sql, (width, first, last)))
        return [
            StepCell(
                str(row[0]),
                str(row[1]),
                str(row[2]),
                int(row[3]),
                int(row[4]),
                int(row[5]),
                float(row[6]),
                tuple(row[7:]),
            )
            for row in rows
        ]

    async def failure_cells(self, width: int, first: int, last: int) -> list[FailureCell]:
        """Failure rollups of the ``width`` periods starting in ``[first, last]``."""
        sql = (
            "SELECT workflow, version, step, type, message, sum(failures) FROM failure_rollups "
            f"{_PERIOD} GROUP BY workflow, version, step, type, message"
        )
        rows = await self.read(lambda tx: tx.all(sql, (width, first, last)))
        return [
            FailureCell(str(w), str(v), str(s), str(t), str(m), int(f)) for w, v, s, t, m, f in rows
        ]


def merge(histograms: Sequence[Sequence[int]]) -> list[int]:
    """Several histograms added up."""
    total = [0] * BUCKETS
    for counts in histograms:
        for i, count in enumerate(counts):
            if count:
                total[i] += count
    return total


def bucket_percentile(counts: Sequence[int], q: float) -> float | None:
    """Percentile ``q`` (0-100) of values counted per bucket; None for no values.

    Nearest rank, placed in the middle of the rank's share of its bucket (geometrically: the
    buckets are log-spaced).
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1.0, q / 100 * total)
    seen = 0
    for bucket, count in enumerate(counts):
        if count and seen + count >= rank:
            share = max(0.0, rank - seen - 0.5) / count
            if bucket == 0:
                return round(BOUNDS[0] * share, 6)
            low = BOUNDS[bucket - 1]
            high = BOUNDS[bucket] if bucket < len(BOUNDS) else low * 2
            return round(float(low * (high / low) ** share), 6)
        seen += count
    return round(BOUNDS[-1], 6)
