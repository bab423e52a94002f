"""PagerDuty connector against a fake shaped by PagerDuty's documentation (no spec here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from vendors import pagerduty_fake

from opsloom import App, Context
from opsloom.connectors.builtin import pagerduty
from opsloom.connectors.testing import FakeResponse, FakeVendor
from opsloom.errors import ConnectorPermanentError, RateLimitedError

ROUTING = "R0UT1NGKEY0123456789abcdef012345"
TOKEN = "u+pd-rest-token-xyz"


@pytest.fixture
def fake() -> Iterator[FakeVendor]:
    with pagerduty_fake() as vendor:
        yield vendor
    assert vendor.problems == []


async def add(app: App, fake: FakeVendor, **extra: str) -> None:
    settings = {"routing_key": ROUTING, "events_url": fake.url, "api_url": fake.url, **extra}
    await app.connections.add_connection("pd", "pagerduty", settings)


async def test_trigger_ack_resolve__events_v2(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    trigger = {"summary": "disk full", "source": "db-1", "severity": "critical", "dedup_key": "k1"}
    out = await ops.connections.call(pagerduty.trigger, "pd", trigger)
    assert out == {"status": "success", "message": "Event processed", "dedup_key": "k1"}
    sent = fake.last().json
    assert sent["routing_key"] == ROUTING and sent["payload"]["severity"] == "critical"
    for action in (pagerduty.acknowledge, pagerduty.resolve):
        await ops.connections.call(action, "pd", {"dedup_key": "k1"})
    assert [r.json["event_action"] for r in fake.requests] == ["trigger", "acknowledge", "resolve"]


async def test_trigger__the_step_idempotency_key_is_the_dedup_key(
    fresh: App, fake: FakeVendor
) -> None:
    @fresh.workflow(name="page")
    async def page(ctx: Context) -> dict[str, str]:
        return await ctx.step(pagerduty.trigger, connection="pd", summary="api down", source="api")

    async with fresh:
        await add(fresh, fake)
        handle = await fresh.start("page")
        out = await handle.result(timeout=10)
    assert out["dedup_key"] == f"{handle.run_id}:1" == fake.last().json["dedup_key"]


async def test_rest__ack_resolve_note_with_token_and_from(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake, api_token=TOKEN, from_email="oncall@acme.test")
    acked = await ops.connections.call(
        pagerduty.acknowledge_incident, "pd", {"incident_id": "PT4KHLK"}
    )
    assert acked["status"] == "acknowledged" and acked["id"] == "PT4KHLK"
    assert fake.last().headers["authorization"] == f"Token token={TOKEN}"
    resolved = await ops.connections.call(
        pagerduty.resolve_incident, "pd", {"incident_id": "PT4KHLK"}
    )
    assert resolved["status"] == "resolved"
    note = await ops.connections.call(
        pagerduty.add_note, "pd", {"incident_id": "PT4KHLK", "content": "rolled back"}
    )
    assert note == {"id": "PWL7QXS", "content": "rolled back"}


async def test_rest_without_token__a_clear_permanent_error(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    with pytest.raises(ConnectorPermanentError, match="api_token and from_email"):
        await ops.connections.call(pagerduty.resolve_incident, "pd", {"incident_id": "P1"})


async def test_rate_limited__429(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    fake.fail_next(
        FakeResponse(
            429,
            {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly.",
            },
            {"Retry-After": "30"},
        )
    )
    with pytest.raises(RateLimitedError) as caught:
        await ops.connections.call(pagerduty.resolve, "pd", {"dedup_key": "k"})
    assert caught.value.retry_after == 30.0
    assert ROUTING not in str(caught.value)


async def test_shown_secrets__only_those_set(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    shown = await ops.connections.connection("pd")
    assert shown["secrets"] == ["routing_key"] and ROUTING not in str(shown)
