"""Jobs, runs, history and signals: the statements every aggregate and dialect shares.

Locks are always taken on ``jobs`` rows before ``runs`` rows, so that the writer and the claims
of other workers never wait for each other in a cycle. A fence check locks the job row (``FOR
SHARE`` on PostgreSQL; SQLite's single writer excludes everyone else anyway) until the
transaction commits: a claim cannot take the run over between the check and the write it guards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opsloom.codec import decode
from opsloom.errors import LeaseLostError, RateLimitExceededError, RunStateError
from opsloom.model import RunRecord, RunStatus, SignalRecord, StepKind, StepRecord, StepStatus
from opsloom.model.run import Fence, NewRun
from opsloom.store.base import Claim, Kept
from opsloom.store.ratelimit import Slot, take_slots, workflow_control
from opsloom.store.rollup import (
    FINISHED_STEPS,
    STEP_FIELDS,
    Finished,
    FinishedStep,
    roll_up,
    shard_of,
)
from opsloom.store.rows import (
    JOB_INSERT_COLUMNS,
    QUARANTINED,
    RUN_COLUMNS,
    RUN_INSERT_COLUMNS,
    STEP_COLUMNS,
    job_insert_params,
    new_run_record,
    run_from_row,
    run_insert_params,
    step_params,
)
from opsloom.store.tx import Later, Tx

_RUN_MARKS = ", ".join("?" * len(RUN_INSERT_COLUMNS.split(",")))
_INSERT_RUN = (
    f"INSERT INTO runs ({RUN_INSERT_COLUMNS}) VALUES ({_RUN_MARKS}) ON CONFLICT (id) DO NOTHING"
)
_JOB_MARKS = ", ".join("?" * len(JOB_INSERT_COLUMNS.split(",")))
_INSERT_JOB = f"INSERT INTO jobs ({JOB_INSERT_COLUMNS}) VALUES ({_JOB_MARKS})"
#: Both in one statement (PostgreSQL): the job only with a run that was inserted.
_INSERT_RUN_AND_JOB = (
    f"WITH run AS ({_INSERT_RUN} RETURNING id) "
    f"INSERT INTO jobs ({JOB_INSERT_COLUMNS}) SELECT {_JOB_MARKS} FROM run RETURNING 1"
)


async def insert_run(
    tx: Tx,
    new: NewRun,
    now: float,
    lease: tuple[str, float] | None = None,
    *,
    admitted: Admission | None = None,
    refusable: bool = False,
) -> RunRecord | None:
    """Create a run and its job unless a run with its id exists; the new run, or None.

    A run of a paused workflow is created paused (its job held back), and one of a workflow
    under a rate limit is queued until its turn: neither is created under a lease (its creator
    does not execute it). ``admitted``: the :func:`admission` the caller already asked for.

    Raises:
        RateLimitExceededError: ``refusable``, and the workflow's rate limit drops starts past it
            and this is one (otherwise such a limit queues the run like any other).
    """
    paused, start_at, lease = await _entry(tx, new, now, lease, admitted, refusable)
    if await tx.execute(_INSERT_RUN, run_insert_params(new, now, lease, paused)) != 1:
        return None
    await tx.send(_INSERT_JOB, job_insert_params(new, now, lease, paused, start_at))
    if new.labels:
        await tx.executemany(_INSERT_LABEL, [(new.id, k, v) for k, v in new.labels])
    return new_run_record(new, now, lease, paused)


async def insert_run_later(
    tx: Tx, new: NewRun, now: float, lease: tuple[str, float] | None = None
) -> Later:
    """:func:`insert_run` (refusable) in a pipelined transaction, for a run without labels:
    the run and its job go in one statement whose answer is read after the rest of the batch
    is sent. The :class:`Later` gives ``(the run, True)`` when it was created, or ``(the run
    that has this id, False)``.

    Raises:
        RateLimitExceededError: as :func:`insert_run` (at once: its admission is read now).
    """
    paused, start_at, lease = await _entry(tx, new, now, lease, None, True)
    inserted = await tx.later(
        _INSERT_RUN_AND_JOB,
        (
            *run_insert_params(new, now, lease, paused),
            *job_insert_params(new, now, lease, paused, start_at),
        ),
    )

    async def created() -> tuple[RunRecord, bool]:
        if await inserted.rows():
            return new_run_record(new, now, lease, paused), True
        run = await fetch_run(tx, new.id)
        assert run is not None
        return run, False

    return Later(created)


async def _entry(
    tx: Tx,
    new: NewRun,
    now: float,
    lease: tuple[str, float] | None,
    admitted: Admission | None,
    refusable: bool,
) -> tuple[bool, float, tuple[str, float] | None]:
    """How a new run enters (see :func:`insert_run`): paused, from when, and under which
    lease (none for a run that is paused or queued)."""
    if admitted is None:
        admitted = await admission(tx, new, now, refusable=refusable)
        if admitted is None:
            raise RateLimitExceededError(
                f"workflow {new.workflow!r} is at its rate limit, which drops starts past it"
            )
    paused, start_at = admitted.paused, admitted.start_at
    return paused, start_at, None if paused or start_at > now else lease


@dataclass(frozen=True, slots=True)
class Admission:
    """How a new run enters: paused (its workflow is), and from when it may run."""

    paused: bool
    start_at: float


async def admission(
    tx: Tx, new: NewRun, now: float, slots: Sequence[Slot] = (), *, refusable: bool = True
) -> Admission | None:
    """How a new run enters, drawing a start slot from its workflow's rate limit and from
    ``slots`` (a trigger's); None when a limit that drops starts refuses it (nothing taken).
    Unless ``refusable``, every limit queues (a child run, a reset, a schedule's tick).

    A run that a limit queues waits for its slot (see :mod:`opsloom.store.ratelimit`): a
    storm of starts becomes a queue that drains at the rate.
    """
    paused, slot = await workflow_control(tx, new.workflow, new.input)
    wanted = [*slots, slot] if slot is not None else list(slots)
    if not refusable:
        wanted = [(scope, key, replace(limit, overflow="queue")) for scope, key, limit in wanted]
    if not wanted:
        return Admission(paused, now)
    start_at = await take_slots(tx, wanted, now)
    return None if start_at is None else Admission(paused, start_at)


_INSERT_LABEL = (
    "INSERT INTO run_labels (run_id, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value"
)


async def set_labels(tx: Tx, run_id: str, labels: dict[str, str | None]) -> None:
    """Set (or, with a None value, remove) labels of a run."""
    gone = [(run_id, key) for key, value in labels.items() if value is None]
    kept = [(run_id, key, value) for key, value in labels.items() if value is not None]
    if gone:
        await tx.executemany("DELETE FROM run_labels WHERE run_id = ? AND key = ?", gone)
    if kept:
        await tx.executemany(_INSERT_LABEL, kept)


async def fetch_labels(tx: Tx, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """The labels of each of ``run_ids`` that has any."""
    out: dict[str, dict[str, str]] = {}
    if not run_ids:
        return out
    among, ids = tx.among("run_id", run_ids)
    for run_id, key, value in await tx.all(
        f"SELECT run_id, key, value FROM run_labels WHERE {among} ORDER BY run_id, key", ids
    ):
        out.setdefault(run_id, {})[key] = value
    return out


async def check_fence(tx: Tx, fence: Fence) -> None:
    """``LeaseLostError`` unless ``fence`` still holds its run's job (locked until commit)."""
    row = await tx.one(
        "SELECT 1 FROM jobs WHERE run_id = ? AND owner = ? AND token = ?" + tx.lock("FOR SHARE"),
        (fence.run_id, fence.owner, fence.token),
    )
    if row is None:
        raise LeaseLostError(f"lease on run {fence.run_id!r} lost: write rejected")


_UPSERT_STEP = (
    "INSERT INTO steps (run_id, seq, kind, name, status, output, error, attempts, wake_at, "
    "started_at, completed_at) {source} "
    "ON CONFLICT (run_id, seq) DO UPDATE SET status = excluded.status, "
    "output = excluded.output, error = excluded.error, attempts = excluded.attempts, "
    "wake_at = excluded.wake_at, completed_at = excluded.completed_at "
    "WHERE steps.status NOT IN ('completed', 'failed')"
)
_PLAIN_UPSERT_STEP = _UPSERT_STEP.format(source=f"VALUES ({', '.join('?' * 11)})")
# The fence is checked (and its job row locked) by the insert itself: one round trip.
# PostgreSQL must be told the types of values selected from nothing; SQLite has no BYTEA, and
# Python's sqlite3 counts the rows only of statements that start with INSERT (not WITH).
_FENCE = "SELECT 1 FROM jobs WHERE run_id = ? AND owner = ? AND token = ?"
_FENCED_UPSERT_STEP = {
    "sqlite": _UPSERT_STEP.format(source=f"SELECT {', '.join('?' * 11)} WHERE EXISTS ({_FENCE})"),
    "postgres": f"WITH fence AS ({_FENCE} FOR SHARE) "
    + _UPSERT_STEP.format(
        source="SELECT ?::text, ?::integer, ?::text, ?::text, ?::text, ?::bytea, ?::bytea, "
        "?::integer, ?::float8, ?::float8, ?::float8 FROM fence"
    ),
}


async def upsert_step(tx: Tx, step: StepRecord) -> None:
    """Insert or update a history entry; a final entry (completed, failed) stays as it is."""
    await tx.execute(_PLAIN_UPSERT_STEP, step_params(step))


async def fenced_upsert_step(tx: Tx, fence: Fence, step: StepRecord) -> Later | None:
    """:func:`upsert_step` under ``fence``, in one statement (its answer read later when the
    transaction is pipelined)."""
    held = (fence.run_id, fence.owner, fence.token)
    step_row = step_params(step)
    params = (*step_row, *held) if tx.dialect == "sqlite" else (*held, *step_row)
    if tx.pipelined:
        written = await tx.later(_FENCED_UPSERT_STEP[tx.dialect] + " RETURNING 1", params)

        async def check() -> None:
            if len(await written.rows()) != 1:
                await check_fence(tx, fence)

        return Later(check)
    if await tx.execute(_FENCED_UPSERT_STEP[tx.dialect], params) != 1:
        # Either the lease is gone, or the entry was already final (a duplicate completion,
        # which is ignored so that a completion is recorded exactly once).
        await check_fence(tx, fence)
    return None


async def nudge(tx: Tx, run_ids: Sequence[str], now: float) -> None:
    """Wake parked runs now; a run that is executing re-checks before it parks.

    A run no worker has claimed yet (``token`` 0) is left at its start time: it reads what
    woke it when it starts, and a start queued by a rate limit or a delay keeps its slot.
    """
    if not run_ids:
        return
    among, ids = tx.among("run_id", run_ids)
    await tx.execute(
        "UPDATE jobs SET nudged = 1, available_at = CASE WHEN owner IS NULL AND token > 0 "
        f"THEN ? ELSE available_at END WHERE {among}",
        (now, *ids),
    )


async def requeue(
    tx: Tx, run_ids: Sequence[str], now: float, *, recovered: bool, quarantine_after: int = 0
) -> list[str]:
    """Give the jobs of ``run_ids`` back to the queue and their runs back to pending.

    ``recovered``: their worker vanished (not a release). A run recovered ``quarantine_after``
    times or more (0: never) is quarantined instead: its job is held back (``QUARANTINED``)
    until an operator requeues it, so a run that crashes whatever worker takes it does not
    take them down one after the other forever. Returns the runs quarantined now.
    """
    if not run_ids:
        return []
    among, ids = tx.among("run_id", run_ids)
    await tx.execute(
        f"UPDATE jobs SET owner = NULL, lease_expires_at = NULL, available_at = ? WHERE {among}",
        (now, *ids),
    )
    # ``unindexed``: SQLite would otherwise walk runs_status_idx over every pending run
    # instead of looking the ids up by primary key.
    among, ids = tx.among("id", run_ids)
    await tx.execute(
        f"UPDATE runs SET status = 'pending', updated_at = ?, recovered = recovered + ? "
        f"WHERE {among} AND {tx.unindexed('status')} IN ('running', 'waiting')",
        (now, int(recovered), *ids),
    )
    if not recovered or quarantine_after <= 0:
        return []
    # The job rows are already locked by this transaction: the lock order holds.
    rows = await tx.all(
        f"UPDATE runs SET quarantined_at = ? WHERE {among} AND recovered >= ? "
        "AND quarantined_at IS NULL AND completed_at IS NULL RETURNING id",
        (now, *ids, quarantine_after),
    )
    held = sorted(row[0] for row in rows)
    if held:
        among, ids = tx.among("run_id", held)
        await tx.execute(f"UPDATE jobs SET blocked = {QUARANTINED} WHERE {among}", ids)
    return held


async def unblock(tx: Tx, parent_id: str | None, concurrency_key: str | None, now: float) -> None:
    """A run closed: wake its parent and the runs held back by its concurrency key."""
    if parent_id is not None:
        await nudge(tx, [parent_id], now)
    if concurrency_key is not None:
        # Taken after the run is closed, so that no job stays blocked.
        await tx.lock_key(concurrency_key)
        await tx.execute(
            "UPDATE jobs SET blocked = 0 WHERE blocked = 1 AND concurrency_key = ?",
            (concurrency_key,),
        )


async def take(
    tx: Tx,
    owner: str,
    chosen: list[str],
    admitted: list[str],
    blocked: list[str],
    now: float,
    lease_until: float,
    known: Mapping[str, Kept] | None = None,
) -> list[Claim]:
    """Lease the jobs a claim chose (``admitted``: under a concurrency key; ``blocked``: held
    back by one) and hand their runs over with history and signals.

    The history of a run in ``known`` is read only when the caller's kept execution is out of
    date (see :meth:`~opsloom.store.base.Store.claim`): its last position is looked up in the
    steps' index instead, so that claiming a long run again costs the same at any length.

    Every statement is sent before any answer is read: on PostgreSQL they share one round trip.
    """
    if blocked:
        among, ids = tx.among("run_id", blocked)
        await tx.send(f"UPDATE jobs SET blocked = 1 WHERE {among}", ids)
    if not chosen:
        return []
    if admitted:
        among, ids = tx.among("run_id", admitted)
        await tx.send(f"UPDATE jobs SET concurrency_key = NULL WHERE {among}", ids)
    among, ids = tx.among("run_id", chosen)
    leased = await tx.later(
        "UPDATE jobs SET owner = ?, token = token + 1, lease_expires_at = ?, nudged = 0 "
        f"WHERE {among} RETURNING run_id, token",
        (owner, lease_until, *ids),
    )
    among, ids = tx.among("id", chosen)
    await tx.send(
        "UPDATE runs SET status = 'running', updated_at = ?, started_at = coalesce(started_at, ?) "
        f"WHERE {among} AND {tx.unindexed('status')} IN ('pending', 'waiting')",
        (now, now, *ids),
    )
    run_rows = await tx.later(f"SELECT {RUN_COLUMNS} FROM runs WHERE {among}", ids)
    known = known or {}
    kept = [run_id for run_id in chosen if run_id in known]
    read = [run_id for run_id in chosen if run_id not in known] if kept else chosen
    step_rows = await tx.later(*_steps_of(tx, read)) if read else None
    last_rows = await tx.later(*_last_seqs_of(tx, kept)) if kept else None
    signal_rows = await tx.later(*_signals_of(tx, chosen))
    tokens: dict[str, int] = {run_id: token for run_id, token in await leased.rows()}
    runs = {row[0]: run_from_row(row) for row in await run_rows.rows()}
    histories = _histories(await step_rows.rows()) if step_rows is not None else {}
    current: set[str] = set()
    if last_rows is not None:
        for run_id, last_seq in await last_rows.rows():
            was = known[run_id]
            if tokens.get(run_id) == was.token + 1 and last_seq == was.last_seq:
                current.add(run_id)
    signals = _signals(await signal_rows.rows())
    stale = [run_id for run_id in kept if run_id not in current]
    if stale:
        histories.update(await fetch_steps(tx, stale))
    return [
        Claim(
            run=runs[run_id],
            fence=Fence(run_id, owner, tokens[run_id]),
            history=histories.get(run_id, {}),
            signals=signals.get(run_id, []),
            kept=run_id in current,
        )
        for run_id in chosen
        if run_id in runs
    ]


async def fetch_run(tx: Tx, run_id: str) -> RunRecord | None:
    """One run, without its history."""
    row = await tx.one(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
    return None if row is None else run_from_row(row)


async def fetch_steps(tx: Tx, run_ids: Sequence[str]) -> dict[str, dict[int, StepRecord]]:
    """The history of each run, by seq."""
    return _histories(await tx.all(*_steps_of(tx, run_ids)))


def _steps_of(tx: Tx, run_ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    among, ids = tx.among("run_id", run_ids)
    return f"SELECT {STEP_COLUMNS} FROM steps WHERE {among}", ids


def _last_seqs_of(tx: Tx, run_ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    """(run id, last position of its history or 0) of each run: one index probe per run."""
    among, ids = tx.among("id", run_ids)
    return (
        "SELECT id, coalesce((SELECT max(seq) FROM steps WHERE steps.run_id = runs.id), 0) "
        f"FROM runs WHERE {among}",
        ids,
    )


def _histories(rows: list[Any]) -> dict[str, dict[int, StepRecord]]:
    out: dict[str, dict[int, StepRecord]] = {}
    for row in rows:
        step = StepRecord(
            run_id=row[0],
            seq=row[1],
            kind=StepKind(row[2]),
            name=row[3],
            status=StepStatus(row[4]),
            output=decode(row[5]),
            error=decode(row[6]),
            attempts=row[7],
            wake_at=row[8],
            started_at=row[9],
            completed_at=row[10],
        )
        out.setdefault(step.run_id, {})[step.seq] = step
    return out


async def fetch_signals(tx: Tx, run_ids: Sequence[str]) -> dict[str, list[SignalRecord]]:
    """The signals each run has not consumed yet, oldest first."""
    return _signals(await tx.all(*_signals_of(tx, run_ids)))


def _signals_of(tx: Tx, run_ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    among, ids = tx.among("run_id", run_ids)
    return (
        "SELECT id, run_id, name, payload, created_at FROM signals "
        f"WHERE consumed_seq IS NULL AND {among} ORDER BY id",
        ids,
    )


def _signals(rows: list[Any]) -> dict[str, list[SignalRecord]]:
    out: dict[str, list[SignalRecord]] = {}
    for row in rows:
        out.setdefault(row[1], []).append(
            SignalRecord(
                id=row[0], run_id=row[1], name=row[2], payload=decode(row[3]), created_at=row[4]
            )
        )
    return out


#: Which runs :func:`close_unstarted` closes: those no worker ever started, or (with
#: ``SET_ASIDE``) those quarantined, which no worker will take either.
UNSTARTED = "r.started_at IS NULL AND r.status = 'pending'"
SET_ASIDE = f"j.blocked = {QUARANTINED} AND r.status = 'pending'"


async def close_unstarted(
    tx: Tx, run_ids: Sequence[str], now: float, error: bytes, which: str = UNSTARTED
) -> list[str]:
    """Cancel at once those of ``run_ids`` that no worker ever started or holds; their ids.

    Such a run has no history and nothing to undo, so no worker needs to claim it first (a
    run queued behind a concurrency key might otherwise wait for a slot to be cancelled).
    ``which=SET_ASIDE`` closes the quarantined runs instead: a worker that took one to run
    its cancellation would likely crash on it again.
    """
    if not run_ids:
        return []
    among, ids = tx.among("j.run_id", run_ids)
    rows = await tx.all(
        "SELECT j.run_id FROM jobs j JOIN runs r ON r.id = j.run_id WHERE j.owner IS NULL "
        f"AND {which} AND {among} ORDER BY j.run_id" + tx.lock("FOR UPDATE OF j"),
        ids,
    )
    closing = [row[0] for row in rows]
    if not closing:
        return []
    among, ids = tx.among("run_id", closing)
    await tx.execute(f"DELETE FROM jobs WHERE {among}", ids)
    await tx.execute(
        f"UPDATE trigger_runs SET closed_at = ? WHERE closed_at IS NULL AND {among}", (now, *ids)
    )
    among, ids = tx.among("id", closing)
    closed = await tx.all(
        "UPDATE runs SET status = 'cancelled', error = ?, completed_at = ?, updated_at = ?, "
        f"cancel_requested = 1, paused = NULL, paused_at = NULL WHERE {among} "
        "AND status = 'pending' RETURNING parent_id, concurrency_key",
        (error, now, now, *ids),
    )
    for parent_id, key in closed:
        await unblock(tx, parent_id, key, now)
    return closing


# Finishing a run on PostgreSQL in one round trip: its job goes (the fence), the run closes,
# its event subscriptions go and its trigger key is freed; the answer carries what the rollups
# need (one row per final step). Every part is keyed on the deleted job, so a refused fence
# changes nothing. SQLite has no writable CTEs: one statement each.
_FINISH_IN_ONE = (
    "WITH job AS (DELETE FROM jobs WHERE run_id = ? AND owner = ? AND token = ? "
    "RETURNING run_id), "
    "run AS (UPDATE runs SET status = ?, output = ?, error = ?, completed_at = ?, "
    "updated_at = ?, paused = NULL WHERE id IN (SELECT run_id FROM job) AND status = ANY(?) "
    "RETURNING id, parent_id, concurrency_key, workflow, version, created_at, started_at), "
    "subs AS (DELETE FROM subscriptions WHERE run_id IN (SELECT run_id FROM job) RETURNING id), "
    "filters AS (DELETE FROM subscription_filters "
    "WHERE subscription_id IN (SELECT id FROM subs)), "
    "keys AS (UPDATE trigger_runs SET closed_at = ? "
    "WHERE run_id IN (SELECT run_id FROM job) AND closed_at IS NULL) "
    "SELECT (SELECT count(*) FROM job), (SELECT count(*) FROM run), r.parent_id, "
    "r.concurrency_key, r.workflow, r.version, r.created_at, r.started_at, "
    f"{', '.join(f's.{c}' for c in STEP_FIELDS.split(', '))} "
    "FROM (SELECT 1) AS one LEFT JOIN run r ON true LEFT JOIN steps s ON s.run_id = r.id "
    "AND s.kind = 'step' AND s.status IN ('completed', 'failed')"
)


async def finish(
    tx: Tx,
    fence: Fence,
    status: RunStatus,
    output: bytes | None,
    error: bytes | None,
    now: float,
    sources: Sequence[str],
    reason: tuple[str, str] | None = None,
) -> None:
    """Close a run under its fence (``LeaseLostError``, ``RunStateError``) and what hangs on it.

    The run is added to the rollups (see :mod:`opsloom.store.rollup`) in the same
    transaction; ``reason`` is its failure's (type, normalised message), None if it completed.
    """
    closed: tuple[Any, ...] | None
    steps: list[FinishedStep] = []
    if tx.dialect == "postgres":
        job = (fence.run_id, fence.owner, fence.token)
        rows = await tx.all(
            _FINISH_IN_ONE, (*job, str(status), output, error, now, now, list(sources), now)
        )
        jobs, runs = rows[0][0], rows[0][1]
        if jobs != 1:
            raise LeaseLostError(f"lease on run {fence.run_id!r} lost: write rejected")
        closed = tuple(rows[0][2:8]) if runs == 1 else None
        steps = [FinishedStep(*row[8:]) for row in rows if row[8] is not None]
    else:
        # The run is closed before its job goes, so that a refusal (lease lost, or a run that
        # is no longer open) leaves nothing written: the writer passes clean refusals on
        # without rolling the batch back.
        job = (fence.run_id, fence.owner, fence.token)
        among, params = tx.among("status", sources)
        closed = await tx.one(
            "UPDATE runs SET status = ?, output = ?, error = ?, completed_at = ?, updated_at = ?, "
            f"paused = NULL WHERE id = ? AND {among} AND EXISTS (SELECT 1 FROM jobs "
            "WHERE run_id = ? AND owner = ? AND token = ?) RETURNING parent_id, "
            "concurrency_key, workflow, version, created_at, started_at",
            (str(status), output, error, now, now, fence.run_id, *params, *job),
        )
        if closed is None:
            held = await tx.one(
                "SELECT 1 FROM jobs WHERE run_id = ? AND owner = ? AND token = ?", job
            )
            if held is None:
                raise LeaseLostError(f"lease on run {fence.run_id!r} lost: write rejected")
        else:
            await tx.execute("DELETE FROM jobs WHERE run_id = ?", (fence.run_id,))
            await tx.execute(
                "DELETE FROM subscription_filters WHERE subscription_id IN "
                "(SELECT id FROM subscriptions WHERE run_id = ?)",
                (fence.run_id,),
            )
            await tx.execute("DELETE FROM subscriptions WHERE run_id = ?", (fence.run_id,))
            await tx.execute(
                "UPDATE trigger_runs SET closed_at = ? WHERE run_id = ? AND closed_at IS NULL",
                (now, fence.run_id),
            )
            rows = await tx.all(FINISHED_STEPS, (fence.run_id,))
            steps = [FinishedStep(*row) for row in rows]
    if closed is None:
        # PostgreSQL's statement deleted the job: a refused operation is rolled back there.
        raise RunStateError(f"run {fence.run_id!r} cannot become {status}")
    parent_id, key, workflow, version, created_at, started_at = closed
    finished = Finished(workflow, version, str(status), created_at, started_at, now, steps, reason)
    await roll_up(tx, finished, shard_of(fence.owner))
    await unblock(tx, parent_id, key, now)
