"""Dialect-neutral rows: column lists, insert parameters and row mapping shared by the stores.

Each dialect keeps its own SQL text (placeholders, locking); what a row holds and how it maps
to the model is defined once, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opsloom.codec import decode, encode
from opsloom.model import RunRecord, RunStatus, StepRecord
from opsloom.model.run import NewRun

RUN_COLUMNS = (
    "id, workflow, version, status, input, output, error, parent_id, priority, "
    "concurrency_key, deadline, cancel_requested, recovered, created_at, started_at, "
    "updated_at, completed_at, event_source, event_id, traceparent, started_by, paused, paused_at, "
    "reset_of, reset_to, quarantined_at"
)
STEP_COLUMNS = (
    "run_id, seq, kind, name, status, output, error, attempts, wake_at, started_at, completed_at"
)
#: Columns of a new run, in the order of ``run_insert_params``.
RUN_INSERT_COLUMNS = (
    "id, workflow, version, status, input, parent_id, parent_seq, priority, concurrency_key, "
    "concurrency_limit, deadline, created_at, started_at, updated_at, traceparent, started_by, "
    "paused, paused_at, reset_of, reset_to"
)
#: Columns of a new job, in the order of ``job_insert_params``.
JOB_INSERT_COLUMNS = (
    "run_id, kind, priority, available_at, owner, token, lease_expires_at, concurrency_key, "
    "concurrency_limit, blocked"
)
#: ``jobs.blocked``: 0 ready when due; 1 held back by its concurrency key; 2 paused;
#: 3 quarantined (it crashed its workers too often: only an operator's requeue frees it).
BLOCKED_BY_KEY = 1
PAUSED = 2
QUARANTINED = 3


def run_insert_params(
    new: NewRun, now: float, lease: tuple[str, float] | None, paused: bool = False
) -> tuple[Any, ...]:
    """A new run: pending, or already running when created under a lease; ``paused`` when its
    workflow is paused (never under a lease)."""
    return (
        new.id,
        new.workflow,
        new.version,
        "pending" if lease is None else "running",
        new.input,
        new.parent_id,
        new.parent_seq,
        new.priority,
        new.concurrency_key,
        new.concurrency_limit,
        new.deadline,
        now,
        None if lease is None else now,
        now,
        new.traceparent,
        new.started_by,
        "workflow" if paused else None,
        now if paused else None,
        new.reset_of,
        new.reset_to,
    )


def new_run_record(
    new: NewRun, now: float, lease: tuple[str, float] | None, paused: bool = False
) -> RunRecord:
    """The run just inserted with ``run_insert_params``, without reading it back."""
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
        traceparent=new.traceparent,
        started_by=new.started_by,
        paused="workflow" if paused else None,
        paused_at=now if paused else None,
        reset_of=new.reset_of,
        reset_to=new.reset_to,
        labels=dict(new.labels),
    )


def job_insert_params(
    new: NewRun,
    now: float,
    lease: tuple[str, float] | None,
    paused: bool = False,
    available_at: float | None = None,
) -> tuple[Any, ...]:
    """The job of a new run, ready at ``available_at`` (default ``now``); under a lease it is
    claimed with token 1 and already admitted."""
    owner, until = lease if lease is not None else (None, None)
    return (
        new.id,
        f"{new.workflow}@{new.version}",
        new.priority,
        now if available_at is None else available_at,
        owner,
        0 if lease is None else 1,
        until,
        new.concurrency_key if new.concurrency_limit and lease is None else None,
        new.concurrency_limit,
        PAUSED if paused else 0,
    )


def step_params(step: StepRecord) -> tuple[Any, ...]:
    """A history entry in ``STEP_COLUMNS`` order."""
    return (
        step.run_id,
        step.seq,
        str(step.kind),
        step.name,
        str(step.status),
        step.encoded
        if step.encoded is not None
        else (None if step.output is None else encode(step.output)),
        None if step.error is None else encode(step.error),
        step.attempts,
        step.wake_at,
        step.started_at,
        step.completed_at,
    )


def run_from_row(row: Sequence[Any]) -> RunRecord:
    """A run from a row selected with ``RUN_COLUMNS``."""
    return RunRecord(
        id=row[0],
        workflow=row[1],
        version=row[2],
        status=RunStatus(row[3]),
        input=decode(row[4]),
        output=decode(row[5]),
        error=decode(row[6]),
        parent_id=row[7],
        priority=row[8],
        concurrency_key=row[9],
        deadline=row[10],
        cancel_requested=bool(row[11]),
        recovered=row[12],
        created_at=row[13],
        started_at=row[14],
        updated_at=row[15],
        completed_at=row[16],
        event_source=row[17],
        event_id=row[18],
        traceparent=row[19],
        started_by=row[20],
        paused=row[21],
        paused_at=row[22],
        reset_of=row[23],
        reset_to=row[24],
        quarantined_at=row[25],
    )


def step_order(step: StepRecord) -> tuple[int, int]:
    """History order for display: compensation steps (negative seqs) come last."""
    return (1, -step.seq) if step.seq < 0 else (0, step.seq)


#: Take singleton (name, owner, expires_at) unless another owner holds it past ``now`` (4th
#: parameter); returns a row only when the caller holds it afterwards. Same text in both
#: dialects once placeholders are adapted.
SINGLETON_UPSERT = (
    "INSERT INTO singletons (name, owner, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
    "WHERE singletons.owner = excluded.owner OR singletons.expires_at < ? "
    "RETURNING owner"
)
