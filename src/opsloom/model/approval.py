"""Approval records: a request, its stages, votes, clarifications and links, and their statuses.

Pure data, shared by the approvals package (which computes changes) and the store (which
reads and writes them); see :mod:`opsloom.approvals.flow` for how a request moves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RequestStatus(StrEnum):
    """Lifecycle of an approval request: pending → approved | denied | cancelled."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"


class StageStatus(StrEnum):
    """Lifecycle of a stage: waiting → open (↔ clarifying) → approved | denied | cancelled.

    A stage waits for the stages of earlier phases, is open while its approvers decide, and is
    clarifying while a question to the requester is unanswered (its SLA clock is paused).
    """

    WAITING = "waiting"
    OPEN = "open"
    CLARIFYING = "clarifying"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class ApprovalRequestRow:
    """One approval request."""

    id: str
    run_id: str | None
    title: str
    requester: str
    subject: Any
    risk: str | None
    impact: str | None
    status: RequestStatus
    decided_by: str | None
    reason: str | None
    created_at: float
    decided_at: float | None
    updated_at: float
    #: Who started the run that asked (never trusted from the request's own fields).
    started_by: str | None = None
    #: The request allows the run's starter to decide it (off: separation of duties).
    starter_may_decide: bool = False
    #: Nobody decides more than one stage of the request.
    distinct_approvers: bool = False


@dataclass(slots=True)
class ApprovalStageRow:
    """One stage of a request: the task its approvers decide.

    ``ladder`` holds the approvers of each escalation level (``{"users": [...], "groups":
    [...]}``); ``level`` is the current one. ``delegations`` maps a delegate to the approver
    they act for (a user id: the first approver of a chain of delegations). ``delegated_as``
    maps the same delegate to the part they decide as, which is what that approver stood for
    when handing the task on: ``user:<id>`` for a named user, ``group:<a>[,group:<b>]`` for a
    member of the stage's groups. It is kept beside ``delegations`` rather than in it so that
    ``delegations`` keeps the shape it had before parts were recorded: a delegate found there
    without a part (a delegation stored before) decides as ``user:<approver>``, as it did then.
    """

    id: str
    request_id: str
    position: int
    name: str
    phase: int
    mode: str  # any | all | quorum
    quorum: int
    ladder: list[dict[str, list[str]]]
    level: int
    sla: float | None
    on_sla: str | None  # deny | approve | None (keep waiting)
    status: StageStatus
    opened_at: float | None
    deadline: float | None
    paused_at: float | None
    escalations: int
    delegations: dict[str, str]
    decided_at: float | None
    decided_by: str | None
    comment: str | None
    delegated_as: dict[str, str] = field(default_factory=dict)

    @property
    def approvers(self) -> dict[str, list[str]]:
        """The users and groups of the current escalation level."""
        return self.ladder[min(self.level, len(self.ladder) - 1)]


@dataclass(slots=True)
class ApprovalVoteRow:
    """A decision of one person on one stage."""

    stage_id: str
    request_id: str
    voter: str
    approve: bool
    comment: str | None
    on_behalf_of: str | None
    voted_at: float


@dataclass(slots=True)
class ApprovalClarificationRow:
    """A question of an approver to the requester, and its answer."""

    id: str
    request_id: str
    stage_id: str
    asked_by: str
    question: str
    asked_at: float
    answer: str | None = None
    answered_by: str | None = None
    answered_at: float | None = None


@dataclass(slots=True)
class ApprovalLinkRow:
    """A signed one-time link: only the hash of its token is stored."""

    token_hash: str
    request_id: str
    stage_id: str
    user: str
    approve: bool
    created_at: float
    expires_at: float
    used_at: float | None = None


@dataclass(slots=True)
class ApprovalState:
    """A request with everything that belongs to it."""

    request: ApprovalRequestRow
    stages: list[ApprovalStageRow]
    votes: list[ApprovalVoteRow] = field(default_factory=list)
    clarifications: list[ApprovalClarificationRow] = field(default_factory=list)

    def copy(self) -> ApprovalState:
        """A deep copy that a change may modify freely."""
        return copy.deepcopy(self)

    def stage(self, stage_id: str) -> ApprovalStageRow | None:
        """The stage with this id."""
        return next((s for s in self.stages if s.id == stage_id), None)


@dataclass(slots=True)
class ApprovalChange:
    """What a change function gives back: the new state and what happened.

    Attributes:
        state: the request as it must be stored.
        new_votes: votes to insert (never updated: one per stage and voter).
        signal: whether the waiting run must look again (a stage or the request changed).
        notes: ``(actor, action, data)`` for the audit log, appended after the commit.
        result: a value for the caller.
    """

    state: ApprovalState
    new_votes: list[ApprovalVoteRow] = field(default_factory=list)
    signal: bool = False
    notes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    result: Any = None


#: A pure function from the stored state to the change; raises an ``ApprovalError`` to refuse.
ChangeFn = Callable[[ApprovalState], ApprovalChange]
