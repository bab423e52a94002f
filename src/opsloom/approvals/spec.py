"""What an approval asks for and what it gives back: requests, stages, outcomes and errors.

A request goes through **stages**; each names its approvers (users and groups), a mode
(``"any"``: one approval; ``"all"``: every named user and one member of every named group;
an integer ``n``: a quorum of ``n`` distinct approvers), an SLA in seconds and what happens
when it passes: the next rung of ``escalate_to`` takes over (a new SLA starts), and once the
ladder is exhausted ``on_sla`` applies (``"deny"``, ``"approve"``, or None to keep waiting).
Stages run one after another; a stage with ``parallel=True`` runs at the same time as the one
before it. A denial in any stage ends the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsloom.errors import OpsloomError
from opsloom.model.approval import RequestStatus

if TYPE_CHECKING:
    from opsloom.model.decision import DecisionTable


class ApprovalError(OpsloomError):
    """An approval operation cannot be done."""

    code = "approval_error"


class InvalidApprovalError(ApprovalError):
    """An approval request or stage is not valid."""

    code = "invalid_approval"


class ApprovalNotFoundError(ApprovalError):
    """No approval request or task with that id exists."""

    code = "approval_not_found"


class ApprovalForbiddenError(ApprovalError):
    """This person may not do this on this request (not an approver, or the requester)."""

    code = "approval_forbidden"


class ApprovalConflictError(ApprovalError):
    """The request or task is not in a state that allows this (closed, already voted)."""

    code = "approval_conflict"


class ApprovalLinkError(ApprovalError):
    """A one-time approval link is invalid, expired or already used."""

    code = "approval_link_invalid"


class ApprovalDeniedError(ApprovalError):
    """An approval request was denied (raised only with ``raise_on_deny=True``)."""

    code = "approval_denied"

    def __init__(self, reason: str, outcome: ApprovalOutcome | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outcome = outcome


MODES = ("any", "all")
SLA_ACTIONS = ("deny", "approve")


def _names(value: Any, what: str) -> tuple[str, ...]:
    # Decision tables give strings; "a, b" is a list of two.
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidApprovalError(f"{what} must be a list of names, not {value!r}")


@dataclass(frozen=True, slots=True)
class Approvers:
    """Users and groups who may decide."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Approvers:
        """From ``{"users": [...], "groups": [...]}``."""
        return cls(_names(data.get("users"), "users"), _names(data.get("groups"), "groups"))

    def to_dict(self) -> dict[str, list[str]]:
        """As stored: ``{"users": [...], "groups": [...]}``."""
        return {"users": list(self.users), "groups": list(self.groups)}


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of an approval (see the module docstring)."""

    name: str
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    mode: str | int = "any"
    sla: float | None = None
    escalate_to: tuple[Approvers, ...] = ()
    on_sla: str | None = None
    parallel: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidApprovalError("a stage needs a name")
        if not self.users and not self.groups:
            raise InvalidApprovalError(f"stage {self.name!r} names no approver")
        if isinstance(self.mode, bool) or (
            not isinstance(self.mode, int) and self.mode not in MODES
        ):
            raise InvalidApprovalError(
                f"stage {self.name!r}: mode must be 'any', 'all' or a quorum number, "
                f"not {self.mode!r}"
            )
        if isinstance(self.mode, int) and self.mode < 1:
            raise InvalidApprovalError(f"stage {self.name!r}: a quorum must be at least 1")
        if self.sla is not None and self.sla <= 0:
            raise InvalidApprovalError(f"stage {self.name!r}: the SLA must be positive")
        if self.on_sla is not None and self.on_sla not in SLA_ACTIONS:
            raise InvalidApprovalError(
                f"stage {self.name!r}: on_sla must be 'deny' or 'approve', not {self.on_sla!r}"
            )
        if (self.escalate_to or self.on_sla) and self.sla is None:
            raise InvalidApprovalError(f"stage {self.name!r}: escalate_to and on_sla need an sla")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stage:
        """From a JSON object (a document's ``with``, a decision table's output row).

        Keys: ``name`` (or ``stage``), ``users``, ``groups`` (or ``approvers``: group names,
        a policy table's short form), ``mode`` (``any``, ``all``) or
        ``quorum`` (a number), ``sla`` (seconds), ``escalate_to`` (a list of ``{users,
        groups}``, or a list of group names: one group per rung), ``on_sla``, ``parallel``.
        """
        name = data.get("name", data.get("stage"))
        if not isinstance(name, str):
            raise InvalidApprovalError(f"a stage needs a name: {dict(data)!r}")
        mode: str | int = data.get("mode") or "any"
        if data.get("quorum") is not None:
            mode = int(data["quorum"])
        elif isinstance(mode, str) and mode.isdigit():
            mode = int(mode)
        ladder = []
        for rung in data.get("escalate_to") or ():
            if isinstance(rung, str):
                ladder.append(Approvers(groups=(rung,)))
            elif isinstance(rung, Mapping):
                ladder.append(Approvers.from_dict(rung))
            else:
                raise InvalidApprovalError(f"stage {name!r}: invalid escalate_to rung {rung!r}")
        sla = data.get("sla")
        return cls(
            name=name,
            users=_names(data.get("users"), "users"),
            groups=_names(data.get("groups", data.get("approvers")), "groups"),
            mode=mode,
            sla=None if sla is None else float(sla),
            escalate_to=tuple(ladder),
            on_sla=data.get("on_sla") or None,
            parallel=bool(data.get("parallel", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form :meth:`from_dict` reads."""
        return {
            "name": self.name,
            "users": list(self.users),
            "groups": list(self.groups),
            "mode": self.mode if isinstance(self.mode, str) else "quorum",
            "quorum": self.mode if isinstance(self.mode, int) else None,
            "sla": self.sla,
            "escalate_to": [rung.to_dict() for rung in self.escalate_to],
            "on_sla": self.on_sla,
            "parallel": self.parallel,
        }


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What :func:`~opsloom.approvals.approval.approval` asks for.

    Attributes:
        title: one line people see in their inbox.
        requester: the user asking (who may never approve it, and who answers questions).
        subject: data about what is to be approved (shown to approvers).
        risk / impact: attributes a policy decides on (``high``, ``0.8``, ``customer-facing``).
        stages: the path, when given directly.
        policy: a decision table whose output rows are the stages (given instead of
            ``stages``); it is evaluated as a recorded step on :meth:`policy_input`. No stage
            from the policy means nothing to approve: the request is approved at once, by
            ``policy``.
        starter_may_decide: the person who started the run may decide (off by default: the
            starter, as recorded on the run, never decides its own run's approvals).
        distinct_approvers: nobody decides more than one stage of this request.
    """

    title: str
    requester: str
    subject: Any = None
    risk: Any = None
    impact: Any = None
    stages: tuple[Stage, ...] = ()
    policy: DecisionTable | None = None
    starter_may_decide: bool = False
    distinct_approvers: bool = False

    def __post_init__(self) -> None:
        if not self.title or not self.requester:
            raise InvalidApprovalError("an approval request needs a title and a requester")
        if self.policy is None and not self.stages:
            raise InvalidApprovalError("an approval request needs stages or a policy")
        if self.policy is not None and self.stages:
            raise InvalidApprovalError("give an approval request stages or a policy, not both")
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise InvalidApprovalError(f"stage names repeat: {names}")

    def attributes(self) -> dict[str, Any]:
        """The request's header as stored: title, requester, subject, risk and impact."""
        return {
            "title": self.title,
            "requester": self.requester,
            "risk": self.risk,
            "impact": self.impact,
            "subject": self.subject,
        }

    def policy_input(self) -> dict[str, Any]:
        """What a policy decides on: the subject's fields (when it is an object), then the
        header (``title``, ``requester``, ``risk``, ``impact``, ``subject``) over them."""
        base = dict(self.subject) if isinstance(self.subject, Mapping) else {}
        return {**base, **self.attributes()}


def stages_from_output(output: Any) -> tuple[Stage, ...]:
    """Stages from a decision's output: a COLLECT list of rows, one row, or nothing."""
    if output is None:
        return ()
    rows = output if isinstance(output, list) else [output]
    stages: list[Stage] = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise InvalidApprovalError(f"a policy output row must be an object, not {row!r}")
        stage = Stage.from_dict(row)
        if any(s.name == stage.name for s in stages):
            continue  # two rules asking for the same stage: one stage
        stages.append(stage)
    return tuple(stages)


@dataclass(frozen=True, slots=True)
class ApprovalOutcome:
    """How a request ended.

    Attributes:
        request_id: the request.
        approved: whether it was approved.
        status: ``approved``, ``denied`` or ``cancelled``.
        decided_by: who made the final decision (``sla`` for an automatic one at the SLA,
            ``policy`` when nothing needed approving).
        reason: why it was denied or cancelled, or the comment of the final approval.
        stages: per stage: name, status, decided_by, comment, escalations and votes.
    """

    request_id: str
    approved: bool
    status: RequestStatus
    decided_by: str | None
    reason: str | None
    stages: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """As JSON (what the ``approval`` catalog function returns)."""
        return {
            "request_id": self.request_id,
            "approved": self.approved,
            "status": self.status.value,
            "decided_by": self.decided_by,
            "reason": self.reason,
            "stages": self.stages,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalOutcome:
        """From :meth:`to_dict`'s form."""
        return cls(
            data["request_id"],
            bool(data["approved"]),
            RequestStatus(data["status"]),
            data.get("decided_by"),
            data.get("reason"),
            list(data.get("stages") or []),
        )
