"""The pure approval rules of :mod:`opsloom.approvals.flow`: SLA actions, cancelling, signals."""

from __future__ import annotations

from typing import Any

import pytest

from opsloom.approvals.flow import (
    POLICY_ACTOR,
    RUN_ACTOR,
    SLA_ACTOR,
    answer,
    ask,
    cancel,
    delegate,
    expire,
    new_state,
    next_deadline,
    outcome,
    vote,
    withdraw,
)
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
    RequestStatus,
    StageStatus,
)

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


# Whole records: the rows a change stores, the votes it inserts, its audit notes and its signal.


def request_row(**changes: Any) -> ApprovalRequestRow:
    """The request ``req`` of run ``run-1`` by rita, pending since 0, with ``changes``."""
    fields: dict[str, Any] = {
        "id": "req",
        "run_id": "run-1",
        "title": "Rotate keys",
        "requester": "rita",
        "subject": None,
        "risk": None,
        "impact": None,
        "status": RequestStatus.PENDING,
        "decided_by": None,
        "reason": None,
        "created_at": 0.0,
        "decided_at": None,
        "updated_at": 0.0,
    }
    return ApprovalRequestRow(**(fields | changes))


def stage_row(position: int, name: str, users: list[str], **changes: Any) -> ApprovalStageRow:
    """Stage ``position`` of ``req`` as a new request stores it (waiting, any, no SLA)."""
    fields: dict[str, Any] = {
        "id": f"req.{position}",
        "request_id": "req",
        "position": position,
        "name": name,
        "phase": position,
        "mode": "any",
        "quorum": 1,
        "ladder": [{"users": users, "groups": []}],
        "level": 0,
        "sla": None,
        "on_sla": None,
        "status": StageStatus.WAITING,
        "opened_at": None,
        "deadline": None,
        "paused_at": None,
        "escalations": 0,
        "delegations": {},
        "decided_at": None,
        "decided_by": None,
        "comment": None,
    }
    return ApprovalStageRow(**(fields | changes))


def test_new_state__stores_the_header_and_opens_the_first_phase_only() -> None:
    header = {
        "title": 42,
        "requester": "rita",
        "subject": {"service": "api"},
        "risk": 3,
        "impact": "high",
        "started_by": "sam",
        "starter_may_decide": 1,
        "distinct_approvers": "yes",
    }
    stages = (
        Stage("oncall", groups=("leads",), mode="all", sla=60, on_sla="deny"),
        Stage("security", users=("sam", "sue"), mode=2, parallel=True),
        Stage(
            "owner",
            users=("bob",),
            sla=30,
            escalate_to=(Approvers(groups=("managers",)), Approvers(users=("vp",))),
            on_sla="approve",
        ),
        Stage("cab", users=("cora",), parallel=True),
    )
    state = new_state("req", "run-1", header, stages, 5.0)
    assert state == ApprovalState(
        request_row(
            title="42",
            subject={"service": "api"},
            risk="3",
            impact="high",
            created_at=5.0,
            updated_at=5.0,
            started_by="sam",
            starter_may_decide=True,
            distinct_approvers=True,
        ),
        [
            stage_row(
                0,
                "oncall",
                [],
                mode="all",
                ladder=[{"users": [], "groups": ["leads"]}],
                sla=60,
                on_sla="deny",
                status=StageStatus.OPEN,
                opened_at=5.0,
                deadline=65.0,
            ),
            stage_row(
                1,
                "security",
                ["sam", "sue"],
                phase=0,
                mode="quorum",
                quorum=2,
                status=StageStatus.OPEN,
                opened_at=5.0,
            ),
            stage_row(
                2,
                "owner",
                ["bob"],
                phase=1,
                ladder=[
                    {"users": ["bob"], "groups": []},
                    {"users": [], "groups": ["managers"]},
                    {"users": ["vp"], "groups": []},
                ],
                sla=30,
                on_sla="approve",
            ),
            stage_row(3, "cab", ["cora"], phase=1),
        ],
    )
    assert next_deadline(state) == 65.0
    assert outcome(state) is None


def test_new_state__without_stages_is_approved_by_the_policy_at_once() -> None:
    state = new_state("req", None, {"title": "Read logs", "requester": "rita"}, (), 7.0)
    assert state == ApprovalState(
        request_row(
            run_id=None,
            title="Read logs",
            status=RequestStatus.APPROVED,
            decided_by=POLICY_ACTOR,
            created_at=7.0,
            decided_at=7.0,
            updated_at=7.0,
        ),
        [],
    )
    assert outcome(state) == ApprovalOutcome(
        request_id="req",
        approved=True,
        status=RequestStatus.APPROVED,
        decided_by=POLICY_ACTOR,
        reason=None,
        stages=[],
    )


def test_vote__a_quorum_counts_distinct_approvals_and_signals_only_when_the_stage_is_decided() -> (
    None
):
    stages = (Stage("security", users=("sam", "sue", "sid"), mode=2), Stage("cab", groups=("cab",)))
    state = new_state("req", "run-1", HEADER, stages, 0.0)
    first = vote("sam", frozenset(), "req.0", True, None, 1.0)(state)
    sam = ApprovalVoteRow("req.0", "req", "sam", True, None, "user:sam", 1.0)
    assert first == ApprovalChange(
        ApprovalState(
            request_row(updated_at=1.0),
            [
                stage_row(
                    0,
                    "security",
                    ["sam", "sue", "sid"],
                    mode="quorum",
                    quorum=2,
                    status=StageStatus.OPEN,
                    opened_at=0.0,
                ),
                stage_row(1, "cab", [], ladder=[{"users": [], "groups": ["cab"]}]),
            ],
            [sam],
        ),
        [sam],
        signal=False,
        notes=[
            ("sam", "approval.approved", {"task": "req.0", "stage": "security", "comment": None})
        ],
    )
    with pytest.raises(ApprovalConflictError, match=r"sam has already decided task req\.0"):
        vote("sam", frozenset(), "req.0", True, None, 2.0)(first.state)
    # A voter who has decided cannot hand the task on either.
    with pytest.raises(ApprovalConflictError, match=r"sam has already decided task req\.0"):
        delegate("sam", frozenset(), "req.0", "gina", 2.0)(first.state)
    second = vote("sue", frozenset({"cab", "x"}), "req.0", True, "ok", 3.0)(first.state)
    sue = ApprovalVoteRow("req.0", "req", "sue", True, "ok", "user:sue", 3.0)
    assert second == ApprovalChange(
        ApprovalState(
            request_row(updated_at=3.0),
            [
                stage_row(
                    0,
                    "security",
                    ["sam", "sue", "sid"],
                    mode="quorum",
                    quorum=2,
                    status=StageStatus.APPROVED,
                    opened_at=0.0,
                    decided_at=3.0,
                    decided_by="sue",
                    comment="ok",
                ),
                stage_row(
                    1,
                    "cab",
                    [],
                    ladder=[{"users": [], "groups": ["cab"]}],
                    status=StageStatus.OPEN,
                    opened_at=3.0,
                ),
            ],
            [sam, sue],
        ),
        [sue],
        signal=True,
        notes=[
            ("sue", "approval.approved", {"task": "req.0", "stage": "security", "comment": "ok"})
        ],
    )
    # The vote names only the stage's groups; the last stage decides the request.
    last = vote("carl", frozenset({"cab", "ops", "board"}), "req.1", True, "go", 4.0)(second.state)
    carl = ApprovalVoteRow("req.1", "req", "carl", True, "go", "group:cab", 4.0)
    assert last.new_votes == [carl]
    assert last.state.request == request_row(
        status=RequestStatus.APPROVED,
        decided_by="carl",
        reason="go",
        decided_at=4.0,
        updated_at=4.0,
    )
    assert outcome(last.state) == ApprovalOutcome(
        request_id="req",
        approved=True,
        status=RequestStatus.APPROVED,
        decided_by="carl",
        reason="go",
        stages=[
            {
                "task": "req.0",
                "name": "security",
                "phase": 0,
                "mode": "quorum",
                "quorum": 2,
                "status": StageStatus.APPROVED,
                "approvers": {"users": ["sam", "sue", "sid"], "groups": []},
                "level": 0,
                "escalations": 0,
                "sla": None,
                "deadline": None,
                "delegations": {},
                "decided_by": "sue",
                "decided_at": 3.0,
                "comment": "ok",
                "votes": [
                    {"voter": "sam", "approve": True, "comment": None, "as": "user:sam", "at": 1.0},
                    {"voter": "sue", "approve": True, "comment": "ok", "as": "user:sue", "at": 3.0},
                ],
            },
            {
                "task": "req.1",
                "name": "cab",
                "phase": 1,
                "mode": "any",
                "quorum": 1,
                "status": StageStatus.APPROVED,
                "approvers": {"users": [], "groups": ["cab"]},
                "level": 0,
                "escalations": 0,
                "sla": None,
                "deadline": None,
                "delegations": {},
                "decided_by": "carl",
                "decided_at": 4.0,
                "comment": "go",
                "votes": [
                    {
                        "voter": "carl",
                        "approve": True,
                        "comment": "go",
                        "as": "group:cab",
                        "at": 4.0,
                    }
                ],
            },
        ],
    )


def test_vote__all_needs_every_user_and_one_member_per_group() -> None:
    stage = Stage("change", users=("ann",), groups=("dba", "net"), mode="all")
    state = new_state("req", "run-1", HEADER, (stage,), 0.0)
    # One person in both groups stands for one of them only.
    both = vote("dan", frozenset({"dba", "net"}), "req.0", True, None, 1.0)(state)
    assert [v.on_behalf_of for v in both.new_votes] == ["group:dba,group:net"]
    assert (both.signal, both.state.stages[0].status) == (False, StageStatus.OPEN)
    ann = vote("ann", frozenset(), "req.0", True, None, 2.0)(both.state)
    assert (ann.signal, ann.state.stages[0].status) == (False, StageStatus.OPEN)
    # The second group member completes it: dan covers the group nina is not in.
    nina = vote("nina", frozenset({"net"}), "req.0", True, None, 3.0)(ann.state)
    assert (nina.signal, nina.state.stages[0].status) == (True, StageStatus.APPROVED)
    assert nina.state.request.status == RequestStatus.APPROVED


def test_vote__a_denial_cancels_the_open_paused_and_waiting_stages_but_keeps_approved_ones() -> (
    None
):
    stages = (
        Stage("oncall", users=("alice",)),
        Stage("security", users=("sam",), parallel=True),
        Stage("network", users=("nick",), parallel=True),
        Stage("owner", users=("bob",)),
    )
    state = new_state("req", "run-1", HEADER, stages, 0.0)
    state = vote("alice", frozenset(), "req.0", True, None, 1.0)(state).state
    state = ask("nick", frozenset(), "req.2", "which ports?", 2.0)(state).state
    with pytest.raises(InvalidApprovalError, match="a denial needs a reason"):
        vote("sam", frozenset(), "req.1", False, "  ", 3.0)(state)
    with pytest.raises(ApprovalConflictError, match=r"task req\.2 waits for the requester's"):
        vote("nick", frozenset(), "req.2", False, "no", 3.0)(state)
    with pytest.raises(ApprovalConflictError, match=r"task req\.3 is waiting, not open"):
        vote("bob", frozenset(), "req.3", True, None, 3.0)(state)
    denied = vote("sam", frozenset(), "req.1", False, "no", 4.0)(state)
    sam = ApprovalVoteRow("req.1", "req", "sam", False, "no", "user:sam", 4.0)
    alice = ApprovalVoteRow("req.0", "req", "alice", True, None, "user:alice", 1.0)
    assert denied == ApprovalChange(
        ApprovalState(
            request_row(
                status=RequestStatus.DENIED,
                decided_by="sam",
                reason="no",
                decided_at=4.0,
                updated_at=4.0,
            ),
            [
                stage_row(
                    0,
                    "oncall",
                    ["alice"],
                    status=StageStatus.APPROVED,
                    opened_at=0.0,
                    decided_at=1.0,
                    decided_by="alice",
                ),
                stage_row(
                    1,
                    "security",
                    ["sam"],
                    phase=0,
                    status=StageStatus.DENIED,
                    opened_at=0.0,
                    decided_at=4.0,
                    decided_by="sam",
                    comment="no",
                ),
                stage_row(
                    2,
                    "network",
                    ["nick"],
                    phase=0,
                    status=StageStatus.CANCELLED,
                    opened_at=0.0,
                    paused_at=2.0,
                ),
                stage_row(3, "owner", ["bob"], phase=1, status=StageStatus.CANCELLED),
            ],
            [alice, sam],
            [ApprovalClarificationRow("req.2.q1", "req", "req.2", "nick", "which ports?", 2.0)],
        ),
        [sam],
        signal=True,
        notes=[("sam", "approval.denied", {"task": "req.1", "stage": "security", "comment": "no"})],
    )
    assert next_deadline(denied.state) is None


def test_ask__questions_are_numbered_per_stage_and_an_answer_resumes_only_paused_stages() -> None:
    stages = (
        Stage("oncall", users=("alice",), sla=100, on_sla="deny"),
        Stage("security", users=("sam",), parallel=True),
        Stage("network", users=("nick",), sla=50, on_sla="deny", parallel=True),
    )
    state = new_state("req", "run-1", HEADER, stages, 0.0)
    with pytest.raises(ApprovalConflictError, match="a question needs some text"):
        ask("alice", frozenset(), "req.0", " \n", 1.0)(state)
    with pytest.raises(ApprovalForbiddenError, match="not assigned to sam"):
        ask("sam", frozenset(), "req.0", "why?", 1.0)(state)
    first = ask("alice", frozenset(), "req.0", "why?", 10.0)(state)
    second = ask("sam", frozenset(), "req.1", "what?", 20.0)(first.state)
    assert second == ApprovalChange(
        ApprovalState(
            request_row(updated_at=20.0),
            [
                stage_row(
                    0,
                    "oncall",
                    ["alice"],
                    sla=100,
                    on_sla="deny",
                    status=StageStatus.CLARIFYING,
                    opened_at=0.0,
                    deadline=100.0,
                    paused_at=10.0,
                ),
                stage_row(
                    1,
                    "security",
                    ["sam"],
                    phase=0,
                    status=StageStatus.CLARIFYING,
                    opened_at=0.0,
                    paused_at=20.0,
                ),
                stage_row(
                    2,
                    "network",
                    ["nick"],
                    phase=0,
                    sla=50,
                    on_sla="deny",
                    status=StageStatus.OPEN,
                    opened_at=0.0,
                    deadline=50.0,
                ),
            ],
            [],
            [
                ApprovalClarificationRow("req.0.q1", "req", "req.0", "alice", "why?", 10.0),
                ApprovalClarificationRow("req.1.q1", "req", "req.1", "sam", "what?", 20.0),
            ],
        ),
        signal=True,
        notes=[("sam", "approval.clarification_asked", {"task": "req.1", "question": "what?"})],
        result="req.1.q1",
    )
    # Paused stages have no deadline to keep; the open one still has its own.
    assert next_deadline(second.state) == 50.0
    with pytest.raises(ApprovalForbiddenError, match=r"only the requester \(rita\) answers"):
        answer("alice", "because", 30.0)(second.state)
    answered = answer("rita", "because", 30.0)(second.state)
    assert answered == ApprovalChange(
        ApprovalState(
            request_row(updated_at=30.0),
            [
                # 20 s paused: the deadline moves from 100 to 120.
                stage_row(
                    0,
                    "oncall",
                    ["alice"],
                    sla=100,
                    on_sla="deny",
                    status=StageStatus.OPEN,
                    opened_at=0.0,
                    deadline=120.0,
                ),
                stage_row(1, "security", ["sam"], phase=0, status=StageStatus.OPEN, opened_at=0.0),
                stage_row(
                    2,
                    "network",
                    ["nick"],
                    phase=0,
                    sla=50,
                    on_sla="deny",
                    status=StageStatus.OPEN,
                    opened_at=0.0,
                    deadline=50.0,
                ),
            ],
            [],
            [
                ApprovalClarificationRow(
                    "req.0.q1", "req", "req.0", "alice", "why?", 10.0, "because", "rita", 30.0
                ),
                ApprovalClarificationRow(
                    "req.1.q1", "req", "req.1", "sam", "what?", 20.0, "because", "rita", 30.0
                ),
            ],
        ),
        signal=True,
        notes=[
            ("rita", "approval.clarification_answered", {"questions": ["req.0.q1", "req.1.q1"]})
        ],
    )
    assert next_deadline(answered.state) == 50.0
    # A decided stage takes no more questions.
    approved = vote("sam", frozenset(), "req.1", True, None, 31.0)(answered.state)
    with pytest.raises(ApprovalConflictError, match=r"task req\.1 is approved, not open"):
        ask("sam", frozenset(), "req.1", "and?", 32.0)(approved.state)


def test_delegate__a_later_stage_may_be_handed_on_before_it_opens_and_not_after_it_is_decided() -> (
    None
):
    stages = (Stage("oncall", users=("alice",)), Stage("owner", users=("bob",), sla=10))
    state = new_state("req", "run-1", HEADER, stages, 0.0)
    with pytest.raises(ApprovalNotFoundError, match=r"no approval task 'req\.9'"):
        delegate("bob", frozenset(), "req.9", "carol", 1.0)(state)
    with pytest.raises(ApprovalConflictError, match=r"bob already acts on task req\.1"):
        delegate("bob", frozenset(), "req.1", "bob", 1.0)(state)
    handed = delegate("bob", frozenset(), "req.1", "carol", 1.0)(state)
    assert handed == ApprovalChange(
        ApprovalState(
            request_row(updated_at=1.0),
            [
                stage_row(0, "oncall", ["alice"], status=StageStatus.OPEN, opened_at=0.0),
                stage_row(
                    1,
                    "owner",
                    ["bob"],
                    sla=10,
                    delegations={"carol": "bob"},
                    delegated_as={"carol": "user:bob"},
                ),
            ],
        ),
        signal=False,
        notes=[("bob", "approval.delegated", {"task": "req.1", "to": "carol", "as": "user:bob"})],
    )
    with pytest.raises(ApprovalConflictError, match=r"carol already acts on task req\.1"):
        delegate("carol", frozenset(), "req.1", "carol", 2.0)(handed.state)
    opened = vote("alice", frozenset(), "req.0", True, None, 3.0)(handed.state)
    assert opened.state.stages[1] == stage_row(
        1,
        "owner",
        ["bob"],
        sla=10,
        status=StageStatus.OPEN,
        opened_at=3.0,
        deadline=13.0,
        delegations={"carol": "bob"},
        delegated_as={"carol": "user:bob"},
    )
    decided = vote("carol", frozenset(), "req.1", True, None, 4.0)(opened.state)
    assert decided.new_votes == [
        ApprovalVoteRow("req.1", "req", "carol", True, None, "user:bob", 4.0)
    ]
    assert decided.state.request == request_row(
        status=RequestStatus.APPROVED, decided_by="carol", decided_at=4.0, updated_at=4.0
    )
    with pytest.raises(ApprovalConflictError, match=r"approval request req is already approved"):
        delegate("alice", frozenset(), "req.0", "gina", 5.0)(decided.state)


def test_delegate__a_decided_stage_of_a_pending_request_cannot_be_handed_on() -> None:
    stages = (Stage("oncall", users=("alice",)), Stage("owner", users=("bob",)))
    state = new_state("req", "run-1", HEADER, stages, 0.0)
    approved = vote("alice", frozenset(), "req.0", True, None, 1.0)(state)
    with pytest.raises(ApprovalConflictError, match=r"task req\.0 is approved$"):
        delegate("alice", frozenset(), "req.0", "gina", 2.0)(approved.state)


def ladder(on_sla: str | None) -> ApprovalState:
    stage = Stage(
        "change",
        users=("alice",),
        sla=10,
        escalate_to=(Approvers(groups=("leads",)), Approvers(users=("vp",))),
        on_sla=on_sla,
    )
    return new_state("req", "run-1", HEADER, (stage,), 0.0)


LADDER = [
    {"users": ["alice"], "groups": []},
    {"users": [], "groups": ["leads"]},
    {"users": ["vp"], "groups": []},
]


def test_expire__climbs_every_rung_whose_deadline_passed_then_approves() -> None:
    state = delegate("alice", frozenset(), "req.0", "gina", 1.0)(ladder("approve")).state
    assert next_deadline(state) == 10.0
    first = expire(10.0)(state)
    assert first == ApprovalChange(
        ApprovalState(
            request_row(updated_at=10.0),
            [
                # The task moved up: gina no longer acts for alice.
                stage_row(
                    0,
                    "change",
                    ["alice"],
                    ladder=LADDER,
                    level=1,
                    sla=10,
                    on_sla="approve",
                    status=StageStatus.OPEN,
                    opened_at=0.0,
                    deadline=20.0,
                    escalations=1,
                )
            ],
        ),
        signal=True,
        notes=[
            (
                SLA_ACTOR,
                "approval.escalated",
                {"task": "req.0", "level": 1, "to": {"users": [], "groups": ["leads"]}},
            )
        ],
    )
    with pytest.raises(ApprovalForbiddenError, match="not assigned to gina"):
        vote("gina", frozenset(), "req.0", True, None, 11.0)(first.state)
    assert next_deadline(first.state) == 20.0
    # Long past every deadline: the last rung's SLA passes too, and the stage is approved.
    last = expire(35.0)(first.state)
    assert last == ApprovalChange(
        ApprovalState(
            request_row(
                status=RequestStatus.APPROVED,
                decided_by=SLA_ACTOR,
                reason="approved automatically at the SLA of stage 'change'",
                decided_at=35.0,
                updated_at=35.0,
            ),
            [
                stage_row(
                    0,
                    "change",
                    ["alice"],
                    ladder=LADDER,
                    level=2,
                    sla=10,
                    on_sla="approve",
                    status=StageStatus.APPROVED,
                    opened_at=0.0,
                    deadline=30.0,
                    escalations=2,
                    decided_at=35.0,
                    decided_by=SLA_ACTOR,
                    comment="approved automatically at the SLA of stage 'change'",
                )
            ],
        ),
        signal=True,
        notes=[
            (
                SLA_ACTOR,
                "approval.escalated",
                {"task": "req.0", "level": 2, "to": {"users": ["vp"], "groups": []}},
            ),
            (SLA_ACTOR, "approval.auto_approved", {"task": "req.0"}),
        ],
    )
    assert next_deadline(last.state) is None
    unchanged = expire(100.0)(last.state)
    assert unchanged == ApprovalChange(last.state)


def test_expire__denies_after_the_last_rung_and_cancels_the_other_stages() -> None:
    stages = (
        Stage("change", users=("alice",), sla=10, on_sla="deny"),
        Stage("security", users=("sam",), sla=5, on_sla="deny", parallel=True),
        Stage("owner", users=("bob",)),
    )
    state = new_state("req", "run-1", HEADER, stages, 0.0)
    state = ask("alice", frozenset(), "req.0", "why?", 1.0)(state).state
    # The paused stage keeps its deadline for later; the open one is denied at its own.
    assert next_deadline(state) == 5.0
    denied = expire(20.0)(state)
    reason = "no decision on stage 'security' within its SLA"
    assert denied == ApprovalChange(
        ApprovalState(
            request_row(
                status=RequestStatus.DENIED,
                decided_by=SLA_ACTOR,
                reason=reason,
                decided_at=20.0,
                updated_at=20.0,
            ),
            [
                stage_row(
                    0,
                    "change",
                    ["alice"],
                    sla=10,
                    on_sla="deny",
                    status=StageStatus.CANCELLED,
                    opened_at=0.0,
                    deadline=10.0,
                    paused_at=1.0,
                ),
                stage_row(
                    1,
                    "security",
                    ["sam"],
                    phase=0,
                    sla=5,
                    on_sla="deny",
                    status=StageStatus.DENIED,
                    opened_at=0.0,
                    deadline=5.0,
                    decided_at=20.0,
                    decided_by=SLA_ACTOR,
                    comment=reason,
                ),
                stage_row(2, "owner", ["bob"], phase=1, status=StageStatus.CANCELLED),
            ],
            [],
            [ApprovalClarificationRow("req.0.q1", "req", "req.0", "alice", "why?", 1.0)],
        ),
        signal=True,
        notes=[(SLA_ACTOR, "approval.auto_denied", {"task": "req.1"})],
    )


def test_expire__past_the_last_rung_without_an_action_the_stage_waits_on() -> None:
    state = ladder(None)
    climbed = expire(100.0)(state)
    assert climbed == ApprovalChange(
        ApprovalState(
            request_row(updated_at=100.0),
            [
                stage_row(
                    0,
                    "change",
                    ["alice"],
                    ladder=LADDER,
                    level=2,
                    sla=10,
                    status=StageStatus.OPEN,
                    opened_at=0.0,
                    deadline=30.0,
                    escalations=2,
                )
            ],
        ),
        signal=True,
        notes=[
            (SLA_ACTOR, "approval.escalated", {"task": "req.0", "level": level, "to": to})
            for level, to in ((1, LADDER[1]), (2, LADDER[2]))
        ],
    )
    assert next_deadline(climbed.state) is None
    assert expire(200.0)(climbed.state) == ApprovalChange(climbed.state)


@pytest.mark.parametrize(("user", "admin"), [("rita", False), ("rita", True), ("root", True)])
def test_cancel__the_whole_request_with_a_paused_and_a_decided_stage(
    user: str, admin: bool
) -> None:
    stages = (
        Stage("oncall", users=("alice",)),
        Stage("security", users=("sam",), parallel=True),
        Stage("owner", users=("bob",)),
    )
    state = new_state("req", "run-1", HEADER, stages, 0.0)
    state = vote("alice", frozenset(), "req.0", True, None, 1.0)(state).state
    state = ask("sam", frozenset(), "req.1", "why?", 2.0)(state).state
    cancelled = cancel(user, "not needed", 3.0, admin=admin)(state)
    assert cancelled == ApprovalChange(
        ApprovalState(
            request_row(
                status=RequestStatus.CANCELLED,
                decided_by=user,
                reason="not needed",
                decided_at=3.0,
                updated_at=3.0,
            ),
            [
                stage_row(
                    0,
                    "oncall",
                    ["alice"],
                    status=StageStatus.APPROVED,
                    opened_at=0.0,
                    decided_at=1.0,
                    decided_by="alice",
                ),
                stage_row(
                    1,
                    "security",
                    ["sam"],
                    phase=0,
                    status=StageStatus.CANCELLED,
                    opened_at=0.0,
                    paused_at=2.0,
                ),
                stage_row(2, "owner", ["bob"], phase=1, status=StageStatus.CANCELLED),
            ],
            [ApprovalVoteRow("req.0", "req", "alice", True, None, "user:alice", 1.0)],
            [ApprovalClarificationRow("req.1.q1", "req", "req.1", "sam", "why?", 2.0)],
        ),
        signal=True,
        notes=[(user, "approval.cancelled", {"reason": "not needed"})],
    )
    with pytest.raises(ApprovalConflictError, match="approval request req is already cancelled"):
        cancel(user, "again", 4.0, admin=admin)(cancelled.state)


def test_withdraw__cancels_a_pending_request_for_the_run_and_leaves_a_decided_one() -> None:
    state = new_state("req", "run-1", HEADER, (Stage("owner", users=("bob",)),), 0.0)
    withdrawn = withdraw("run cancelled", 2.0)(state.copy())
    assert withdrawn == ApprovalChange(
        ApprovalState(
            request_row(
                status=RequestStatus.CANCELLED,
                decided_by=RUN_ACTOR,
                reason="run cancelled",
                decided_at=2.0,
                updated_at=2.0,
            ),
            [stage_row(0, "owner", ["bob"], status=StageStatus.CANCELLED, opened_at=0.0)],
        ),
        signal=True,
        notes=[(RUN_ACTOR, "approval.cancelled", {"reason": "run cancelled"})],
    )
    approved = vote("bob", frozenset(), "req.0", True, None, 1.0)(state).state
    assert withdraw("run failed", 2.0)(approved) == ApprovalChange(approved)


def test_standing__the_starter_and_a_decider_of_another_stage_are_refused() -> None:
    header = HEADER | {"started_by": "sam", "distinct_approvers": True}
    stages = (Stage("oncall", users=("alice", "sam")), Stage("owner", users=("alice", "bob")))
    state = new_state("req", "run-1", header, stages, 0.0)
    with pytest.raises(ApprovalForbiddenError, match="sam started run run-1"):
        vote("sam", frozenset(), "req.0", True, None, 1.0)(state)
    state = vote("alice", frozenset(), "req.0", True, None, 1.0)(state).state
    with pytest.raises(ApprovalForbiddenError, match="alice has decided another stage of request"):
        vote("alice", frozenset(), "req.1", True, None, 2.0)(state)
    allowed = new_state(
        "req", "run-1", HEADER | {"started_by": "sam", "starter_may_decide": True}, stages, 0.0
    )
    decided = vote("sam", frozenset(), "req.0", True, None, 1.0)(allowed.copy())
    assert decided.new_votes == [
        ApprovalVoteRow("req.0", "req", "sam", True, None, "user:sam", 1.0)
    ]
    # Without distinct approvers one person decides both stages.
    again = vote("alice", frozenset(), "req.1", True, None, 2.0)(
        vote("alice", frozenset(), "req.0", True, None, 1.0)(allowed).state
    )
    assert again.state.request.status == RequestStatus.APPROVED


def test_vote__all_is_not_satisfied_by_two_members_of_one_group() -> None:
    stage = Stage("change", users=("ann",), groups=("dba", "net"), mode="all")
    state = new_state("req", "run-1", HEADER, (stage,), 0.0)
    for at, (user, groups) in enumerate(
        [("dora", {"dba"}), ("dirk", {"dba"}), ("ann", set())], start=1
    ):
        change = vote(user, frozenset(groups), "req.0", True, None, float(at))(state)
        assert (change.signal, change.state.stages[0].status) == (False, StageStatus.OPEN)
        state = change.state
    done = vote("nina", frozenset({"net"}), "req.0", True, None, 4.0)(state)
    assert (done.signal, done.state.request.status) == (True, RequestStatus.APPROVED)


def test_vote__a_denial_without_a_reason_is_refused_with_the_reason_why() -> None:
    state = new_state("req", "run-1", HEADER, (Stage("owner", users=("bob",)),), 0.0)
    for comment in (None, "", " \t"):
        with pytest.raises(
            InvalidApprovalError, match=r"^a denial needs a reason: give a comment saying why$"
        ):
            vote("bob", frozenset(), "req.0", False, comment, 1.0)(state)
    assert state == new_state("req", "run-1", HEADER, (Stage("owner", users=("bob",)),), 0.0)


def test_ask__an_empty_question_is_refused_with_the_reason_why() -> None:
    state = new_state("req", "run-1", HEADER, (Stage("owner", users=("bob",)),), 0.0)
    with pytest.raises(ApprovalConflictError, match=r"^a question needs some text$"):
        ask("bob", frozenset(), "req.0", " \n", 1.0)(state)


def test_delegate__a_group_member_hands_on_their_part_whatever_others_have_decided() -> None:
    stages = (
        Stage("oncall", users=("alice",)),
        Stage("security", users=("sam",), groups=("leads",), mode=2),
    )
    state = new_state("req", "run-1", HEADER, stages, 0.0)
    # alice decided another stage and sam this one: neither keeps lena from handing hers on.
    state = vote("alice", frozenset(), "req.0", True, None, 1.0)(state).state
    state = vote("sam", frozenset(), "req.1", True, None, 2.0)(state).state
    handed = delegate("lena", frozenset({"leads", "x"}), "req.1", "gina", 3.0)(state)
    assert handed.notes == [
        ("lena", "approval.delegated", {"task": "req.1", "to": "gina", "as": "group:leads"})
    ]
    assert handed.state.stages[1].delegations == {"gina": "lena"}
    handed_too = delegate("alice", frozenset({"leads"}), "req.1", "gus", 4.0)(handed.state)
    assert handed_too.state.stages[1].delegations == {"gina": "lena", "gus": "alice"}


def test_standing__refusals_say_which_separation_rule_applies() -> None:
    header = HEADER | {"started_by": "sam", "distinct_approvers": True}
    stages = (Stage("oncall", users=("alice", "sam")), Stage("owner", users=("alice",)))
    state = new_state("req", "run-1", header, stages, 0.0)
    with pytest.raises(
        ApprovalForbiddenError,
        match=r"^sam started run run-1 and may not decide its approvals \(separation of duties\)$",
    ):
        vote("sam", frozenset(), "req.0", True, None, 1.0)(state)
    state = vote("alice", frozenset(), "req.0", True, None, 1.0)(state).state
    with pytest.raises(
        ApprovalForbiddenError,
        match=r"^alice has decided another stage of request req, which needs a distinct approver "
        r"for each stage$",
    ):
        vote("alice", frozenset(), "req.1", True, None, 2.0)(state)


@pytest.mark.parametrize("second", ["dba", "net"])
def test_vote__all_moves_a_member_of_two_groups_to_the_group_the_next_voter_cannot_cover(
    second: str,
) -> None:
    # Whichever group dan's vote was first counted for, the stage is approved once a member of
    # either group votes after him.
    stage = Stage("change", groups=("dba", "net"), mode="all")
    state = new_state("req", "run-1", HEADER, (stage,), 0.0)
    state = vote("dan", frozenset({"dba", "net"}), "req.0", True, None, 1.0)(state).state
    done = vote("nina", frozenset({second}), "req.0", True, None, 2.0)(state)
    assert done.new_votes == [
        ApprovalVoteRow("req.0", "req", "nina", True, None, f"group:{second}", 2.0)
    ]
    assert done.state.request == request_row(
        status=RequestStatus.APPROVED, decided_by="nina", decided_at=2.0, updated_at=2.0
    )


def dba_and_net(users: tuple[str, ...] = ()) -> ApprovalState:
    stage = Stage("change", users=users, groups=("dba", "net"), mode="all")
    return new_state("req", "run-1", HEADER, (stage,), 0.0)


def change_row(users: list[str] | None = None, **changes: Any) -> ApprovalStageRow:
    """The open ``all`` stage of ``dba_and_net``, with ``changes``."""
    groups = {"users": users or [], "groups": ["dba", "net"]}
    fields = {"mode": "all", "ladder": [groups], "status": StageStatus.OPEN, "opened_at": 0.0}
    return stage_row(0, "change", users or [], **(fields | changes))


def test_delegate__in_all_a_group_members_delegate_completes_the_group() -> None:
    handed = delegate("dora", frozenset({"dba", "ops"}), "req.0", "gina", 1.0)(dba_and_net())
    assert handed == ApprovalChange(
        ApprovalState(
            request_row(updated_at=1.0),
            [change_row(delegations={"gina": "dora"}, delegated_as={"gina": "group:dba"})],
        ),
        signal=False,
        notes=[("dora", "approval.delegated", {"task": "req.0", "to": "gina", "as": "group:dba"})],
    )
    net = vote("nina", frozenset({"net"}), "req.0", True, None, 2.0)(handed.state)
    assert (net.signal, net.state.stages[0].status) == (False, StageStatus.OPEN)
    # gina is in neither group: she decides as dora stood, for dba.
    done = vote("gina", frozenset(), "req.0", True, "for dora", 3.0)(net.state)
    nina = ApprovalVoteRow("req.0", "req", "nina", True, None, "group:net", 2.0)
    gina = ApprovalVoteRow("req.0", "req", "gina", True, "for dora", "group:dba", 3.0)
    assert done == ApprovalChange(
        ApprovalState(
            request_row(
                status=RequestStatus.APPROVED,
                decided_by="gina",
                reason="for dora",
                decided_at=3.0,
                updated_at=3.0,
            ),
            [
                change_row(
                    status=StageStatus.APPROVED,
                    delegations={"gina": "dora"},
                    delegated_as={"gina": "group:dba"},
                    decided_at=3.0,
                    decided_by="gina",
                    comment="for dora",
                )
            ],
            [nina, gina],
        ),
        [gina],
        signal=True,
        notes=[
            (
                "gina",
                "approval.approved",
                {"task": "req.0", "stage": "change", "comment": "for dora"},
            )
        ],
    )


def test_delegate__a_chain_from_a_group_member_hands_on_the_group_and_the_last_one_decides() -> (
    None
):
    to_gina = delegate("dora", frozenset({"dba"}), "req.0", "gina", 1.0)(dba_and_net(("ann",)))
    to_hal = delegate("gina", frozenset({"net"}), "req.0", "hal", 2.0)(to_gina.state)
    assert to_hal == ApprovalChange(
        ApprovalState(
            request_row(updated_at=2.0),
            [change_row(["ann"], delegations={"hal": "dora"}, delegated_as={"hal": "group:dba"})],
        ),
        signal=False,
        # gina hands on dora's part, not her own membership of net.
        notes=[("gina", "approval.delegated", {"task": "req.0", "to": "hal", "as": "group:dba"})],
    )
    with pytest.raises(ApprovalForbiddenError, match=r"^dora delegated task req\.0 to hal$"):
        vote("dora", frozenset({"dba"}), "req.0", True, None, 3.0)(to_hal.state)
    # Having handed it on, gina is only a member of net again.
    net = vote("gina", frozenset({"net"}), "req.0", True, None, 3.0)(to_hal.state)
    ann = vote("ann", frozenset(), "req.0", True, None, 4.0)(net.state)
    assert (ann.signal, ann.state.stages[0].status) == (False, StageStatus.OPEN)
    done = vote("hal", frozenset(), "req.0", True, None, 5.0)(ann.state)
    assert done.new_votes == [ApprovalVoteRow("req.0", "req", "hal", True, None, "group:dba", 5.0)]
    assert [(v.voter, v.on_behalf_of) for v in done.state.votes] == [
        ("gina", "group:net"),
        ("ann", "user:ann"),
        ("hal", "group:dba"),
    ]
    assert done.state.request == request_row(
        status=RequestStatus.APPROVED, decided_by="hal", decided_at=5.0, updated_at=5.0
    )


def test_delegate__a_member_of_two_groups_who_delegated_is_refused_their_delegate_covers_one() -> (
    None
):
    handed = delegate("dan", frozenset({"dba", "net"}), "req.0", "gina", 1.0)(dba_and_net())
    both = "group:dba,group:net"
    assert handed.state.stages == [
        change_row(delegations={"gina": "dan"}, delegated_as={"gina": both})
    ]
    refused = handed.state.copy()
    for act in (
        vote("dan", frozenset({"dba", "net"}), "req.0", True, None, 2.0),
        ask("dan", frozenset({"dba", "net"}), "req.0", "why?", 2.0),
        delegate("dan", frozenset({"dba", "net"}), "req.0", "hal", 2.0),
    ):
        with pytest.raises(ApprovalForbiddenError, match=r"^dan delegated task req\.0 to gina$"):
            act(refused)
    assert refused == handed.state
    # Like dan's own vote, gina's stands for one of his groups: a member of either completes.
    gina = vote("gina", frozenset(), "req.0", True, None, 2.0)(handed.state)
    assert gina.new_votes == [ApprovalVoteRow("req.0", "req", "gina", True, None, both, 2.0)]
    assert (gina.signal, gina.state.stages[0].status) == (False, StageStatus.OPEN)
    done = vote("dora", frozenset({"dba"}), "req.0", True, None, 3.0)(gina.state)
    assert (done.signal, done.state.request.status) == (True, RequestStatus.APPROVED)


def test_delegate__one_stored_without_its_part_decides_as_the_user_delegated_for() -> None:
    # A row stored before parts were recorded: the delegate and the approver's user id only.
    old = ApprovalState(request_row(), [change_row(["ann"], delegations={"gina": "ann"})])
    with pytest.raises(ApprovalForbiddenError, match=r"^ann delegated task req\.0 to gina$"):
        vote("ann", frozenset(), "req.0", True, None, 1.0)(old)
    # Handed on, the part is recorded from then on.
    to_hal = delegate("gina", frozenset(), "req.0", "hal", 1.0)(old.copy())
    assert to_hal == ApprovalChange(
        ApprovalState(
            request_row(updated_at=1.0),
            [change_row(["ann"], delegations={"hal": "ann"}, delegated_as={"hal": "user:ann"})],
        ),
        signal=False,
        notes=[("gina", "approval.delegated", {"task": "req.0", "to": "hal", "as": "user:ann"})],
    )
    state = old
    for at, (user, groups) in enumerate([("dora", {"dba"}), ("nina", {"net"})], start=1):
        state = vote(user, frozenset(groups), "req.0", True, None, float(at))(state).state
    done = vote("gina", frozenset(), "req.0", True, None, 3.0)(state)
    assert done.new_votes == [ApprovalVoteRow("req.0", "req", "gina", True, None, "user:ann", 3.0)]
    assert done.state.request == request_row(
        status=RequestStatus.APPROVED, decided_by="gina", decided_at=3.0, updated_at=3.0
    )
