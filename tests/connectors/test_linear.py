"""Linear connector against a fake that validates and executes every query on Linear's schema."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from saas_vendors import linear_fake, linear_rate_limited

from opsloom import App
from opsloom.connectors.builtin import linear
from opsloom.connectors.testing import FakeRequest, FakeVendor
from opsloom.errors import ConnectorPermanentError, RateLimitedError

KEY = "lin_api_0123456789abcdef"
TEAM = "9cfb482a-81e3-4154-b5b9-2c805e70a02d"


@pytest.fixture
def fake() -> Iterator[FakeVendor]:
    with linear_fake() as vendor:
        yield vendor
    assert vendor.problems == []


async def add(app: App, fake: FakeVendor) -> None:
    settings = {"api_key": KEY, "api_url": f"{fake.url}/graphql"}
    await app.connections.add_connection("lin", "linear", settings)


async def test_create_issue__typed_input_reaches_issue_create(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    out = await ops.connections.call(
        linear.create_issue,
        "lin",
        {"team_id": TEAM, "title": "db-1 disk full", "description": "98%", "priority": 1},
    )
    assert out["identifier"] == "OPS-1" and out["priority"] == 1.0
    assert out["url"].endswith("/OPS-1")
    sent = fake.last()
    assert sent.headers["authorization"] == KEY
    assert sent.json["variables"]["input"] == {
        "teamId": TEAM,
        "title": "db-1 disk full",
        "description": "98%",
        "priority": 1,
    }


async def test_create_issue__a_retried_step_returns_the_first_issue(
    ops: App, fake: FakeVendor
) -> None:
    await add(ops, fake)
    data = {"team_id": TEAM, "title": "once"}
    first = await ops.connections.call(linear.create_issue, "lin", data, idempotency_key="r1:3")
    again = await ops.connections.call(linear.create_issue, "lin", data, idempotency_key="r1:3")
    assert again == first
    assert len(fake.issues) == 1  # type: ignore[attr-defined]
    other = await ops.connections.call(linear.create_issue, "lin", data, idempotency_key="r1:4")
    assert other["identifier"] == "OPS-2"


async def test_add_comment__by_identifier_and_once_per_step(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    issue = await ops.connections.call(linear.create_issue, "lin", {"team_id": TEAM, "title": "x"})
    data = {"issue_id": issue["identifier"], "body": "Rolled back **v2**."}
    made = await ops.connections.call(linear.add_comment, "lin", data, idempotency_key="r2:1")
    assert made["issue_id"] == issue["id"]
    again = await ops.connections.call(linear.add_comment, "lin", data, idempotency_key="r2:1")
    assert again == made and len(fake.comments) == 1  # type: ignore[attr-defined]


async def test_add_comment__unknown_issue_is_permanent(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    with pytest.raises(ConnectorPermanentError, match="Entity not found: Issue"):
        await ops.connections.call(linear.add_comment, "lin", {"issue_id": "NOPE-1", "body": "x"})


async def test_rate_limited__reset_header_in_ms_becomes_the_delay(
    ops: App, fake: FakeVendor
) -> None:
    await add(ops, fake)
    reset_ms = int((ops.clock.now() + 42) * 1000)
    fake.fail_next(linear_rate_limited(reset_ms))
    with pytest.raises(RateLimitedError) as caught:
        await ops.connections.call(linear.create_issue, "lin", {"team_id": TEAM, "title": "x"})
    assert caught.value.retry_after == pytest.approx(42, abs=0.01)
    assert "RATELIMITED" not in str(caught.value) and "Rate limit exceeded" in str(caught.value)


async def test_oauth_token_and_connection_check(ops: App, fake: FakeVendor) -> None:
    settings = {"api_key": "oauth-token-1234", "auth": "oauth", "api_url": f"{fake.url}/graphql"}
    await ops.connections.add_connection("lin-oauth", "linear", settings)
    with linear_fake(auth="Bearer ") as bearer:
        await ops.connections.add_connection(
            "lin-b", "linear", {**settings, "api_url": f"{bearer.url}/graphql"}
        )
        assert await ops.connections.test_connection("lin-b") == "Linear as Ops Bot <bot@acme.test>"
        assert bearer.last().headers["authorization"] == "Bearer oauth-token-1234"
    assert bearer.problems == []


def test_fake__refuses_what_the_schema_refuses() -> None:
    fake = linear_fake()

    def ask(query: str, variables: object = None) -> list[str]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        headers = {"authorization": KEY, "content-type": "application/json"}
        fake.problems.clear()
        assert fake.serve(FakeRequest("POST", "/graphql", {}, headers, body)).status == 400
        return fake.problems

    assert any("issueMake" in p for p in ask("mutation { issueMake { success } }"))
    assert any("titel" in p for p in ask('query { issue(id: "x") { titel } }'))
    wrong = "mutation M($input: IssueCreateInput!) { issueCreate(input: $input) { success } }"
    assert any("teamId" in p for p in ask(wrong, {"input": {"title": "no team"}}))
    assert any("priority" in p for p in ask(wrong, {"input": {"teamId": "t", "priority": "hi"}}))
