"""Approvals from runs: durable waits, SLA ladders on a fake clock, denial reasons, crashes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from approval_fixtures import add_people, eventually, request_of_run, service

from opsloom import App, Context, FakeClock, RunStatus
from opsloom.app import RunHandle
from opsloom.approvals.approval import approval
from opsloom.approvals.service import Approvals, request_of
from opsloom.approvals.spec import (
    ApprovalDeniedError,
    ApprovalForbiddenError,
    ApprovalRequest,
    Approvers,
    Stage,
)
from opsloom.identity.access import Identity
from opsloom.identity.audit import AuditLog
from opsloom.model.approval import ApprovalChange, ApprovalState

HOUR = 3600.0


def _request(*stages: Stage, requester: str = "rita") -> ApprovalRequest:
    return ApprovalRequest(
        title="Restart the payments database",
        requester=requester,
        subject={"service": "payments-db"},
        risk="high",
        impact="customer-facing",
        stages=stages,
    )


async def _parked(app: App, run_id: str) -> None:
    async def check() -> bool:
        run = await app.get_run(run_id)
        return (
            run.status is RunStatus.WAITING
            and app.worker is not None
            and run_id not in app.worker.executions
        )

    await eventually(check)


async def test_approval__ladder_of_three_groups_then_auto_deny(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    ladder = (Approvers(groups=("managers",)), Approvers(groups=("directors",)))
    stage = Stage("lead", groups=("leads",), sla=4 * HOUR, escalate_to=ladder, on_sla="deny")

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        return (await approval(ctx, _request(stage))).to_dict()

    async with app:
        await add_people(Identity(app.store, clock))
        handle = await app.start("change")
        state = await request_of_run(app, handle.run_id)
        await _parked(app, handle.run_id)
        opened = clock.now()
        assert state.stages[0].deadline == opened + 4 * HOUR
        for level, group in ((1, "managers"), (2, "directors")):
            clock.advance(4 * HOUR)

            async def escalated(level: int = level) -> bool:
                now = await app.store.get_approval(state.request.id)
                return now is not None and now.stages[0].level == level

            await eventually(escalated)
            await _parked(app, handle.run_id)
            now = await app.store.get_approval(state.request.id)
            assert now is not None
            assert now.stages[0].approvers == {"users": [], "groups": [group]}
            assert now.stages[0].deadline == opened + (level + 1) * 4 * HOUR
        # Leads can no longer decide once the stage has moved up the ladder.
        with pytest.raises(ApprovalForbiddenError):
            await service(app, clock).decide(
                await Identity(app.store, clock).principal("alice"), state.stages[0].id, True
            )
        clock.advance(4 * HOUR)
        result = await handle.result(timeout=10)
        entries = await AuditLog(app.store, clock).entries()
    assert result["approved"] is False
    assert result["status"] == "denied"
    assert result["decided_by"] == "sla"
    assert "within its SLA" in result["reason"]
    assert result["stages"][0]["escalations"] == 2
    actions = [e.action for e in entries if e.subject == f"approval:{state.request.id}"]
    assert actions == ["approval.escalated", "approval.escalated", "approval.auto_denied"]


async def test_approval__denial_reason_reaches_the_workflow(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        try:
            await approval(ctx, _request(Stage("lead", groups=("leads",))), raise_on_deny=True)
        except ApprovalDeniedError as exc:
            return {"denied": exc.reason}
        return {"denied": None}

    async with app:
        identity = Identity(app.store, clock)
        await add_people(identity)
        handle = await app.start("change")
        state = await request_of_run(app, handle.run_id)
        approvals = service(app, clock)
        rita = await identity.principal("rita")
        with pytest.raises(ApprovalForbiddenError, match="separation of duties"):
            await approvals.decide(rita, state.stages[0].id, True)
        bob = await identity.principal("bob")
        await approvals.decide(bob, state.stages[0].id, False, "not during the sale")
        assert await handle.result(timeout=10) == {"denied": "not during the sale"}


async def test_approval__sequential_and_parallel_stages_with_quorum(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    stages = (
        Stage("lead", groups=("leads",), mode=2),
        Stage("security", users=("erin",)),
        Stage("vp", users=("frank",), parallel=True),
    )

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        return (await approval(ctx, _request(*stages))).to_dict()

    async with app:
        identity = Identity(app.store, clock)
        await add_people(identity)
        handle = await app.start("change")
        state = await request_of_run(app, handle.run_id)
        approvals = service(app, clock)
        lead, security, vp = (s.id for s in state.stages)
        assert [s.status for s in state.stages] == ["open", "waiting", "waiting"]
        await approvals.decide(await identity.principal("alice"), lead, True, "ok")
        shown = await approvals.show(state.request.id)
        assert shown["stages"][0]["status"] == "open"  # one of two
        await approvals.decide(await identity.principal("carol"), lead, True, "ok too")
        shown = await approvals.show(state.request.id)
        assert [s["status"] for s in shown["stages"]] == ["approved", "open", "open"]
        await approvals.decide(await identity.principal("frank"), vp, True)
        await approvals.decide(await identity.principal("erin"), security, True, "fine")
        result = await handle.result(timeout=10)
    assert result["approved"] is True
    assert result["decided_by"] == "erin"
    assert [len(s["votes"]) for s in result["stages"]] == [2, 1, 1]


async def test_approval__clarification_round_trip_pauses_the_sla(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    stage = Stage("lead", users=("alice",), sla=2 * HOUR, on_sla="deny")

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        return (await approval(ctx, _request(stage))).to_dict()

    async with app:
        identity = Identity(app.store, clock)
        await add_people(identity)
        handle = await app.start("change")
        state = await request_of_run(app, handle.run_id)
        approvals = service(app, clock)
        alice, rita = await identity.principal("alice"), await identity.principal("rita")
        task = state.stages[0].id
        clock.advance(HOUR)
        await approvals.ask(alice, task, "Is there a maintenance window?")
        assert [t["kind"] for t in await approvals.pending_for(rita)] == ["question"]
        clock.advance(5 * HOUR)  # longer than the SLA: paused, nothing happens
        await _parked(app, handle.run_id)
        assert (await approvals.show(state.request.id))["status"] == "pending"
        with pytest.raises(ApprovalForbiddenError):
            await approvals.answer(alice, state.request.id, "I answer myself")
        shown = await approvals.answer(rita, state.request.id, "Yes, 02:00-03:00 UTC")
        assert shown["stages"][0]["status"] == "open"
        assert shown["stages"][0]["deadline"] == state.stages[0].deadline + 5 * HOUR
        assert shown["clarifications"][0]["answer"] == "Yes, 02:00-03:00 UTC"
        await approvals.decide(alice, task, True, "window is fine")
        result = await handle.result(timeout=10)
    assert result["approved"] is True and result["reason"] == "window is fine"


async def test_approval__delegation(make_app: Callable[..., App], clock: FakeClock) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        return (await approval(ctx, _request(Stage("owner", users=("alice",))))).to_dict()

    async with app:
        identity = Identity(app.store, clock)
        await add_people(identity)
        handle = await app.start("change")
        state = await request_of_run(app, handle.run_id)
        approvals = service(app, clock)
        alice, gina = await identity.principal("alice"), await identity.principal("gina")
        task = state.stages[0].id
        with pytest.raises(ApprovalForbiddenError):
            await approvals.delegate(alice, task, "rita")  # never to the requester
        await approvals.delegate(alice, task, "gina")
        with pytest.raises(ApprovalForbiddenError, match="delegated"):
            await approvals.decide(alice, task, True)
        assert [t["task"] for t in await approvals.pending_for(gina)] == [task]
        await approvals.decide(gina, task, True, "on behalf of alice")
        result = await handle.result(timeout=10)
        entries = await AuditLog(app.store, clock).entries()
    assert result["approved"] is True and result["decided_by"] == "gina"
    assert result["stages"][0]["votes"][0]["as"] == "user:alice"
    assert [e.action for e in entries if e.action.startswith("approval.")] == [
        "approval.delegated",
        "approval.approved",
    ]


async def test_approval__crash_while_waiting_resumes_with_the_decision(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    def build() -> App:
        app = make_app(clock=clock)

        @app.workflow(name="change")
        async def change(ctx: Context) -> dict[str, Any]:
            stage = Stage("lead", groups=("leads",), mode="all", sla=HOUR, on_sla="deny")
            return (await approval(ctx, _request(stage))).to_dict()

        return app

    first = build()
    async with first:
        identity = Identity(first.store, clock)
        await add_people(identity)
        handle = await first.start("change")
        state = await request_of_run(first, handle.run_id)
        await _parked(first, handle.run_id)
    # The process is gone; decisions arrive while no worker runs the run.
    second = build()
    async with second:
        approvals = service(second, clock)
        identity = Identity(second.store, clock)
        await approvals.decide(await identity.principal("alice"), state.stages[0].id, True)
        result = await second.result(handle.run_id, timeout=10)
    assert result["approved"] is True
    assert result["stages"][0]["votes"][0]["voter"] == "alice"


async def test_approval__cancelling_the_run_withdraws_the_request(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        return (await approval(ctx, _request(Stage("lead", groups=("leads",))))).to_dict()

    async with app:
        identity = Identity(app.store, clock)
        await add_people(identity)
        handle = await app.start("change")
        state = await request_of_run(app, handle.run_id)
        await _parked(app, handle.run_id)
        await app.cancel(handle.run_id)

        async def withdrawn() -> bool:
            now = await app.store.get_approval(state.request.id)
            return now is not None and now.request.status == "cancelled"

        await eventually(withdrawn)
        approvals = service(app, clock)
        assert await approvals.pending_for(await identity.principal("alice")) == []
        entries = await AuditLog(app.store, clock).entries()
    assert [(e.actor, e.action) for e in entries if e.action.startswith("approval.")] == [
        ("system:run", "approval.cancelled")
    ]


async def test_change__and_its_audit_entries_commit_together(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    from opsloom.approvals.flow import withdraw
    from opsloom.errors import StoreError
    from opsloom.store.audit import AuditDraft

    app = make_app(clock=clock)

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        return (await approval(ctx, _request(Stage("lead", groups=("leads",))))).to_dict()

    async with app:
        identity = Identity(app.store, clock)
        await add_people(identity)
        handle = await app.start("change")
        state = await request_of_run(app, handle.run_id)
        request_id = state.request.id
        now = clock.now()

        def unhashable(done: Any) -> list[AuditDraft]:
            return [AuditDraft("alice", "approval.cancelled", "x", {"n": float("nan")}, now)]

        # An entry that cannot be written takes the change down with it.
        with pytest.raises(StoreError):
            await app.store.change_approval(request_id, withdraw("no", now), now, audit=unhashable)
        unchanged = await app.store.get_approval(request_id)
        assert unchanged is not None and unchanged.request.status == "pending"
        entries = await AuditLog(app.store, clock).entries()
        assert [e.action for e in entries if e.action.startswith("approval.")] == []

        def noted(done: Any) -> list[AuditDraft]:
            return [AuditDraft("alice", "approval.cancelled", f"approval:{request_id}", {}, now)]

        done = await app.store.change_approval(request_id, withdraw("no", now), now, audit=noted)
        assert done is not None and done.state.request.status == "cancelled"
        # Seen at once, without waiting: the entry was part of the change's transaction.
        entries = await AuditLog(app.store, clock).entries()
        assert [
            (e.actor, e.action, e.subject) for e in entries if e.action.startswith("approval.")
        ] == [("alice", "approval.cancelled", f"approval:{request_id}")]


def _asking(make_app: Callable[..., App], clock: FakeClock, stage: Stage) -> App:
    """An app whose workflow ``change`` asks for one approval of ``stage``."""
    app = make_app(clock=clock)

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        return (await approval(ctx, _request(stage))).to_dict()

    return app


async def _started(app: App, clock: FakeClock) -> tuple[RunHandle, str, Approvals, Identity]:
    """Start ``change`` once the people exist: its handle, its task, the service, identity."""
    identity = Identity(app.store, clock)
    await add_people(identity)
    handle = await app.start("change")
    state = await request_of_run(app, handle.run_id)
    return handle, state.stages[0].id, service(app, clock), identity


async def _delegations(app: App, task: str) -> tuple[dict[str, str], dict[str, str]]:
    stored = await app.store.get_approval(request_of(task))
    assert stored is not None
    return stored.stages[0].delegations, stored.stages[0].delegated_as


async def test_approval__all_groups_a_members_delegate_completes_the_group_as_stored(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    stage = Stage("change", users=("bob",), groups=("leads", "managers"), mode="all")
    app = _asking(make_app, clock, stage)
    async with app:
        handle, task, approvals, identity = await _started(app, clock)
        alice, bob, dave, erin, gina = [
            await identity.principal(u) for u in ("alice", "bob", "dave", "erin", "gina")
        ]
        await approvals.delegate(alice, task, "erin")
        await approvals.delegate(erin, task, "gina")
        assert await _delegations(app, task) == ({"gina": "alice"}, {"gina": "group:leads"})
        with pytest.raises(ApprovalForbiddenError, match="alice delegated"):
            await approvals.decide(alice, task, True)
        for who, comment in ((dave, None), (bob, None), (gina, "for alice")):
            clock.advance(60)
            await approvals.decide(who, task, True, comment)
        result = await handle.result(timeout=10)
    assert result["approved"] is True and result["decided_by"] == "gina"
    assert [(v["voter"], v["as"]) for v in result["stages"][0]["votes"]] == [
        ("dave", "group:managers"),
        ("bob", "user:bob"),
        ("gina", "group:leads"),
    ]


async def test_approval__a_delegation_stored_without_its_part_still_decides(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = _asking(
        make_app, clock, Stage("change", users=("alice",), groups=("managers",), mode="all")
    )

    def as_stored_before(state: ApprovalState) -> ApprovalChange:
        # What a row stored before parts were recorded holds: the delegate's approver only.
        state.stages[0].delegated_as = {}
        return ApprovalChange(state)

    async with app:
        handle, task, approvals, identity = await _started(app, clock)
        alice, dave, gina = [await identity.principal(u) for u in ("alice", "dave", "gina")]
        await approvals.delegate(alice, task, "gina")
        await app.store.change_approval(request_of(task), as_stored_before, clock.now())
        assert await _delegations(app, task) == ({"gina": "alice"}, {})
        assert [t["task"] for t in await approvals.pending_for(gina)] == [task]
        with pytest.raises(ApprovalForbiddenError, match="alice delegated"):
            await approvals.decide(alice, task, True)
        for who in (dave, gina):
            clock.advance(60)
            await approvals.decide(who, task, True)
        result = await handle.result(timeout=10)
    assert result["approved"] is True and result["decided_by"] == "gina"
    assert [(v["voter"], v["as"]) for v in result["stages"][0]["votes"]] == [
        ("dave", "group:managers"),
        ("gina", "user:alice"),
    ]
