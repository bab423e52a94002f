"""Jira Cloud connector against a fake shaped by Atlassian's REST v3 documentation."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from vendors import jira_fake

from opsloom import App
from opsloom.connectors.builtin import jira
from opsloom.connectors.testing import FakeVendor
from opsloom.errors import ConnectorPermanentError

TOKEN = "ATATT-jira-api-token"


@pytest.fixture
def fake() -> Iterator[FakeVendor]:
    with jira_fake() as vendor:
        yield vendor
    assert vendor.problems == []


async def add(app: App, fake: FakeVendor) -> None:
    settings = {"site_url": fake.url, "email": "bot@acme.test", "api_token": TOKEN}
    await app.connections.add_connection("jira", "jira", settings)


async def test_create_issue__text_becomes_adf(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    out = await ops.connections.call(
        jira.create_issue,
        "jira",
        {
            "project": "OPS",
            "summary": "db-1 disk full",
            "issue_type": "Incident",
            "description": "Disk at 98%.\n\nRunbook: clean /var/log",
            "labels": ["sev1"],
        },
    )
    assert out["key"] == "OPS-1"
    sent = fake.last()
    pair = base64.b64decode(sent.headers["authorization"].split()[1]).decode()
    assert pair == f"bot@acme.test:{TOKEN}"
    description = sent.json["fields"]["description"]
    assert [p["content"][0]["text"] for p in description["content"]] == [
        "Disk at 98%.",
        "Runbook: clean /var/log",
    ]


async def test_comment_and_transition_by_status_name(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    adf = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": []}]}
    assert await ops.connections.call(
        jira.add_comment, "jira", {"issue": "OPS-1", "body": adf}
    ) == {"id": "10000"}
    moved = await ops.connections.call(
        jira.transition_issue, "jira", {"issue": "OPS-1", "transition": "done", "comment": "fixed"}
    )
    assert moved == {"issue": "OPS-1", "transition_id": "31", "status": "Done"}
    assert fake.last().json["transition"] == {"id": "31"}


async def test_unknown_transition__names_the_available_ones(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    with pytest.raises(ConnectorPermanentError, match="11=Start, 31=Resolve"):
        await ops.connections.call(
            jira.transition_issue, "jira", {"issue": "OPS-1", "transition": "Nope"}
        )


async def test_bad_adf__refused(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    with pytest.raises(ConnectorPermanentError, match="ADF"):
        await ops.connections.call(
            jira.add_comment, "jira", {"issue": "OPS-1", "body": {"type": "p"}}
        )
    assert fake.requests == []


async def test_connection_check_and_basic_credential_redacted(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    assert await ops.connections.test_connection("jira") == "Jira as Ops Bot"
