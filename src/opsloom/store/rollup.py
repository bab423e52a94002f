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

import json
import re
import zlib
from array import array
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
#: One row a finished run adds to (for each period): table, key columns but the period, their
#: values, and the sums to add (column: amount).
Cell = tuple[str, tuple[str, ...], tuple[Any, ...], dict[str, float]]


@lru_cache(maxsize=512)
def _upsert(table: str, keys: tuple[str, ...], sums: tuple[str, ...], rows: int = 2) -> str:
    """``rows`` rows (by default the hour's and the day's) added to ``table``: ``sums`` are
    added up."""
    names = (*keys, *sums)
    marks = ", ".join("?" * len(names))
    added = ", ".join(f"{n} = {table}.{n} + excluded.{n}" for n in sums)
    values = ", ".join([f"({marks})"] * rows)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES {values} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"
    )


_RUN_KEYS = ("width", "start", "workflow", "version", "status", "measure", "shard")
_STEP_KEYS = ("width", "start", "workflow", "step", "status", "shard")
_FAILURE_KEYS = ("width", "start", "workflow", "version", "step", "type", "message", "shard")


def cells(run: Finished, shard: int) -> list[Cell]:
    """The rows ``run`` adds to, once per period; no two share a key."""
    now = run.completed_at
    begun = run.started_at if run.started_at is not None else run.created_at
    measures = [("duration", max(0.0, now - begun))]
    if run.started_at is not None:
        measures.append(("wait", max(0.0, run.started_at - run.created_at)))
    out: list[Cell] = []
    head = (run.workflow, run.version, run.status)
    for measure, seconds in measures:
        sums = {"runs": 1, "seconds": seconds, f"b{bucket_of(seconds)}": 1}
        out.append(("run_rollups", _RUN_KEYS, (*head, measure, shard), sums))
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
        step_sums: dict[str, float] = {
            "steps": len(steps),
            "retried": sum(1 for s in steps if s.attempts > 1),
            "attempts": sum(s.attempts for s in steps),
            "seconds": seconds,
        }
        step_sums.update((column, counts[column]) for column in sorted(counts))
        out.append(("step_rollups", _STEP_KEYS, (run.workflow, name, status, shard), step_sums))
    reasons: dict[tuple[str, str, str], int] = {}
    if run.reason is not None:
        reasons[("", *run.reason)] = 1
    for step in run.steps:
        if step.status == "failed":
            key = (step.name, *reason_of(decode(step.error)))
            reasons[key] = reasons.get(key, 0) + 1
    for (step_name, kind, message), failures in reasons.items():
        where = (run.workflow, run.version, step_name, kind, message, shard)
        out.append(("failure_rollups", _FAILURE_KEYS, where, {"failures": failures}))
    return out


def upserts(run: Finished, shard: int) -> list[Upsert]:
    """The statements that add ``run`` to the rollups; no two change the same row, so that
    PostgreSQL may run them as one statement."""
    hour, day = periods(run.completed_at)
    out: list[Upsert] = []
    for table, keys, key, sums in cells(run, shard):
        row = (*key, *sums.values())
        out.append((_upsert(table, keys, tuple(sums)), (HOUR, hour, *row, DAY, day, *row)))
    return out


def batched(runs: Sequence[tuple[Finished, int]]) -> Upsert | None:
    """One PostgreSQL statement that adds all ``runs`` (each with its shard) to the rollups.

    Rows with the same key are added up here first (one statement may not change a row twice),
    and written in key order, so that two processes lock shared rows in the same order.
    """
    merged: dict[tuple[str, tuple[Any, ...]], tuple[tuple[str, ...], dict[str, float]]] = {}
    for run, shard in runs:
        hour, day = periods(run.completed_at)
        for table, keys, key, sums in cells(run, shard):
            for width, start in ((HOUR, hour), (DAY, day)):
                ident = (table, (width, start, *key))
                entry = merged.get(ident)
                if entry is None:
                    merged[ident] = (keys, dict(sums))
                    continue
                added = entry[1]
                for column, amount in sums.items():
                    added[column] = added.get(column, 0) + amount
    if not merged:
        return None
    # One INSERT per table and set of columns, each with all its rows.
    groups: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[tuple[Any, ...]]] = {}
    for (table, key), (keys, sums) in sorted(merged.items(), key=_key_order):
        columns = tuple(sums)
        groups.setdefault((table, keys, columns), []).append((*key, *sums.values()))
    parts: list[str] = []
    params: list[Any] = []
    for i, ((table, keys, columns), rows) in enumerate(groups.items()):
        parts.append(f"u{i} AS ({_upsert(table, keys, columns, len(rows))})")
        params.extend(value for row in rows for value in row)
    return f"WITH {', '.join(parts)} SELECT 1", tuple(params)


def _key_order(item: tuple[tuple[str, tuple[Any, ...]], Any]) -> tuple[str, tuple[str, ...]]:
    table, key = item[0]
    return table, tuple(str(value) for value in key)


async def roll_up(tx: Tx, run: Finished, shard: int) -> None:
    """Add a finished run to the rollups, inside the transaction that finished it.

    SQLite runs each statement (in process, no round trip). On PostgreSQL, a writer's batch
    collects the runs it finishes (``tx.rollups``) and adds them all in one statement at its
    end (see :func:`batched`); elsewhere the run's statements go as one (one round trip).
    """
    if tx.dialect == "sqlite":
        for sql, params in upserts(run, shard):
            await tx.execute(sql, params)
        return
    collected: list[tuple[Finished, int]] | None = getattr(tx, "rollups", None)
    if collected is not None:
        collected.append((run, shard))
        return
    statement = batched([(run, shard)])
    if statement is not None:
        await tx.execute(*statement)


# --- the history that was there before the rollups ---------------------------------------

#: The schema version that brought the rollups: right after it, the history is rolled up.
ROLLUP_VERSION = 16  # 0016_rollups
HISTORY_RUNS = (
    "SELECT id, workflow, version, status, created_at, started_at, completed_at, error "
    "FROM runs WHERE completed_at IS NOT NULL"
)
# Each step row carries what it needs of its run, so that nothing is kept per run: the
# backfill's memory is bounded by the rollup rows it builds, not by the history's length.
HISTORY_STEPS = (
    "SELECT r.workflow, r.version, r.completed_at, "
    f"{', '.join(f's.{c}' for c in STEP_FIELDS.split(', '))} "
    "FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.completed_at IS NOT NULL "
    "AND s.kind = 'step' AND s.status IN ('completed', 'failed')"
)


class Backfill:
    """Rolls up a history read row by row (:data:`HISTORY_RUNS`, then :data:`HISTORY_STEPS`)
    in memory, into the rows :meth:`inserts` writes: an upgrade of a large store takes one
    pass over it instead of a statement per run. Memory grows with the rollup rows (periods
    times workflows, statuses and reasons), not with the number of runs."""

    def __init__(self) -> None:
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
        _run_id, workflow, version, status, created, started, completed, error = row
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
        """One row of :data:`HISTORY_STEPS`."""
        workflow, version, finished, name, status, attempts, started, completed, error = row
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

    async def hour_summaries(
        self,
        first: int,
        last: int,
        now: float,
        *,
        every: bool | None = None,
        light: bool = False,
    ) -> list[HourSummary]:
        """Per hour starting in ``[first, last]``: one summary for every workflow (``''``)
        and one per workflow that finished runs in it; ``every``: only the first kind (True)
        or only the second (False); ``light``: without statuses and histograms (those read
        from the table; those made now have them).

        Hours over for :data:`SETTLE` seconds are read from ``hour_summaries``; those not
        summarised yet are summarised from the rollups once and stored. The hours still open
        are summarised from the rollups on every call (a few rows).
        """
        which = "" if every is None else (" AND workflow = ''" if every else " AND workflow <> ''")
        kept_hours = await self.read(
            lambda tx: tx.all(
                "SELECT start FROM hour_summaries WHERE start >= ? AND start <= ? "
                "AND workflow = ''",
                (first, last),
            )
        )
        # Without the statuses and histograms (``light``), a row is a few numbers.
        columns = _LIGHT_COLUMNS if light else _SUMMARY_COLUMNS
        rows = await self.read(
            lambda tx: tx.all(
                f"SELECT {columns} FROM hour_summaries WHERE start >= ? AND start <= ?{which}",
                (first, last),
            )
        )
        if light:
            out = [
                HourSummary(int(a), str(w), int(r), int(c), p, "{}", b"") for a, w, r, c, p in rows
            ]
        else:
            out = [
                HourSummary(int(a), str(w), int(r), int(c), p, str(s), bytes(h))
                for a, w, r, c, p, s, h in rows
            ]
        kept = {int(row[0]) for row in kept_hours}
        missing = [hour for hour in range(first, last + 1, HOUR) if hour not in kept]
        if not missing:
            return out
        wanted = set(missing)
        fresh = [s for s in await self._summarise(missing[0], missing[-1]) if s.start in wanted]
        over = int(now - SETTLE) // HOUR * HOUR - HOUR  # the newest hour that is over
        done = [s.row() for s in fresh if s.start <= over]
        if done:
            marks = ", ".join("?" * len(done[0]))
            await self.write(
                lambda tx: tx.executemany(
                    f"INSERT INTO hour_summaries ({_SUMMARY_COLUMNS}) VALUES ({marks}) "
                    "ON CONFLICT (start, workflow) DO NOTHING",
                    done,
                )
            )
        if every is not None:
            fresh = [s for s in fresh if (s.workflow == "") == every]
        return out + fresh

    async def _summarise(self, first: int, last: int) -> list[HourSummary]:
        """Summaries of every hour in ``[first, last]`` from the rollups."""
        counts = await self.run_cells(
            HOUR, first, last, "workflow_start", measure="duration", histogram=False
        )
        spread = await self.run_cells(
            HOUR, first, last, "workflow_start", measure="duration", by_status=False
        )
        statuses: dict[tuple[int, str], dict[str, int]] = {}
        histograms: dict[tuple[int, str], list[int]] = {}
        for hour in range(first, last + 1, HOUR):
            statuses[(hour, "")] = {}
        for cell in counts:
            workflow, hour = str(cell.key[0]), int(cell.key[1])
            for key in ((hour, workflow), (hour, "")):
                into = statuses.setdefault(key, {})
                into[cell.status] = into.get(cell.status, 0) + cell.runs
        for cell in spread:
            workflow, hour = str(cell.key[0]), int(cell.key[1])
            for key in ((hour, workflow), (hour, "")):
                total = histograms.setdefault(key, [0] * BUCKETS)
                for i, count in enumerate(cell.counts):
                    if count:
                        total[i] += int(count)
        out = []
        for (hour, workflow), found in statuses.items():
            histogram = histograms.get((hour, workflow), [0] * BUCKETS)
            out.append(
                HourSummary(
                    hour,
                    workflow,
                    sum(found.values()),
                    found.get("completed", 0),
                    bucket_percentile(histogram, 95),
                    json.dumps(found, sort_keys=True),
                    _pack(histogram),
                )
            )
        return out


#: An hour is summarised for good this long after it ended: runs finished by a process whose
#: clock is a little behind may still be added to it until then.
SETTLE = 300
_LIGHT_COLUMNS = "start, workflow, runs, completed, p95"
_SUMMARY_COLUMNS = f"{_LIGHT_COLUMNS}, statuses, histogram"


@dataclass(frozen=True, slots=True)
class HourSummary:
    """The runs of one workflow (every workflow: ``''``) that finished in one hour: how many,
    how many completed, their p95 duration, and (decoded when asked) the count per status
    and the duration histogram."""

    start: int
    workflow: str
    runs: int
    completed: int
    p95: float | None
    by_status: str
    histogram: bytes

    def statuses(self) -> dict[str, int]:
        found: dict[str, int] = json.loads(self.by_status)
        return found

    def counts(self) -> list[int]:
        return _unpack(self.histogram)

    def row(self) -> tuple[Any, ...]:
        """The values of :data:`_SUMMARY_COLUMNS`."""
        return (
            self.start,
            self.workflow,
            self.runs,
            self.completed,
            self.p95,
            self.by_status,
            self.histogram,
        )


def _pack(counts: Sequence[int]) -> bytes:
    """A histogram as (bucket, count) pairs of the buckets that count something."""
    pairs = array("q")
    for bucket, count in enumerate(counts):
        if count:
            pairs.extend((bucket, count))
    return pairs.tobytes()


def _unpack(blob: bytes) -> list[int]:
    pairs = array("q")
    pairs.frombytes(blob)
    counts = [0] * BUCKETS
    for i in range(0, len(pairs), 2):
        counts[pairs[i]] = pairs[i + 1]
    return counts


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
