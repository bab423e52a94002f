"""The change-approval runbook against real Prometheus and the GitHub and Jira fakes.

A change arrives as GitHub's documented ``pull_request`` webhook (posted, signed, to
``/hooks/github``) or from the API; its risk comes from ``change-risk.yaml``, its stages from
``approval-policy.yaml``. Executing it dispatches the repository's ``deploy.yml`` workflow on
the GitHub fake; a deploy that breaks the service opens the test's gate, so Prometheus really
fires ``OpsloomE2EDiskFull`` for ``checkout``, the verification sees it and the compensation
dispatches ``rollback.yml`` (which closes the gate again).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from datetime import UTC, datetime, time
from typing import Any, NamedTuple

import httpx
import pytest
from examples.runbooks.change import (
    PULL_REQUEST,
    RECORDED,
    WORKFLOW,
    ChangeRequestError,
    ChangeSettings,
    ChangeWindow,
    install,
)
from test_incident_runbook import Gate, Peers, peers, until  # noqa: F401 - the peers fixture
from vendors import contract, github_fake, jira_fake

from opsloom import App, WorkerOptions
from opsloom.api import create_api
from opsloom.api.routes import hooks
from opsloom.connectors.testing import FakeRequest, FakeResponse, FakeVendor
from opsloom.errors import RunFailedError
from opsloom.identity.access import Identity
from opsloom.services.event import list_events
from opsloom.settings import Settings
from opsloom.triggers.sources import load_hooks_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

GITHUB_SECRET = "change-webhook-secret"
ALWAYS = ChangeWindow(weekdays=tuple(range(7)), start=time(0, 0), end=time(23, 59, 59, 999999))
PEOPLE = {
    "erin": "payments-engineers",
    "frank": "payments-leads",
    "grace": "engineering-managers",
    "heidi": "search-engineers",
}


class Fakes(NamedTuple):
    github: FakeVendor
    jira: FakeVendor


def deploying(vendor: FakeVendor, gate: Gate, *, breaks: bool) -> FakeVendor:
    """GitHub whose ``deploy.yml`` breaks checkout (``breaks``) and ``rollback.yml`` mends it."""

    def wrap(route: Any) -> Any:
        def dispatched(request: FakeRequest) -> FakeResponse:
            answer = route(request)
            if request.path.endswith("/deploy.yml/dispatches") and breaks:
                gate.set(1)
            if request.path.endswith("/rollback.yml/dispatches"):
                gate.set(0)
            return answer  # type: ignore[no-any-return]

        return dispatched

    vendor.routes = [(method, pattern, wrap(fn)) for method, pattern, fn in vendor.routes]
    return vendor


@pytest.fixture
def breaks() -> bool:
    return False


@pytest.fixture
def fakes(peers: Peers, breaks: bool) -> Iterator[Fakes]:  # noqa: F811 - the peers fixture
    peers.gate.set(0)
    with ExitStack() as stack:
        gh = stack.enter_context(deploying(github_fake(), peers.gate, breaks=breaks))
        jira = stack.enter_context(jira_fake())
        yield Fakes(gh, jira)
    peers.gate.set(0)
    assert gh.problems == jira.problems == []


def settings(**changes: Any) -> ChangeSettings:
    base: dict[str, Any] = {
        "services": {
            "acme/checkout": {"tier": 1, "team": "payments"},
            "search": {"tier": 3, "team": "search"},
        },
        "window": ALWAYS,
        "verify_checks": 4,
        "verify_interval": 0.5,
    }
    return ChangeSettings(**{**base, **changes})


class World(NamedTuple):
    app: App
    peers: Peers
    fakes: Fakes


@pytest.fixture
def world(db_url: str, peers: Peers, fakes: Fakes) -> World:  # noqa: F811 - the fixture
    return World(
        App(db_url, worker=WorkerOptions(poll_seconds=0.05, grace_seconds=5)), peers, fakes
    )


@asynccontextmanager
async def running(world: World, **changes: Any) -> AsyncIterator[Identity]:
    """The runbook installed (``settings(**changes)``), the app open and connected; the people."""
    install(world.app, settings(**changes))
    async with world.app:
        yield await connect(world.app, world.peers, world.fakes)


async def connect(app: App, peers: Peers, fakes: Fakes) -> Identity:  # noqa: F811
    add = app.connections.add_connection
    await add("prometheus", "prometheus", {"url": peers.prometheus.url})
    await add("github", "github", {"token": "ghp_secret", "api_url": fakes.github.url})
    jira = {"site_url": fakes.jira.url, "email": "bot@acme.test", "api_token": "t0k3n"}
    await add("jira", "jira", jira)
    identity = Identity(app.store, app.clock)
    for user, group in PEOPLE.items():
        await identity.add_user(user, roles=("approver",), actor="test")
        await identity.add_to_group(user, group, actor="test")
    return identity


def pull_request(**changes: Any) -> bytes:
    """GitHub's documented ``pull_request`` ``labeled`` example, on acme/checkout."""
    examples = next(
        e for e in contract("github/webhooks-examples/index.json") if e["name"] == "pull_request"
    )
    payload = copy.deepcopy(next(x for x in examples["examples"] if x["action"] == "labeled"))
    payload["label"] = {**payload["label"], "name": "change"}
    pr = payload["pull_request"]
    pr["labels"] = [payload["label"]]
    pr.update(changes)
    payload["repository"].update(full_name="acme/checkout", name="checkout")
    return json.dumps(payload).encode()


async def post_pull_request(app: App, body: bytes) -> None:
    api = create_api(app, Settings(api_token="api-token"))
    api.state.hooks = hooks.HookReceiver(
        load_hooks_config(environ={"OPSLOOM_HOOKS_GITHUB_SECRET": GITHUB_SECRET})
    )
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": "delivery-1",
        "X-Hub-Signature-256": "sha256="
        + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsloom.test") as client:
        answer = await client.post("/hooks/github", content=body, headers=headers)
    assert answer.status_code == 202, answer.text


def dispatches(fakes: Fakes) -> list[tuple[str, dict[str, Any]]]:
    return [
        (r.path.split("/")[-2], r.json)
        for r in fakes.github.requests
        if r.path.endswith("/dispatches")
    ]


def pr_comments(fakes: Fakes) -> list[str]:
    return [r.json["body"] for r in fakes.github.requests if r.path.endswith("/comments")]


def ticket_comments(fakes: Fakes) -> str:
    return json.dumps([r.json for r in fakes.jira.requests if r.path.endswith("/comment")])


async def decide(app: App, identity: Identity, user: str, approve: bool, why: str) -> None:
    """``user`` decides the open stage they may decide."""

    async def open_task() -> str | None:
        for request in await app.approvals.requests(status="pending"):
            for stage in request["stages"]:
                names = json.dumps(stage["approvers"])
                if stage["status"] == "open" and PEOPLE[user] in names:
                    return str(stage["task"])
        return None

    task: str = await until(f"a stage {user} decides", open_task)
    await app.approvals.decide(await identity.principal(user), task, approve, why)


async def test_change__pull_request_scored_parallel_stages_approved_executed_verified_recorded(
    world: World,
) -> None:
    app, _, fakes = world
    async with running(world) as identity:
        await post_pull_request(app, pull_request(additions=10, deletions=2))

        async def both_open() -> list[dict[str, Any]] | None:
            pending = await app.approvals.requests(status="pending")
            return pending if pending and len(pending[0]["stages"]) == 2 else None

        [request] = await until("the approval", both_open)
        # production (40) + tier 1 (10): 0.5, so a peer review and the service owner, at once.
        assert request["risk"] == "0.5"
        assert [s["name"] for s in request["stages"]] == ["peer-review", "service-owner"]
        assert [s["status"] for s in request["stages"]] == ["open", "open"]
        await decide(app, identity, "frank", True, "owner ok")
        await decide(app, identity, "erin", True, "lgtm")
        [run] = await app.list_runs(workflow=WORKFLOW)
        output = await app.result(run.id, timeout=60)
        [recorded] = await list_events(app, type=RECORDED)
    assert output["outcome"] == "done" and output["approval"] == "approved"
    assert {s["decided_by"] for s in output["stages"]} == {"erin", "frank"}
    [(workflow, body)] = dispatches(fakes)
    assert workflow == "deploy.yml" and body["ref"] == "changes"  # the pull request's branch
    assert body["inputs"]["change"] == "acme/checkout#2"
    comments = pr_comments(fakes)
    assert comments[0].startswith("**Change acme/checkout#2**: requested by Codertocat; risk 0.5")
    assert comments[-1].endswith("outcome: done")
    created = fakes.jira.last("/rest/api/3/issue").json["fields"]
    assert created["project"] == {"key": "CHG"} and created["labels"] == ["change", "production"]
    assert "approved (2 stage(s))" in ticket_comments(fakes)
    record = recorded.event.data  # the audit record of the change
    assert record["outcome"] == "done" and record["ticket"] == output["ticket"]
    assert record["change"]["pull_request"] == 2 and len(record["timeline"]) == 4


async def test_change__from_the_api_rejected_by_the_reviewer_executes_nothing(world: World) -> None:
    app, _, fakes = world
    async with running(world) as identity:
        handle = await app.start(
            WORKFLOW,
            {
                "id": "CHG-search-7",
                "title": "Reindex search",
                "requester": "ivan",
                "service": "search",
                "environment": "staging",
                "kind": "config",
                "lines": 3,
            },
        )
        await decide(app, identity, "heidi", False, "reindex during the sale? no")
        output = await handle.result(timeout=60)
    assert output["outcome"] == "rejected" and output["approval"] == "denied"
    assert output["risk"] == 0.1  # staging (10)
    assert dispatches(fakes) == []
    assert "rejected by heidi: reindex during the sale? no" in ticket_comments(fakes)
    assert pr_comments(fakes) == []  # not a pull request


@pytest.mark.parametrize("breaks", [True])
async def test_change__nobody_answers_escalates_then_approved_and_a_breaking_change_rolls_back(
    world: World,
) -> None:
    app, _, fakes = world
    async with running(world, stage_sla=1.0, verify_checks=30) as identity:
        handle = await app.start(
            WORKFLOW,
            {
                "id": "CHG-9",
                "title": "Resize the checkout pool",
                "repository": "acme/checkout",
                "environment": "staging",
                "rollback": True,
            },
        )
        # The payments engineers do not answer within the SLA: the managers are asked.
        await decide(app, identity, "grace", True, "go ahead")
        with pytest.raises(RunFailedError, match="failed its verification on checkout"):
            await handle.result(timeout=60)
        [request] = await app.approvals.requests()
    [stage] = request["stages"]
    assert stage["escalations"] == 1 and stage["decided_by"] == "grace"
    assert [w for w, _ in dispatches(fakes)] == ["deploy.yml", "rollback.yml"]
    assert world.peers.gate.value == 0  # the rollback mended the service
    assert "outcome: failed verification" in ticket_comments(fakes)


def test_window__inside_now_or_the_next_opening() -> None:
    window = ChangeWindow(weekdays=(0, 1, 2, 3), start=time(9), end=time(16))
    monday_noon = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert window.next_start(monday_noon) is None
    assert window.next_start(datetime(2026, 12, 7, 7, 0, tzinfo=UTC)) == datetime(
        2026, 12, 7, 9, 0, tzinfo=UTC
    )
    friday = datetime(2026, 12, 11, 10, 0, tzinfo=UTC)  # Friday: next Monday
    assert window.next_start(friday) == datetime(2026, 12, 14, 9, 0, tzinfo=UTC)
    assert window.next_start(datetime(2026, 12, 10, 16, 0, tzinfo=UTC)) == datetime(
        2026, 12, 14, 9, 0, tzinfo=UTC
    )
    with pytest.raises(ChangeRequestError, match="never opens"):
        ChangeWindow(weekdays=()).next_start(monday_noon)


def test_request__names_what_is_missing_or_wrong() -> None:
    from examples.runbooks.change import Change

    change = Change(settings())
    with pytest.raises(ChangeRequestError, match="no 'title'"):
        change.request({"id": "1", "environment": "staging"})
    with pytest.raises(ChangeRequestError, match="environment 'prod' is not one of"):
        change.request({"id": "1", "title": "x", "environment": "prod"})
    found = change.request(
        {"type": PULL_REQUEST, "data": {"raw": json.loads(pull_request(additions=1, deletions=0))}}
    )
    assert found["service"] == {"tier": 1, "team": "payments", "name": "checkout"}
    assert found["environment"] == "production" and found["lines"] == 1
