"""Slack connector against a fake that checks every request against Slack's published spec."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from vendors import slack_fake, slack_rate_limited

from opsloom import App, Context
from opsloom.connectors.builtin import slack
from opsloom.connectors.testing import FakeResponse, FakeVendor
from opsloom.errors import ConnectorPermanentError, RateLimitedError

TOKEN = "xoxb-1234-secret-token-value"
BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*disk full* on db-1"}},
    {
        "type": "actions",
        "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Ack"}}],
    },
]


@pytest.fixture
def fake() -> Iterator[FakeVendor]:
    with slack_fake() as vendor:
        yield vendor
    assert vendor.problems == []


async def add(ops: App, fake: FakeVendor) -> None:
    await ops.connections.add_connection(
        "ops-slack", "slack", {"token": TOKEN, "api_url": f"{fake.url}/api"}
    )


async def test_post_message__blocks_reach_slack_as_the_spec_says(
    ops: App, fake: FakeVendor
) -> None:
    await add(ops, fake)
    out = await ops.connections.call(
        slack.post_message, "ops-slack", {"channel": "#inc", "text": "disk full", "blocks": BLOCKS}
    )
    assert out["channel"] == "#inc" and out["ts"].startswith("1503435956.")
    sent = fake.last("/api/chat.postMessage")
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(sent.form["blocks"]) == BLOCKS


async def test_update_message_reaction_and_conversation(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    posted = await ops.connections.call(
        slack.post_message, "ops-slack", {"channel": "C1", "text": "x"}
    )
    updated = await ops.connections.call(
        slack.update_message, "ops-slack", {"channel": "C1", "ts": posted["ts"], "blocks": BLOCKS}
    )
    assert updated == {"channel": "C1", "ts": posted["ts"]}
    reaction = {"channel": "C1", "timestamp": posted["ts"], "name": "eyes"}
    assert await ops.connections.call(slack.add_reaction, "ops-slack", reaction) == {"ok": True}
    again = {**reaction, "name": "already"}  # Slack answers already_reacted: still done
    assert await ops.connections.call(slack.add_reaction, "ops-slack", again) == {"ok": True}
    dm = await ops.connections.call(slack.open_conversation, "ops-slack", {"users": ["U1", "U2"]})
    assert dm == {"channel": "D069C7QFK"}
    assert fake.last("/api/conversations.open").form["users"] == "U1,U2"


async def test_rate_limited__retry_after_becomes_the_retry_delay(
    ops: App, fake: FakeVendor
) -> None:
    await add(ops, fake)
    fake.fail_next(slack_rate_limited(7))
    with pytest.raises(RateLimitedError) as caught:
        await ops.connections.call(slack.post_message, "ops-slack", {"channel": "C1", "text": "x"})
    assert caught.value.retry_after == 7.0 and caught.value.retryable


async def test_bad_blocks__refused_before_any_request(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    with pytest.raises(ConnectorPermanentError, match=r"blocks: .*block 0 has no .type"):
        await ops.connections.call(
            slack.post_message, "ops-slack", {"channel": "C1", "blocks": [{"text": "no type"}]}
        )
    assert fake.requests == []


async def test_slack_error__permanent_and_the_token_never_shows(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    fake.fail_next(FakeResponse(200, {"ok": False, "error": f"invalid_auth for {TOKEN}"}))
    with pytest.raises(ConnectorPermanentError) as caught:
        await ops.connections.call(slack.post_message, "ops-slack", {"channel": "C1", "text": "x"})
    assert "invalid_auth" in str(caught.value) and TOKEN not in str(caught.value)


async def test_as_a_workflow_step(fresh: App, fake: FakeVendor) -> None:
    @fresh.workflow(name="notify")
    async def notify(ctx: Context, text: str) -> dict[str, str]:
        return await ctx.step(slack.post_message, connection="ops-slack", channel="#inc", text=text)

    async with fresh:
        await add(fresh, fake)
        out = await (await fresh.start("notify", "db-1 is down")).result(timeout=10)
    assert out["channel"] == "#inc"
    assert fake.last().form["text"] == "db-1 is down"


async def test_connection_check(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    line = await ops.connections.test_connection("ops-slack")
    assert "Subarachnoid Workspace" in line
