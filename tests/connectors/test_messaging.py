"""Opsgenie, Discord, Twilio and OpenAI-compatible connectors against spec-checking fakes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from vendors import discord_fake, discord_rate_limited, openai_fake, opsgenie_fake, twilio_fake

from opsloom import App, Context
from opsloom.connectors.builtin import discord, openai, opsgenie, twilio
from opsloom.connectors.testing import FakeResponse, FakeVendor
from opsloom.errors import ConnectorPermanentError, RateLimitedError


def checked(factory: object) -> Iterator[FakeVendor]:
    with factory() as vendor:  # type: ignore[operator]
        yield vendor
    assert vendor.problems == []


@pytest.fixture
def og() -> Iterator[FakeVendor]:
    yield from checked(opsgenie_fake)


@pytest.fixture
def dc() -> Iterator[FakeVendor]:
    yield from checked(discord_fake)


@pytest.fixture
def tw() -> Iterator[FakeVendor]:
    yield from checked(twilio_fake)


@pytest.fixture
def ai() -> Iterator[FakeVendor]:
    yield from checked(openai_fake)


async def test_opsgenie__create_with_the_step_key_as_alias_then_ack_and_close(
    fresh: App, og: FakeVendor
) -> None:
    @fresh.workflow(name="alert")
    async def alert(ctx: Context) -> dict[str, str]:
        made = await ctx.step(
            opsgenie.create_alert, connection="og", message="db-1 down", priority="P1"
        )
        await ctx.step(
            opsgenie.acknowledge_alert, connection="og", identifier=made["alias"], note="on it"
        )
        return await ctx.step(opsgenie.close_alert, connection="og", identifier=made["alias"])

    async with fresh:
        await fresh.connections.add_connection(
            "og", "opsgenie", {"api_key": "gk-123456", "api_url": og.url}
        )
        handle = await fresh.start("alert")
        out = await handle.result(timeout=10)
    assert out["request_id"] == "43a29c5c"
    created, acked, closed = og.requests
    assert created.json["alias"] == f"{handle.run_id}:1" and created.json["priority"] == "P1"
    assert created.headers["authorization"] == "GenieKey gk-123456"
    assert acked.path == f"/v2/alerts/{handle.run_id}:1/acknowledge"
    assert acked.query["identifierType"] == ["alias"] and acked.json["note"] == "on it"
    assert closed.path.endswith("/close")


async def test_discord__webhook_message_and_rate_limit(ops: App, dc: FakeVendor) -> None:
    token = "abcDEFsecretWEBHOOKtoken"
    url = f"{dc.url}/webhooks/1101246325234061412/{token}"
    await ops.connections.add_connection("dc", "discord", {"webhook_url": url})
    embed = {"title": "disk full", "description": "db-1", "color": 15158332}
    out = await ops.connections.call(
        discord.send_message, "dc", {"content": "alert", "embeds": [embed]}
    )
    assert out == {"id": "1178440389924765726", "channel_id": "1101246325234061412"}
    assert dc.last().json["allowed_mentions"] == {"parse": []}
    assert dc.last().query["wait"] == ["true"]
    dc.fail_next(discord_rate_limited(1.5))
    with pytest.raises(RateLimitedError) as caught:
        await ops.connections.call(discord.send_message, "dc", {"content": "again"})
    assert caught.value.retry_after == 1.5 and token not in str(caught.value)


async def test_twilio__sms_with_basic_auth(ops: App, tw: FakeVendor) -> None:
    sid = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    await ops.connections.add_connection(
        "tw",
        "twilio",
        {
            "account_sid": sid,
            "auth_token": "tw-secret-token",
            "from_number": "+15557122661",
            "api_url": tw.url,
        },
    )
    out = await ops.connections.call(
        twilio.send_sms, "tw", {"to": "+15558675310", "body": "db-1 down"}
    )
    assert out["sid"].startswith("SM")
    sent = tw.last()
    assert sent.path == f"/2010-04-01/Accounts/{sid}/Messages.json"
    assert parse_qs(sent.body.decode()) == {
        "To": ["+15558675310"],
        "Body": ["db-1 down"],
        "From": ["+15557122661"],
    }
    user, _, secret = (
        base64.b64decode(sent.headers["authorization"].split()[1]).decode().partition(":")
    )
    assert (user, secret) == (sid, "tw-secret-token")
    with pytest.raises(ConnectorPermanentError, match="to"):
        await ops.connections.call(twilio.send_sms, "tw", {"to": "555", "body": "x"})


async def test_openai__chat_completion(ops: App, ai: FakeVendor) -> None:
    await ops.connections.add_connection(
        "llm",
        "openai",
        {"base_url": f"{ai.url}/v1", "api_key": "sk-test-secret", "model": "gpt-4o-mini"},
    )
    out = await ops.connections.call(
        openai.chat,
        "llm",
        {
            "messages": [
                {"role": "system", "content": "You are on call."},
                {"role": "user", "content": "db-1 is down"},
            ],
            "max_tokens": 50,
        },
    )
    assert out["content"] == "Restart the pod." and out["finish_reason"] == "stop"
    assert ai.last().json["max_completion_tokens"] == 50
    ai.fail_next(
        FakeResponse(
            429,
            {"error": {"message": "Rate limit reached", "type": "requests"}},
            {"retry-after-ms": "250"},
        )
    )
    with pytest.raises(RateLimitedError) as caught:
        await ops.connections.call(
            openai.chat, "llm", {"messages": [{"role": "user", "content": "x"}]}
        )
    assert caught.value.retry_after == 0.25
