"""How an approval request moves: pure functions from a stored state to the next one.

Each operation (vote, ask, answer, delegate, the SLA, cancel) returns a change function for
``Store.change_approval``, which applies it to the state it has just read under a lock and
stores the result in the same transaction. The functions check everything first and raise an
:class:`~opsloom.approvals.spec.ApprovalError` to refuse, so a refusal writes nothing.

Rules:

- Only the stage's current approvers (users, members of its groups) and their delegates may
  decide; the requester never may (separation of duties); one vote per person per stage.
- Any denial denies the stage and ends the request with its comment as the reason.
- ``any``: the first approval approves the stage; quorum ``n``: ``n`` distinct approvals;
  ``all``: every named user (or their delegate) and one member of every named group, one
  vote standing for one of them (a person in two groups covers one).
- With ``distinct_approvers``, nobody decides more than one stage of a request; the person
  who started the run never decides unless the request sets ``starter_may_decide``.
- A stage's phase is done when all its stages are approved; then the next phase opens, and
  after the last one the request is approved.
- A question pauses the stage (no votes, no SLA clock) until the requester answers: its
  deadline moves on by the time the question was open.
- A delegate decides in the place of what the approver who delegated stood for: a named
  user's delegate as ``user:<id>``, a group member's as the group(s) the member stood for, so
  in ``all`` a delegate completes the delegator's group. Handing the task on again passes that
  same part on (and the first approver stays the one acted for); the one who delegated no
  longer decides. The stage keeps ``delegations`` (delegate → first approver, a user id, as
  stored before parts were recorded) and beside it ``delegated_as`` (delegate → part); a
  delegate with no part recorded (a delegation stored before) decides as ``user:<approver>``.
- At the deadline the next rung of the ladder takes over with a new SLA (the earlier rung and
  its delegates can no longer decide; votes already cast still count); after the last rung
  ``on_sla`` denies or approves (by ``sla``) or the stage waits on without a deadline.
"""

from __future__ import annotations

from typing import Any

from opsloom.approvals.spec import (
    ApprovalConflictError,
    ApprovalForbiddenError,
    ApprovalNotFoundError,
    ApprovalOutcome,
    Approvers,
    InvalidApprovalError,
    Stage,
)
from opsloom.model.approval import (
    ApprovalChange,
    ApprovalClarificationRow,
    ApprovalRequestRow,
    ApprovalStageRow,
    ApprovalState,
    ApprovalVoteRow,
    ChangeFn,
    RequestStatus,
    StageStatus,
)

#: ``decided_by`` of what the SLA decides, and of a request its policy needed no stage for.
SLA_ACTOR = "sla"
POLICY_ACTOR = "policy"
#: ``decided_by`` of a request withdrawn because its run was cancelled or failed.
RUN_ACTOR = "run"
ACTIVE = (StageStatus.OPEN, StageStatus.CLARIFYING)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def new_state(
    request_id: str,
    run_id: str | None,
    header: dict[str, Any],
    stages: tuple[Stage, ...],
    now: float,
) -> ApprovalState:
    """A new request, first phase open.

    ``header``: title, requester, subject, risk, impact; ``started_by`` (the run's recorded
    starter) and the options ``starter_may_decide`` and ``distinct_approvers``.
    """
    request = ApprovalRequestRow(
        id=request_id,
        run_id=run_id,
        title=str(header["title"]),
        requester=str(header["requester"]),
        subject=header.get("subject"),
        risk=_text(header.get("risk")),
        impact=_text(header.get("impact")),
        status=RequestStatus.PENDING,
        decided_by=None,
        reason=None,
        created_at=now,
        decided_at=None,
        updated_at=now,
        started_by=_text(header.get("started_by")),
        starter_may_decide=bool(header.get("starter_may_decide")),
        distinct_approvers=bool(header.get("distinct_approvers")),
    )
    rows: list[ApprovalStageRow] = []
    phase = -1
    for position, stage in enumerate(stages):
        if not (stage.parallel and rows):
            phase += 1
        ladder = [Approvers(stage.users, stage.groups), *stage.escalate_to]
        rows.append(
            ApprovalStageRow(
                id=f"{request_id}.{position}",
                request_id=request_id,
                position=position,
                name=stage.name,
                phase=phase,
                mode="quorum" if isinstance(stage.mode, int) else stage.mode,
                quorum=stage.mode if isinstance(stage.mode, int) else 1,
                ladder=[rung.to_dict() for rung in ladder],
                level=0,
                sla=stage.sla,
                on_sla=stage.on_sla,
                status=StageStatus.WAITING,
                opened_at=None,
                deadline=None,
                paused_at=None,
                escalations=0,
                delegations={},
                decided_at=None,
                decided_by=None,
                comment=None,
            )
        )
    state = ApprovalState(request, rows)
    _advance(state, now, None)
    return state


def _advance(state: ApprovalState, now: float, last: ApprovalStageRow | None) -> None:
    """Open the next phase when the current one is done; approve the request after the last.

    ``last`` is the stage just approved: its decision is the request's when it was the last.
    """
    request = state.request
    if request.status != RequestStatus.PENDING:
        return
    if any(s.status in ACTIVE for s in state.stages):
        return
    waiting = [s for s in state.stages if s.status == StageStatus.WAITING]
    if not waiting:
        request.status = RequestStatus.APPROVED
        request.decided_by = POLICY_ACTOR if last is None else last.decided_by
        request.reason = None if last is None else last.comment
        request.decided_at = now
        request.updated_at = now
        return
    phase = min(s.phase for s in waiting)
    for stage in waiting:
        if stage.phase == phase:
            stage.status = StageStatus.OPEN
            stage.opened_at = now
            stage.deadline = None if stage.sla is None else now + stage.sla


def _deny(state: ApprovalState, stage: ApprovalStageRow, by: str, reason: str, now: float) -> None:
    stage.status = StageStatus.DENIED
    stage.decided_by = by
    stage.decided_at = now
    stage.comment = reason
    for other in state.stages:
        if other.status in (*ACTIVE, StageStatus.WAITING):
            other.status = StageStatus.CANCELLED
    request = state.request
    request.status = RequestStatus.DENIED
    request.decided_by = by
    request.reason = reason
    request.decided_at = now
    request.updated_at = now


def _stage(state: ApprovalState, stage_id: str) -> ApprovalStageRow:
    stage = state.stage(stage_id)
    if stage is None:
        raise ApprovalNotFoundError(f"no approval task {stage_id!r}")
    return stage


def _must_be_pending(state: ApprovalState) -> None:
    if state.request.status != RequestStatus.PENDING:
        raise ApprovalConflictError(
            f"approval request {state.request.id} is already {state.request.status}"
        )


def standing(
    state: ApprovalState, stage: ApprovalStageRow, user: str, groups: frozenset[str]
) -> str:
    """What ``user`` may decide this stage as (``user:<id>`` or ``group:<a>,group:<b>``).

    Raises:
        ApprovalForbiddenError: the requester, the starter of the run (unless the request
            allows it), someone who decided another stage of a request that wants distinct
            approvers, someone who delegated the task, or someone who is neither an approver
            of the current level nor a delegate.
    """
    request = state.request
    if user == request.requester:
        raise ApprovalForbiddenError(
            f"{user} requested this approval and may not decide it (separation of duties)"
        )
    if user == request.started_by and not request.starter_may_decide:
        raise ApprovalForbiddenError(
            f"{user} started run {request.run_id} and may not decide its approvals "
            "(separation of duties)"
        )
    if request.distinct_approvers and any(
        v.voter == user and v.stage_id != stage.id for v in state.votes
    ):
        raise ApprovalForbiddenError(
            f"{user} has decided another stage of request {request.id}, which needs a "
            "distinct approver for each stage"
        )
    if user in stage.delegations:
        # What the approver stood for when handing the task on; before parts were recorded
        # only their user id was kept.
        return stage.delegated_as.get(user, f"user:{stage.delegations[user]}")
    if user in stage.delegations.values():
        delegate = next(k for k, v in stage.delegations.items() if v == user)
        raise ApprovalForbiddenError(f"{user} delegated task {stage.id} to {delegate}")
    approvers = stage.approvers
    if user in approvers["users"]:
        return f"user:{user}"
    matched = sorted(groups & set(approvers["groups"]))
    if matched:
        return ",".join(f"group:{g}" for g in matched)
    raise ApprovalForbiddenError(f"task {stage.id} is not assigned to {user} or their groups")


def _satisfied(stage: ApprovalStageRow, votes: list[ApprovalVoteRow]) -> bool:
    approvals = [v for v in votes if v.stage_id == stage.id and v.approve]
    if stage.mode == "any":
        return bool(approvals)
    if stage.mode == "quorum":
        return len({v.voter for v in approvals}) >= stage.quorum
    approvers = stage.approvers
    needed = {f"user:{u}" for u in approvers["users"]} | {f"group:{g}" for g in approvers["groups"]}
    # One vote stands for one user or one group: a person in two named groups covers one of
    # them, so ``all`` still needs a distinct person per group.
    options = [
        {part for part in (v.on_behalf_of or "").split(",") if part in needed} for v in approvals
    ]
    return _matched(options, needed) == len(needed)


def _matched(options: list[set[str]], needed: set[str]) -> int:
    """The most parts of ``needed`` covered when each vote covers one of its ``options``."""
    holder: dict[str, int] = {}

    def place(vote: int, seen: set[str]) -> bool:
        for part in options[vote]:
            if part in seen:
                continue
            seen.add(part)
            if part not in holder or place(holder[part], seen):
                holder[part] = vote
                return True
        return False

    return sum(place(vote, set()) for vote in range(len(options)))


def vote(
    user: str, groups: frozenset[str], stage_id: str, approve: bool, comment: str | None, now: float
) -> ChangeFn:
    """Record a decision of ``user`` on a task; evaluate the stage and the request."""

    def change(state: ApprovalState) -> ApprovalChange:
        _must_be_pending(state)
        stage = _stage(state, stage_id)
        as_ = standing(state, stage, user, groups)
        if stage.status == StageStatus.CLARIFYING:
            raise ApprovalConflictError(
                f"task {stage.id} waits for the requester's answer to a question"
            )
        if stage.status != StageStatus.OPEN:
            raise ApprovalConflictError(f"task {stage.id} is {stage.status}, not open")
        if any(v.stage_id == stage.id and v.voter == user for v in state.votes):
            raise ApprovalConflictError(f"{user} has already decided task {stage.id}")
        if not approve and not (comment or "").strip():
            raise InvalidApprovalError("a denial needs a reason: give a comment saying why")
        new = ApprovalVoteRow(stage.id, state.request.id, user, approve, comment, as_, now)
        state.votes.append(new)
        state.request.updated_at = now
        action = "approval.approved" if approve else "approval.denied"
        notes = [(user, action, {"task": stage.id, "stage": stage.name, "comment": comment})]
        if not approve:
            _deny(state, stage, user, comment or "", now)
        elif _satisfied(stage, state.votes):
            stage.status = StageStatus.APPROVED
            stage.decided_by = user
            stage.decided_at = now
            stage.comment = comment
            _advance(state, now, stage)
        else:
            return ApprovalChange(state, [new], signal=False, notes=notes)
        return ApprovalChange(state, [new], signal=True, notes=notes)

    return change


def ask(user: str, groups: frozenset[str], stage_id: str, question: str, now: float) -> ChangeFn:
    """An approver asks the requester a question: the stage pauses until it is answered."""

    def change(state: ApprovalState) -> ApprovalChange:
        _must_be_pending(state)
        stage = _stage(state, stage_id)
        standing(state, stage, user, groups)
        if stage.status not in ACTIVE:
            raise ApprovalConflictError(f"task {stage.id} is {stage.status}, not open")
        if not question.strip():
            raise ApprovalConflictError("a question needs some text")
        count = sum(1 for c in state.clarifications if c.stage_id == stage.id)
        row = ApprovalClarificationRow(
            f"{stage.id}.q{count + 1}", state.request.id, stage.id, user, question, now
        )
        state.clarifications.append(row)
        if stage.status == StageStatus.OPEN:
            stage.status = StageStatus.CLARIFYING
            stage.paused_at = now
        state.request.updated_at = now
        notes = [(user, "approval.clarification_asked", {"task": stage.id, "question": question})]
        return ApprovalChange(state, signal=True, notes=notes, result=row.id)

    return change


def answer(user: str, text: str, now: float) -> ChangeFn:
    """The requester answers the open questions; the paused stages resume."""

    def change(state: ApprovalState) -> ApprovalChange:
        _must_be_pending(state)
        if user != state.request.requester:
            raise ApprovalForbiddenError(
                f"only the requester ({state.request.requester}) answers questions on "
                f"request {state.request.id}"
            )
        open_ = [c for c in state.clarifications if c.answer is None]
        if not open_:
            raise ApprovalConflictError(f"request {state.request.id} has no open question")
        for clarification in open_:
            clarification.answer = text
            clarification.answered_by = user
            clarification.answered_at = now
        for stage in state.stages:
            if stage.status == StageStatus.CLARIFYING:
                stage.status = StageStatus.OPEN
                if stage.deadline is not None and stage.paused_at is not None:
                    stage.deadline += now - stage.paused_at
                stage.paused_at = None
        state.request.updated_at = now
        notes = [(user, "approval.clarification_answered", {"questions": [c.id for c in open_]})]
        return ApprovalChange(state, signal=True, notes=notes)

    return change


def delegate(
    user: str, groups: frozenset[str], stage_id: str, to_user: str, now: float
) -> ChangeFn:
    """``user`` hands their part in a task to ``to_user`` (who then decides in their place)."""

    def change(state: ApprovalState) -> ApprovalChange:
        _must_be_pending(state)
        stage = _stage(state, stage_id)
        as_ = standing(state, stage, user, groups)
        if stage.status not in (*ACTIVE, StageStatus.WAITING):
            raise ApprovalConflictError(f"task {stage.id} is {stage.status}")
        if to_user == state.request.requester:
            raise ApprovalForbiddenError(
                f"{to_user} requested this approval; it cannot be delegated to them"
            )
        if to_user == user or to_user in stage.delegations:
            raise ApprovalConflictError(f"{to_user} already acts on task {stage.id}")
        if any(v.stage_id == stage.id and v.voter == user for v in state.votes):
            raise ApprovalConflictError(f"{user} has already decided task {stage.id}")
        # A delegate passing the task on hands over the original approver's part, which is
        # what the delegate stands for.
        origin = stage.delegations.pop(user, user)
        stage.delegated_as.pop(user, None)
        stage.delegations[to_user] = origin
        stage.delegated_as[to_user] = as_
        state.request.updated_at = now
        notes = [(user, "approval.delegated", {"task": stage.id, "to": to_user, "as": as_})]
        return ApprovalChange(state, signal=False, notes=notes)

    return change


def expire(now: float) -> ChangeFn:
    """Apply the SLA action of every stage whose deadline has passed."""

    def change(state: ApprovalState) -> ApprovalChange:
        notes: list[tuple[str, str, dict[str, Any]]] = []
        changed = False
        for stage in state.stages:
            while (
                state.request.status == RequestStatus.PENDING
                and stage.status == StageStatus.OPEN
                and stage.deadline is not None
                and stage.deadline <= now
                and _has_sla_action(stage)
            ):
                changed = True
                if stage.level + 1 < len(stage.ladder):
                    stage.level += 1
                    stage.escalations += 1
                    stage.delegations = {}  # the task moved up: earlier delegations lapse
                    stage.deadline += stage.sla or 0.0
                    stage.delegated_as = {}  # and the parts they stood for
                    notes.append(
                        (
                            SLA_ACTOR,
                            "approval.escalated",
                            {"task": stage.id, "level": stage.level, "to": stage.approvers},
                        )
                    )
                elif stage.on_sla == "deny":
                    reason = f"no decision on stage {stage.name!r} within its SLA"
                    notes.append((SLA_ACTOR, "approval.auto_denied", {"task": stage.id}))
                    _deny(state, stage, SLA_ACTOR, reason, now)
                elif stage.on_sla == "approve":
                    notes.append((SLA_ACTOR, "approval.auto_approved", {"task": stage.id}))
                    stage.status = StageStatus.APPROVED
                    stage.decided_by = SLA_ACTOR
                    stage.decided_at = now
                    stage.comment = f"approved automatically at the SLA of stage {stage.name!r}"
                    _advance(state, now, stage)
        if changed:
            state.request.updated_at = now
        return ApprovalChange(state, signal=changed, notes=notes)

    return change


def cancel(user: str, reason: str, now: float, *, admin: bool) -> ChangeFn:
    """The requester (or an admin) withdraws a pending request."""

    def change(state: ApprovalState) -> ApprovalChange:
        _must_be_pending(state)
        if user != state.request.requester and not admin:
            raise ApprovalForbiddenError(
                f"only the requester or an admin may cancel request {state.request.id}"
            )
        return _cancelled(state, user, reason, now)

    return change


def withdraw(reason: str, now: float) -> ChangeFn:
    """The run that asked is gone (cancelled, failed): a pending request is cancelled.

    A request that was decided already stays as it is.
    """

    def change(state: ApprovalState) -> ApprovalChange:
        if state.request.status != RequestStatus.PENDING:
            return ApprovalChange(state)
        return _cancelled(state, RUN_ACTOR, reason, now)

    return change


def _cancelled(state: ApprovalState, user: str, reason: str, now: float) -> ApprovalChange:
    for stage in state.stages:
        if stage.status in (*ACTIVE, StageStatus.WAITING):
            stage.status = StageStatus.CANCELLED
    request = state.request
    request.status = RequestStatus.CANCELLED
    request.decided_by = user
    request.reason = reason
    request.decided_at = now
    request.updated_at = now
    notes = [(user, "approval.cancelled", {"reason": reason})]
    return ApprovalChange(state, signal=True, notes=notes)


def _has_sla_action(stage: ApprovalStageRow) -> bool:
    # A deadline past the last rung without ``on_sla`` is kept (for the statistics) but
    # nothing happens at it: the stage waits on.
    return stage.sla is not None and (
        stage.level + 1 < len(stage.ladder) or stage.on_sla is not None
    )


def next_deadline(state: ApprovalState) -> float | None:
    """The earliest deadline of an open stage with an SLA action (a paused one has none)."""
    deadlines = [
        s.deadline
        for s in state.stages
        if s.status == StageStatus.OPEN and s.deadline is not None and _has_sla_action(s)
    ]
    return min(deadlines, default=None)


def stage_summary(state: ApprovalState, stage: ApprovalStageRow) -> dict[str, Any]:
    """A stage as JSON, with its votes."""
    return {
        "task": stage.id,
        "name": stage.name,
        "phase": stage.phase,
        "mode": stage.mode,
        "quorum": stage.quorum,
        "status": stage.status,
        "approvers": stage.approvers,
        "level": stage.level,
        "escalations": stage.escalations,
        "sla": stage.sla,
        "deadline": stage.deadline,
        "delegations": dict(stage.delegations),
        "decided_by": stage.decided_by,
        "decided_at": stage.decided_at,
        "comment": stage.comment,
        "votes": [
            {
                "voter": v.voter,
                "approve": v.approve,
                "comment": v.comment,
                "as": v.on_behalf_of,
                "at": v.voted_at,
            }
            for v in state.votes
            if v.stage_id == stage.id
        ],
    }


def outcome(state: ApprovalState) -> ApprovalOutcome | None:
    """How the request ended, or None while it is pending."""
    request = state.request
    if request.status == RequestStatus.PENDING:
        return None
    return ApprovalOutcome(
        request_id=request.id,
        approved=request.status == RequestStatus.APPROVED,
        status=request.status,
        decided_by=request.decided_by,
        reason=request.reason,
        stages=[stage_summary(state, s) for s in state.stages],
    )
