"""The pure approval rules of :mod:`opsloom.approvals.flow`: SLA actions, cancelling, signals."""

from __future__ import annotations

import pytest

from opsloom.approvals.flow import (
    SLA_ACTOR,
    answer,
    ask,
    cancel,
    delegate,
    expire,
    new_state,
    outcome,
    vote,
)
from opsloom.approvals.spec import ApprovalConflictError, ApprovalForbiddenError, Stage
from opsloom.model.approval import ApprovalState, RequestStatus, StageStatus

HEADER = {"title": "Rotate keys", "requester": "rita"}


def two_phases(on_sla: str | None = "approve") -> ApprovalState:
    first = Stage("oncall", users=("alice",), sla=60, on_sla=on_sla)
    second = Stage("owner", users=("bob",))
    return new_state("req", "run-1", HEADER, (first, second), 0.0)


def test_expire__approves_automatically_at_the_sla_deadline_and_opens_the_next_stage() -> None:
    state = two_phases()
    before = expire(59.0)(state)
    assert (before.signal, before.notes) == (False, [])
    change = expire(60.0)(state)
    assert change.signal is True
    assert change.notes == [(SLA_ACTOR, "approval.auto_approved", {"task": "req.0"})]
    first, second = change.state.stages
    assert (first.status, first.decided_by, first.decided_at, first.comment) == (
        StageStatus.APPROVED,
        SLA_ACTOR,
        60.0,
        "approved automatically at the SLA of stage 'oncall'",
    )
    assert second.status == StageStatus.OPEN
    assert change.state.request.status == RequestStatus.PENDING
    assert change.state.request.updated_at == 60.0


def test_expire__without_an_sla_action_changes_nothing_and_signals_nothing() -> None:
    state = two_phases(on_sla=None)
    change = expire(10_000.0)(state)
    assert (change.signal, change.notes) == (False, [])
    assert [s.status for s in change.state.stages] == [StageStatus.OPEN, StageStatus.WAITING]


@pytest.mark.parametrize(("user", "admin"), [("rita", False), ("root", True)])
def test_cancel__by_the_requester_or_an_admin(user: str, admin: bool) -> None:
    change = cancel(user, "not needed", 5.0, admin=admin)(two_phases())
    request = change.state.request
    assert (request.status, request.decided_by, request.reason, request.decided_at) == (
        RequestStatus.CANCELLED,
        user,
        "not needed",
        5.0,
    )
    assert [s.status for s in change.state.stages] == [StageStatus.CANCELLED] * 2
    assert change.signal is True
    assert change.notes == [(user, "approval.cancelled", {"reason": "not needed"})]
    decided = outcome(change.state)
    assert decided is not None and decided.approved is False


def test_cancel__by_anyone_else_is_refused_and_changes_nothing() -> None:
    state = two_phases()
    with pytest.raises(ApprovalForbiddenError, match="only the requester or an admin"):
        cancel("alice", "mine now", 5.0, admin=False)(state)
    assert state.request.status == RequestStatus.PENDING
    assert [s.status for s in state.stages] == [StageStatus.OPEN, StageStatus.WAITING]


def test_ask__a_second_question_on_a_paused_stage_is_kept_and_one_answer_resumes_it() -> None:
    first = Stage("oncall", users=("alice", "carol"), sla=60)
    state = new_state("req", "run-1", HEADER, (first, Stage("owner", users=("bob",))), 0.0)
    asked = ask("alice", frozenset(), "req.0", "which hosts?", 10.0)(state)
    assert asked.result == "req.0.q1"
    again = ask("carol", frozenset(), "req.0", "and when?", 20.0)(asked.state)
    assert again.result == "req.0.q2"
    assert again.notes == [
        ("carol", "approval.clarification_asked", {"task": "req.0", "question": "and when?"})
    ]
    stage = again.state.stages[0]
    # Still paused since the first question: the second does not move the pause.
    assert (stage.status, stage.paused_at, stage.deadline) == (StageStatus.CLARIFYING, 10.0, 60.0)
    answered = answer("rita", "web1 and web2, tonight", 40.0)(again.state)
    assert [
        (c.id, c.asked_by, c.question, c.answer, c.answered_by, c.answered_at)
        for c in answered.state.clarifications
    ] == [
        ("req.0.q1", "alice", "which hosts?", "web1 and web2, tonight", "rita", 40.0),
        ("req.0.q2", "carol", "and when?", "web1 and web2, tonight", "rita", 40.0),
    ]
    stage = answered.state.stages[0]
    # The SLA is moved on by the 30 s the stage waited for its answer.
    assert (stage.status, stage.paused_at, stage.deadline) == (StageStatus.OPEN, None, 90.0)
    assert answered.notes == [
        ("rita", "approval.clarification_answered", {"questions": ["req.0.q1", "req.0.q2"]})
    ]
    with pytest.raises(ApprovalConflictError, match="has no open question"):
        answer("rita", "again", 50.0)(answered.state)


def test_delegate__a_chain_hands_on_the_original_approvers_part_and_the_last_one_decides() -> None:
    state = new_state("req", "run-1", HEADER, (Stage("owner", users=("bob",)),), 0.0)
    to_carol = delegate("bob", frozenset(), "req.0", "carol", 1.0)(state)
    to_dave = delegate("carol", frozenset(), "req.0", "dave", 2.0)(to_carol.state)
    assert to_dave.state.stages[0].delegations == {"dave": "bob"}
    assert to_dave.notes == [
        ("carol", "approval.delegated", {"task": "req.0", "to": "dave", "as": "user:bob"})
    ]
    # Neither bob nor carol can act any more; carol is no approver at all now.
    with pytest.raises(ApprovalForbiddenError, match=r"bob delegated task req\.0 to dave"):
        vote("bob", frozenset(), "req.0", True, None, 3.0)(to_dave.state)
    with pytest.raises(ApprovalForbiddenError, match="not assigned to carol"):
        vote("carol", frozenset(), "req.0", True, None, 3.0)(to_dave.state)
    with pytest.raises(ApprovalForbiddenError, match="rita requested this approval"):
        delegate("dave", frozenset(), "req.0", "rita", 3.0)(to_dave.state)
    decided = vote("dave", frozenset(), "req.0", True, "fine", 4.0)(to_dave.state)
    [ballot] = decided.state.votes
    assert (ballot.voter, ballot.approve, ballot.on_behalf_of) == ("dave", True, "user:bob")
    request = decided.state.request
    assert (request.status, request.decided_by, request.reason) == (
        RequestStatus.APPROVED,
        "dave",
        "fine",
    )


def test_vote__a_denial_in_the_first_phase_cancels_every_later_stage() -> None:
    stages = (
        Stage("oncall", users=("alice",)),
        Stage("security", users=("sam",), parallel=True),
        Stage("owner", users=("bob",)),
        Stage("cab", users=("cora",)),
    )
    state = new_state("req", "run-1", HEADER, stages, 0.0)
    assert [s.status for s in state.stages] == [
        StageStatus.OPEN,
        StageStatus.OPEN,
        StageStatus.WAITING,
        StageStatus.WAITING,
    ]
    denied = vote("alice", frozenset(), "req.0", False, "not during the freeze", 5.0)(state)
    assert [(s.status, s.decided_by) for s in denied.state.stages] == [
        (StageStatus.DENIED, "alice"),
        (StageStatus.CANCELLED, None),
        (StageStatus.CANCELLED, None),
        (StageStatus.CANCELLED, None),
    ]
    request = denied.state.request
    assert (request.status, request.decided_by, request.reason, request.decided_at) == (
        RequestStatus.DENIED,
        "alice",
        "not during the freeze",
        5.0,
    )
    assert denied.signal is True
    decided = outcome(denied.state)
    assert decided is not None and decided.approved is False
    with pytest.raises(ApprovalConflictError, match="already denied"):
        vote("bob", frozenset(), "req.2", True, None, 6.0)(denied.state)
