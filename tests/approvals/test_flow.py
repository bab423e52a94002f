"""The pure approval rules of :mod:`opsloom.approvals.flow`: SLA actions, cancelling, signals."""

from __future__ import annotations

import pytest

from opsloom.approvals.flow import SLA_ACTOR, cancel, expire, new_state, outcome
from opsloom.approvals.spec import ApprovalForbiddenError, Stage
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
