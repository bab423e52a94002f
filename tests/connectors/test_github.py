"""GitHub connector against a fake that checks every request against GitHub's OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from vendors import github_fake, github_rate_limited

from opsloom import App, FakeClock
from opsloom.connectors.builtin import github
from opsloom.connectors.testing import FakeVendor
from opsloom.errors import RateLimitedError

TOKEN = "ghp_secretsecretsecret"
REPO = {"owner": "acme", "repo": "api"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeVendor]:
    with github_fake() as vendor:
        yield vendor


@pytest.fixture(autouse=True)
def clean(fake: FakeVendor) -> Iterator[None]:
    fake.requests.clear()
    yield
    assert fake.problems == []


async def add(app: App, fake: FakeVendor) -> None:
    await app.connections.add_connection("gh", "github", {"token": TOKEN, "api_url": fake.url})


async def test_issue_lifecycle(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    issue = await ops.connections.call(
        github.create_issue, "gh", {**REPO, "title": "db-1 disk full", "labels": ["incident"]}
    )
    assert issue["number"] == 1347 and issue["state"] == "open"
    sent = fake.last()
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    comment = await ops.connections.call(
        github.comment, "gh", {**REPO, "number": 1347, "body": "mitigated"}
    )
    assert comment["id"] > 0
    await ops.connections.call(
        github.close_issue, "gh", {**REPO, "number": 1347, "reason": "completed"}
    )
    assert fake.last().json == {"state": "closed", "state_reason": "completed"}


async def test_workflow_dispatch_and_deployment_status(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    out = await ops.connections.call(
        github.dispatch_workflow,
        "gh",
        {**REPO, "workflow": "rollback.yml", "ref": "main", "inputs": {"version": "1.2.3"}},
    )
    assert out == {"workflow": "rollback.yml", "ref": "main"}
    assert fake.last().path == "/repos/acme/api/actions/workflows/rollback.yml/dispatches"
    status = await ops.connections.call(
        github.deployment_status,
        "gh",
        {**REPO, "deployment_id": 42, "state": "success", "log_url": "https://ci/1"},
    )
    assert status["state"] == "success"


async def test_403_rate_limit__reset_epoch_is_the_delay(
    ops: App, fake: FakeVendor, clock: FakeClock
) -> None:
    await add(ops, fake)
    fake.fail_next(github_rate_limited(int(clock.now()) + 90))
    with pytest.raises(RateLimitedError) as caught:
        await ops.connections.call(github.create_issue, "gh", {**REPO, "title": "x"})
    assert caught.value.retry_after == 90.0


async def test_list_deployments__newest_first_with_their_creator(
    ops: App, fake: FakeVendor
) -> None:
    await add(ops, fake)
    out = await ops.connections.call(
        github.list_deployments, "gh", {**REPO, "environment": "production", "per_page": 5}
    )
    [deployment] = out["deployments"]  # the spec's example
    assert deployment["ref"] == "topic-branch" and deployment["creator"] == "octocat"
    assert deployment["environment"] == "production" and len(deployment["sha"]) == 40
    assert fake.last().query == {"environment": ["production"], "per_page": ["5"]}
