"""Zendesk and ServiceNow connectors against fakes shaped by the vendors' REST documentation."""

from __future__ import annotations

import base64

import pytest
from saas_vendors import (
    servicenow_fake,
    servicenow_rate_limited,
    zendesk_fake,
    zendesk_rate_limited,
)

from opsloom import App
from opsloom.connectors.builtin import servicenow, zendesk
from opsloom.connectors.testing import FakeVendor
from opsloom.errors import ConnectorPermanentError, InputError, RateLimitedError

ZD_TOKEN = "zd-api-token-0123456789"
SN_PASSWORD = "sn-password-0123456789"


async def add_zendesk(app: App, fake: FakeVendor) -> None:
    settings = {
        "subdomain": "acme",
        "email": "bot@acme.test",
        "api_token": ZD_TOKEN,
        "api_url": f"{fake.url}/api/v2",
    }
    await app.connections.add_connection("zd", "zendesk", settings)


async def test_zendesk__open_ticket_once_per_step(ops: App) -> None:
    with zendesk_fake() as fake:
        await add_zendesk(ops, fake)
        data = {
            "subject": "Checkout errors",
            "body": "<p>5xx since 10:02</p>",
            "html": True,
            "priority": "urgent",
            "type": "incident",
            "tags": ["sev1"],
            "requester": {"email": "cto@acme.test"},
            "custom_fields": {360001: "db-1"},
        }
        out = await ops.connections.call(zendesk.open_ticket, "zd", data, idempotency_key="r:1")
        assert out["status"] == "new" and out["url"].endswith(f"/tickets/{out['id']}.json")
        sent = fake.last()
        assert sent.json["ticket"]["comment"] == {
            "html_body": "<p>5xx since 10:02</p>",
            "public": True,
        }
        assert sent.json["ticket"]["custom_fields"] == [{"id": 360001, "value": "db-1"}]
        assert sent.headers["idempotency-key"] == "r:1"
        pair = base64.b64decode(sent.headers["authorization"][6:]).decode()
        assert pair == f"bot@acme.test/token:{ZD_TOKEN}"
        again = await ops.connections.call(zendesk.open_ticket, "zd", data, idempotency_key="r:1")
        assert again == out and len(fake.tickets) == 1  # type: ignore[attr-defined]
    assert fake.problems == []


async def test_zendesk__comment_is_internal_unless_public(ops: App) -> None:
    with zendesk_fake() as fake:
        await add_zendesk(ops, fake)
        ticket = await ops.connections.call(
            zendesk.open_ticket, "zd", {"subject": "x", "body": "first"}
        )
        out = await ops.connections.call(
            zendesk.add_comment,
            "zd",
            {"ticket_id": ticket["id"], "body": "Rolled back.", "status": "solved"},
        )
        assert out["status"] == "solved" and out["audit_id"]
        assert fake.last().json == {
            "ticket": {"comment": {"body": "Rolled back.", "public": False}, "status": "solved"}
        }
        with pytest.raises(ConnectorPermanentError, match="404"):
            await ops.connections.call(zendesk.add_comment, "zd", {"ticket_id": 1, "body": "x"})
    assert fake.problems == []


async def test_zendesk__rate_limit_oauth_and_check(ops: App) -> None:
    with zendesk_fake() as fake:
        await ops.connections.add_connection(
            "zd-oauth",
            "zendesk",
            {
                "subdomain": "acme",
                "api_token": "oauth-abc-123",
                "oauth": True,
                "api_url": f"{fake.url}/api/v2",
            },
        )
        assert await ops.connections.test_connection("zd-oauth") == (
            "Zendesk as Ops Bot <bot@acme.test> (agent)"
        )
        assert fake.last().headers["authorization"] == "Bearer oauth-abc-123"
        fake.fail_next(zendesk_rate_limited(17))
        with pytest.raises(RateLimitedError) as caught:
            await ops.connections.call(
                zendesk.open_ticket, "zd-oauth", {"subject": "x", "body": "y"}
            )
        assert caught.value.retry_after == 17
    with pytest.raises(InputError, match="email"):
        await ops.connections.add_connection(
            "zd-bad", "zendesk", {"subdomain": "a", "api_token": "t"}
        )


async def add_servicenow(app: App, fake: FakeVendor) -> None:
    settings = {"instance_url": fake.url, "username": "opsloom", "password": SN_PASSWORD}
    await app.connections.add_connection("sn", "servicenow", settings)


async def test_servicenow__open_incident_once_per_step(ops: App) -> None:
    with servicenow_fake() as fake:
        await add_servicenow(ops, fake)
        data = {
            "short_description": "db-1 disk full",
            "urgency": 1,
            "impact": 2,
            "assignment_group": "Database",
            "fields": {"u_runbook": "disk-full"},
        }
        with pytest.raises(ConnectorPermanentError, match="u_runbook"):
            await ops.connections.call(servicenow.open_incident, "sn", data)
        del data["fields"]
        out = await ops.connections.call(
            servicenow.open_incident, "sn", data, idempotency_key="run-7:2"
        )
        assert out["number"] == "INC0010001" and out["state"] == "1" and out["priority"] == "2"
        sent = fake.last()
        assert sent.json["urgency"] == "1" and sent.json["correlation_id"] == "run-7:2"
        assert sent.query["sysparm_exclude_reference_link"] == ["true"]
        again = await ops.connections.call(
            servicenow.open_incident, "sn", data, idempotency_key="run-7:2"
        )
        assert again == out and len(fake.records) == 1  # type: ignore[attr-defined]
    assert fake.problems == []


async def test_servicenow__update_by_number_and_resolve(ops: App) -> None:
    with servicenow_fake() as fake:
        await add_servicenow(ops, fake)
        made = await ops.connections.call(
            servicenow.open_incident, "sn", {"short_description": "api 5xx"}
        )
        moved = await ops.connections.call(
            servicenow.update_incident,
            "sn",
            {"incident": made["number"], "state": "in_progress", "work_notes": "restarting"},
        )
        assert moved["state"] == "2" and moved["sys_id"] == made["sys_id"]
        assert fake.last().path == f"/api/now/table/incident/{made['sys_id']}"
        with pytest.raises(ConnectorPermanentError, match="close_code and close_notes"):
            await ops.connections.call(
                servicenow.update_incident, "sn", {"incident": made["sys_id"], "state": "resolved"}
            )
        done = await ops.connections.call(
            servicenow.update_incident,
            "sn",
            {
                "incident": made["sys_id"],
                "state": "resolved",
                "close_code": "Solution provided",
                "close_notes": "disk cleaned",
            },
        )
        assert done["state"] == "6"
        with pytest.raises(ConnectorPermanentError, match="no incident INC9999999"):
            await ops.connections.call(
                servicenow.update_incident, "sn", {"incident": "INC9999999", "comments": "x"}
            )
        with pytest.raises(ConnectorPermanentError, match="No Record found"):
            await ops.connections.call(
                servicenow.update_incident, "sn", {"incident": "0" * 32, "comments": "x"}
            )
    assert fake.problems == []


async def test_servicenow__rate_limit_token_auth_and_check(ops: App) -> None:
    with servicenow_fake() as fake:
        await ops.connections.add_connection(
            "sn-oauth", "servicenow", {"instance_url": fake.url, "token": "sn-oauth-token"}
        )
        assert "incident table readable" in await ops.connections.test_connection("sn-oauth")
        assert fake.last().headers["authorization"] == "Bearer sn-oauth-token"
        fake.fail_next(servicenow_rate_limited(int(ops.clock.now()) + 60))
        with pytest.raises(RateLimitedError) as caught:
            await ops.connections.call(
                servicenow.open_incident, "sn-oauth", {"short_description": "x"}
            )
        assert caught.value.retry_after == pytest.approx(60, abs=1)
    with pytest.raises(InputError, match="username and password, or an OAuth token"):
        await ops.connections.add_connection("sn-bad", "servicenow", {"instance_url": "x"})
