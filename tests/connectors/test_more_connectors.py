"""Datadog, Sentry (spec-checked), Teams, Telegram and Anthropic (documentation-shaped)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from vendors import anthropic_fake, datadog_fake, sentry_fake, teams_fake, telegram_fake

from opsloom import App
from opsloom.connectors.builtin import anthropic, datadog, sentry, teams, telegram
from opsloom.connectors.testing import FakeResponse, FakeVendor
from opsloom.errors import ConnectorPermanentError, RateLimitedError


def serve(factory: Callable[[], FakeVendor]) -> Iterator[FakeVendor]:
    with factory() as vendor:
        yield vendor
    assert vendor.problems == []


@pytest.fixture
def dd() -> Iterator[FakeVendor]:
    yield from serve(datadog_fake)


@pytest.fixture
def se() -> Iterator[FakeVendor]:
    yield from serve(sentry_fake)


async def test_datadog__event_and_downtime(ops: App, dd: FakeVendor) -> None:
    await ops.connections.add_connection(
        "dd", "datadog", {"api_key": "dd-api-secret", "app_key": "dd-app-secret", "api_url": dd.url}
    )
    event = await ops.connections.call(
        datadog.post_event, "dd", {"title": "deploy", "text": "api 1.2.3", "tags": ["env:prod"]}
    )
    assert event["id"] == 1377281704830403917
    assert dd.last().headers["dd-api-key"] == "dd-api-secret"
    down = await ops.connections.call(
        datadog.schedule_downtime,
        "dd",
        {"scope": ["env:prod"], "minutes": 30, "message": "maintenance"},
    )
    assert down["id"] == 1625
    sent = dd.last().json
    assert sent["end"] - sent["start"] == 1800


async def test_sentry__resolve_and_assign(ops: App, se: FakeVendor) -> None:
    await ops.connections.add_connection(
        "se", "sentry", {"token": "sntrys-secret", "organization": "acme", "api_url": se.url}
    )
    out = await ops.connections.call(sentry.resolve_issue, "se", {"issue_id": "1234"})
    assert out["status"] == "resolved"
    assert se.last().path == "/api/0/organizations/acme/issues/1234/"
    out = await ops.connections.call(
        sentry.assign_issue, "se", {"issue_id": "1234", "assignee": "team:ops"}
    )
    assert out["assigned_to"] == "team:ops"


async def test_teams__card_and_text(ops: App) -> None:
    with teams_fake() as fake:
        url = f"{fake.url}/workflows/abc/triggers/manual/paths/invoke"
        await ops.connections.add_connection("teams", "teams", {"webhook_url": url})
        assert await ops.connections.call(teams.post_card, "teams", {"text": "db-1 down"}) == {
            "status": 202
        }
        card = fake.last().json["attachments"][0]["content"]
        assert card["body"][0] == {"type": "TextBlock", "text": "db-1 down", "wrap": True}
        with pytest.raises(ConnectorPermanentError, match="AdaptiveCard"):
            await ops.connections.call(teams.post_card, "teams", {"card": {"type": "x"}})
    assert fake.problems == []


async def test_telegram__message_and_flood_limit(ops: App) -> None:
    token = "123456:ABC-secret-bot-token"
    with telegram_fake() as fake:
        await ops.connections.add_connection(
            "tg", "telegram", {"bot_token": token, "api_url": fake.url}
        )
        out = await ops.connections.call(
            telegram.send_message, "tg", {"chat_id": -100123, "text": "db-1 down"}
        )
        assert out == {"message_id": 42, "chat_id": -100123}
        fake.fail_next(
            FakeResponse(
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 5",
                    "parameters": {"retry_after": 5},
                },
            )
        )
        with pytest.raises(RateLimitedError) as caught:
            await ops.connections.call(telegram.send_message, "tg", {"chat_id": 1, "text": "x"})
    assert caught.value.retry_after == 5.0 and token not in str(caught.value)
    assert fake.problems == []


async def test_anthropic__message(ops: App) -> None:
    with anthropic_fake() as fake:
        await ops.connections.add_connection(
            "claude", "anthropic", {"api_key": "sk-ant-secret", "api_url": fake.url}
        )
        out = await ops.connections.call(
            anthropic.message,
            "claude",
            {"system": "You are on call.", "messages": [{"role": "user", "content": "api errors"}]},
        )
        assert out["text"] == "Roll back the deploy." and out["stop_reason"] == "end_turn"
        fake.fail_next(FakeResponse(529, {"type": "error", "error": {"type": "overloaded_error"}}))
        with pytest.raises(Exception) as caught:
            await ops.connections.call(
                anthropic.message, "claude", {"messages": [{"role": "user", "content": "x"}]}
            )
        assert caught.value.retryable  # type: ignore[attr-defined]
    assert fake.problems == []
