"""``approval:1.0.0`` in documents, stages chosen by a policy table, and the pure rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from approval_fixtures import eventually, service

from opsloom import App, Context, FakeClock
from opsloom.app import default_catalog
from opsloom.approvals.approval import approval, register_approval
from opsloom.approvals.flow import new_state, vote
from opsloom.approvals.spec import (
    ApprovalRequest,
    InvalidApprovalError,
    Stage,
)
from opsloom.approvals.stats import nearest_rank, stage_stats
from opsloom.decisions.decide import DecisionTables
from opsloom.dsl.runtime import DslRuntime
from opsloom.errors import StoreError
from opsloom.expr.problem import TaskError
from opsloom.identity.access import Identity
from opsloom.model.approval import ApprovalChange, ApprovalState

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "decisions"

DOCUMENT = """\
document:
  dsl: '1.0.3'
  namespace: test
  name: change
  version: '1.0.0'
do:
  - approve:
      call: approval:1.0.0@default
      with:
        title: ${ "Deploy " + .service.team }
        requester: rita
        subject: ${ . }
        risk: ${ .risk }
        policy: approval-policy
        raise_on_deny: ${ .strict }
  - done:
      set:
        approved: ${ .approved }
        reason: ${ .reason }
        stages: ${ [.stages[].name] }
"""

CHANGE = {
    "risk": 0.8,
    "environment": "production",
    "service": {"tier": 1, "team": "payments", "dataClass": "none"},
}


async def _people(app: App, clock: FakeClock) -> Identity:
    identity = Identity(app.store, clock)
    for user, group in (
        ("rita", "payments-engineers"),
        ("paul", "payments-engineers"),
        ("lena", "payments-leads"),
        ("cora", "change-board"),
        ("cole", "change-board"),
    ):
        await identity.add_user(user, roles=("approver",), actor="test")
        await identity.add_to_group(user, group, actor="test")
    return identity


async def _open_task(app: App, run_id: str, name: str) -> str:
    found: list[str] = []

    async def check() -> bool:
        states = [s for s in await app.store.list_approvals(None, 10) if s.request.run_id == run_id]
        found[:] = [
            s.id for st in states for s in st.stages if s.name == name and s.status == "open"
        ]
        return bool(found)

    await eventually(check)
    return found[0]


async def test_approval__document_with_policy_collects_stages(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    catalog = default_catalog(decision_tables=DecisionTables.load_directory(EXAMPLES))
    if not catalog.has("approval", "1.0.0"):
        register_approval(catalog, DecisionTables.load_directory(EXAMPLES))
    runtime = DslRuntime(app, catalog=catalog)
    workflow = runtime.register(runtime.load(DOCUMENT, "change.yaml"), DOCUMENT)
    try:
        async with app:
            identity = await _people(app, clock)
            approvals = service(app, clock)
            handle = await app.start(workflow, {**CHANGE, "strict": False})
            for name, users in (
                ("peer-review", ["paul"]),
                ("service-owner", ["lena"]),
                ("change-board", ["cora", "cole"]),
            ):
                task = await _open_task(app, handle.run_id, name)
                for user in users:
                    await approvals.decide(await identity.principal(user), task, True, "ok")
            assert await handle.result(timeout=20) == {
                "approved": True,
                "reason": "ok",
                "stages": ["peer-review", "service-owner", "change-board"],
            }
            strict = await app.start(workflow, {**CHANGE, "strict": True})
            task = await _open_task(app, strict.run_id, "peer-review")
            await approvals.decide(await identity.principal("paul"), task, False, "no tests")
            with pytest.raises(Exception, match="no tests"):
                await strict.result(timeout=20)
    finally:
        await runtime.close()


async def test_approval__policy_from_code_with_nothing_to_approve(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    table = DecisionTables.load_directory(EXAMPLES).get("approval-policy")

    @app.workflow(name="dev-change")
    async def dev_change(ctx: Context) -> dict[str, Any]:
        request = ApprovalRequest(
            title="Tweak dev",
            requester="rita",
            subject={"environment": "development", "service": {"tier": 3, "team": "x"}},
            risk=0.1,
            policy=table,
        )
        return (await approval(ctx, request)).to_dict()

    async with app:
        result = await (await app.start("dev-change")).result(timeout=10)
    assert result["approved"] is True and result["decided_by"] == "policy"
    assert result["stages"] == []


def test_rules__invalid_stages_and_denials_without_reason() -> None:
    with pytest.raises(InvalidApprovalError, match="names no approver"):
        Stage("empty")
    with pytest.raises(InvalidApprovalError, match="need an sla"):
        Stage("x", users=("a",), on_sla="deny")
    with pytest.raises(InvalidApprovalError, match="stages or a policy"):
        ApprovalRequest(title="t", requester="r")
    state = new_state("r1", None, {"title": "t", "requester": "r"}, (Stage("s", users=("a",)),), 0)
    with pytest.raises(InvalidApprovalError, match="needs a reason"):
        vote("a", frozenset(), "r1.0", False, "  ", 1.0)(state)


def test_stats__nearest_rank_percentiles_and_sla_share() -> None:
    assert nearest_rank([], 50) is None
    assert nearest_rank([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert nearest_rank([float(n) for n in range(1, 21)], 95) == 19.0
    states = []
    for n, seconds in enumerate((60.0, 120.0, 7200.0)):
        state = new_state(
            f"r{n}",
            None,
            {"title": "t", "requester": "r"},
            (Stage("s", users=("a",), sla=3600),),
            0,
        )
        state = vote("a", frozenset(), f"r{n}.0", True, None, seconds)(state).state
        states.append(state)
    (stats,) = stage_stats(states)
    assert (stats.decided, stats.p50_seconds, stats.p95_seconds) == (3, 120.0, 7200.0)
    assert stats.within_sla == pytest.approx(2 / 3)


async def test_store__one_vote_per_voter_and_stage_is_a_constraint(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    # Even a change that skipped the check could not count a voter twice: the second insert
    # breaks approval_votes_voter_uq, and nothing of that change is stored.
    app = make_app(clock=clock, client=True)
    stage = Stage("s", groups=("g",), mode=2)
    async with app:
        state = new_state("r1", None, {"title": "t", "requester": "r"}, (stage,), clock.now())
        await app.store.create_approval(state, clock.now())
        await app.store.change_approval("r1", vote("a", frozenset({"g"}), "r1.0", True, None, 1), 1)

        def twice(current: ApprovalState) -> ApprovalChange:
            done = vote("b", frozenset({"g"}), "r1.0", True, None, 2)(current)
            done.new_votes.append(dataclasses.replace(done.new_votes[0], voter="a"))
            return done

        with pytest.raises(StoreError, match="approval_votes"):
            await app.store.change_approval("r1", twice, 2)
        stored = await app.store.get_approval("r1")
    assert stored is not None
    assert [v.voter for v in stored.votes] == ["a"]
    assert stored.stages[0].status == "open"


def test_approval_schema__mode_may_be_a_quorum_number_as_in_python() -> None:
    catalog = default_catalog()
    function = catalog.function("approval", "1.0.0")
    stage = {"name": "leads", "groups": ["leads"], "mode": 2}
    function.check({"title": "t", "requester": "r", "stages": [stage]})
    assert Stage.from_dict(stage) == Stage("leads", groups=("leads",), mode=2)
    with pytest.raises(TaskError, match="stages/0/mode"):
        function.check({"title": "t", "requester": "r", "stages": [{**stage, "mode": 0}]})
