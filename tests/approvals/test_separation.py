"""Separation of duties: who started a run is recorded, and never decides its approvals.

The run's starter comes from the run record (the authenticated user, ``trigger:<id>``,
``schedule:<id>``), never from the request's own fields, so a ``requester`` naming someone
else does not let the starter approve their own change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from approval_fixtures import add_people, request_of_run, service

from opsloom import App, Context, FakeClock
from opsloom.api import create_api
from opsloom.approvals.approval import approval
from opsloom.approvals.spec import ApprovalForbiddenError, ApprovalRequest, Stage
from opsloom.dsl.runtime import DslRuntime
from opsloom.identity.access import Identity
from opsloom.settings import Settings


def _request(**options: Any) -> ApprovalRequest:
    return ApprovalRequest(
        title="Drop the audit table",
        requester="rita",  # the input claims someone else asked
        stages=(Stage("lead", groups=("leads",)),),
        **options,
    )


async def test_starter__may_not_decide_the_approvals_of_their_run(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        return (await approval(ctx, _request())).to_dict()

    async with app:
        identity = Identity(app.store, clock)
        await add_people(identity)
        handle = await app.start("change", started_by="alice")
        assert (await app.get_run(handle.run_id)).started_by == "alice"
        state = await request_of_run(app, handle.run_id)
        assert state.request.started_by == "alice"
        approvals = service(app, clock)
        alice = await identity.principal("alice")
        assert await approvals.pending_for(alice) == []
        with pytest.raises(ApprovalForbiddenError, match="started run"):
            await approvals.decide(alice, state.stages[0].id, True, "mine")
        await approvals.decide(await identity.principal("bob"), state.stages[0].id, True, "ok")
        result = await handle.result(timeout=10)
    assert (result["approved"], result["decided_by"]) == (True, "bob")


async def test_starter__decides_when_the_request_allows_it(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        return (await approval(ctx, _request(starter_may_decide=True))).to_dict()

    async with app:
        identity = Identity(app.store, clock)
        await add_people(identity)
        handle = await app.start("change", started_by="alice")
        state = await request_of_run(app, handle.run_id)
        await service(app, clock).decide(
            await identity.principal("alice"), state.stages[0].id, True, "allowed"
        )
        result = await handle.result(timeout=10)
    assert (result["approved"], result["decided_by"]) == (True, "alice")


async def test_starter__children_inherit_it_and_code_sees_it(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="leaf")
    async def leaf(ctx: Context) -> str | None:
        return ctx.started_by

    @app.workflow(name="parent")
    async def parent(ctx: Context) -> list[str | None]:
        return [ctx.started_by, await ctx.child("leaf")]

    async with app:
        handle = await app.start("parent", started_by="dave")
        assert await handle.result(timeout=10) == ["dave", "dave"]


async def test_starter__recorded_from_the_api_token_and_shown_to_documents(
    tmp_path: Path, clock: FakeClock
) -> None:
    app = App(f"sqlite:///{tmp_path / 'starter.db'}", clock=clock)
    runtime = DslRuntime(app)
    text = (
        "document: {dsl: '1.0.3', namespace: test, name: who, version: '1.0.0'}\n"
        "do:\n  - who:\n      set:\n        by: ${ $workflow.startedBy }\n"
    )
    name = runtime.register(runtime.load(text, "who.yaml"), text)
    async with app:
        identity = Identity(app.store, clock)
        await identity.add_user("olga", roles=("operator",), actor="test")
        token = await identity.create_token("olga", name="t", actor="test")
        api = create_api(app, Settings())
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api), base_url="http://opsloom.test"
        ) as client:
            response = await client.post(
                "/api/v1/runs",
                json={"workflow": name, "input": {}},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 201, response.text
        assert response.json()["started_by"] == "olga"
        output = await app.handle(response.json()["id"]).result(timeout=10)
    await runtime.close()
    assert output == {"by": "olga"}


async def test_all__one_person_in_two_groups_covers_one_of_them(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    # carol is in leads and managers; dave in managers.
    stage = Stage("board", groups=("leads", "managers"), mode="all")

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        request = ApprovalRequest(title="Failover", requester="rita", stages=(stage,))
        return (await approval(ctx, request)).to_dict()

    async with app:
        identity = Identity(app.store, clock)
        await add_people(identity)
        handle = await app.start("change")
        state = await request_of_run(app, handle.run_id)
        approvals = service(app, clock)
        task = state.stages[0].id
        await approvals.decide(await identity.principal("carol"), task, True, "both of my hats")
        shown = await approvals.show(state.request.id)
        assert shown["stages"][0]["status"] == "open"
        await approvals.decide(await identity.principal("dave"), task, True, "managers")
        result = await handle.result(timeout=10)
    assert (result["approved"], result["decided_by"]) == (True, "dave")


async def test_distinct_approvers__one_person_decides_one_stage(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    stages = (Stage("lead", groups=("leads",)), Stage("manager", groups=("managers",)))

    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        request = ApprovalRequest(
            title="Failover", requester="rita", stages=stages, distinct_approvers=True
        )
        return (await approval(ctx, request)).to_dict()

    async with app:
        identity = Identity(app.store, clock)
        await add_people(identity)
        handle = await app.start("change")
        state = await request_of_run(app, handle.run_id)
        approvals = service(app, clock)
        carol = await identity.principal("carol")
        await approvals.decide(carol, state.stages[0].id, True, "lead ok")
        with pytest.raises(ApprovalForbiddenError, match="distinct approver"):
            await approvals.decide(carol, state.stages[1].id, True, "manager ok")
        await approvals.decide(await identity.principal("dave"), state.stages[1].id, True, "ok")
        result = await handle.result(timeout=10)
    assert result["approved"] is True
