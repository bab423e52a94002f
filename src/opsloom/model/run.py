"""Runs, steps and their statuses; the allowed status transitions are defined here, once."""

from __future__ import annotations

import functools
import traceback as tb
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from opsloom.clock import to_datetime


class RunStatus(StrEnum):
    """Lifecycle of a run: pending → running → (waiting ↔ running)* → a terminal status."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
)
ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING})
#: Not a status but a state on top of one (a quarantined run stays ``pending``): listings take
#: it where they take a status, for the runs set aside until an operator requeues them.
QUARANTINED_STATUS = "quarantined"

#: Every allowed transition. ``running → pending`` is a recovery (lease expired or released).
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset(
        {RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.TIMED_OUT, RunStatus.FAILED}
    ),
    RunStatus.RUNNING: frozenset({RunStatus.WAITING, RunStatus.PENDING} | TERMINAL),
    RunStatus.WAITING: frozenset({RunStatus.RUNNING, RunStatus.PENDING} | TERMINAL),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset({RunStatus.PENDING}),  # an operator's retry
    RunStatus.CANCELLED: frozenset(),
    RunStatus.TIMED_OUT: frozenset({RunStatus.PENDING}),  # an operator's retry
}


def can_transition(old: RunStatus, new: RunStatus) -> bool:
    """Whether a run may move from ``old`` to ``new``."""
    return new in TRANSITIONS[old]


@functools.cache
def sources_of(new: RunStatus) -> tuple[str, ...]:
    """The statuses from which ``new`` may be reached (for guarded SQL updates)."""
    return tuple(sorted(old.value for old, targets in TRANSITIONS.items() if new in targets))


class StepKind(StrEnum):
    """What a history entry records."""

    STEP = "step"
    SLEEP = "sleep"
    SIGNAL = "signal"
    CHILD = "child"
    VALUE = "value"  # now(), uuid(), random(): recorded so replay is deterministic
    COMPENSATION = "compensation"


class StepStatus(StrEnum):
    """State of one history entry."""

    COMPLETED = "completed"
    FAILED = "failed"
    WAITING = "waiting"  # a timer, a signal wait or a child run is open
    RETRYING = "retrying"  # an attempt failed; the next one is due at ``wake_at``


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A stored error: its type name, message and traceback."""

    type: str
    message: str
    traceback: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_exception(cls, exc: BaseException, **data: Any) -> ErrorInfo:
        text = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
        return cls(type=type(exc).__name__, message=str(exc), traceback=text, data=dict(data))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
        }
        if self.data:
            out["data"] = self.data
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ErrorInfo:
        return cls(
            type=str(raw.get("type", "Error")),
            message=str(raw.get("message", "")),
            traceback=str(raw.get("traceback", "")),
            data=dict(raw.get("data") or {}),
        )


@dataclass(slots=True)
class StepRecord:
    """One entry of a run's history."""

    run_id: str
    seq: int
    kind: StepKind
    name: str
    status: StepStatus
    output: Any = None
    error: dict[str, Any] | None = None
    attempts: int = 1
    wake_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    #: ``output`` already encoded as JSON, when the engine has it (saves encoding twice).
    encoded: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": str(self.kind),
            "name": self.name,
            "status": str(self.status),
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "wake_at": _iso(self.wake_at),
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
        }


@dataclass(slots=True)
class SignalRecord:
    """A signal sent to a run, kept until a ``wait_for`` consumes it."""

    id: int
    run_id: str
    name: str
    payload: Any
    created_at: float
    consumed_seq: int | None = None


@dataclass(slots=True)
class RunRecord:
    """A run as stored."""

    id: str
    workflow: str
    version: str
    status: RunStatus
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    parent_id: str | None = None
    priority: int = 0
    concurrency_key: str | None = None
    deadline: float | None = None
    cancel_requested: bool = False
    recovered: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    updated_at: float = 0.0
    completed_at: float | None = None
    #: The event that started the run (a trigger's), by its producer's source and id.
    event_source: str | None = None
    event_id: str | None = None
    #: The W3C trace context the run continues, when it was started from one.
    traceparent: str | None = None
    #: Who started the run: a user, ``trigger:<id>``, ``schedule:<id>`` (children inherit it).
    started_by: str | None = None
    #: Who paused the run, while it is paused: ``"run"`` (the run alone) or ``"workflow"``.
    paused: str | None = None
    paused_at: float | None = None
    #: The run this one was reset from, and the position it re-executes from.
    reset_of: str | None = None
    reset_to: int | None = None
    #: When the run was set aside for crashing its workers again and again (it is not claimed
    #: until requeued); None otherwise.
    quarantined_at: float | None = None
    #: Labels (search attributes): given at start or set by the run with ``ctx.set_labels``.
    labels: dict[str, str] = field(default_factory=dict)
    steps: list[StepRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape used by the API and ``--json`` CLI output."""
        return {
            "id": self.id,
            "workflow": self.workflow,
            "version": self.version,
            "status": str(self.status),
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "parent_id": self.parent_id,
            "priority": self.priority,
            "concurrency_key": self.concurrency_key,
            "deadline": _iso(self.deadline),
            "cancel_requested": self.cancel_requested,
            "recovered": self.recovered,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "updated_at": _iso(self.updated_at),
            "completed_at": _iso(self.completed_at),
            "event_source": self.event_source,
            "event_id": self.event_id,
            "traceparent": self.traceparent,
            "started_by": self.started_by,
            "paused": self.paused,
            "paused_at": _iso(self.paused_at),
            "reset_of": self.reset_of,
            "reset_to": self.reset_to,
            "quarantined_at": _iso(self.quarantined_at),
            "labels": dict(self.labels),
            "steps": [s.to_dict() for s in self.steps],
        }

    @property
    def created(self) -> datetime | None:
        return to_datetime(self.created_at)


def _iso(ts: float | None) -> str | None:
    value = to_datetime(ts)
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class Fence:
    """Proof of ownership of a run's job: the worker id and the lease token it was given."""

    run_id: str
    owner: str
    token: int


@dataclass(frozen=True, slots=True)
class NewRun:
    """Everything needed to create a run (and its first job)."""

    id: str
    workflow: str
    version: str
    input: bytes  # JSON, already validated by the caller
    priority: int = 0
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    deadline: float | None = None
    parent_id: str | None = None
    parent_seq: int | None = None
    #: The W3C trace context the run continues (see :mod:`opsloom.model.tracecontext`).
    traceparent: str | None = None
    #: Who started the run (see :attr:`RunRecord.started_by`).
    started_by: str | None = None
    #: A reset: the run whose history before position ``reset_to`` this one starts with.
    reset_of: str | None = None
    reset_to: int | None = None
    #: Labels the run starts with, as checked ``(key, value)`` pairs.
    labels: tuple[tuple[str, str], ...] = ()
