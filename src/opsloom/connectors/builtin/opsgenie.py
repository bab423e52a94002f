"""Opsgenie (and Jira Service Management Ops) alerts: create, acknowledge, close.

Follows Opsgenie's published Swagger 2.0 document (REST API v2): ``POST /v2/alerts`` and ``POST
/v2/alerts/{identifier}/acknowledge|close?identifierType=…`` with ``Authorization: GenieKey
<key>``; each answers 202 with a ``requestId`` (the work is done asynchronously). An alert's
``alias`` is its deduplication key: without one, the step's idempotency key is used, so a
retried step never opens a second alert.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class OpsgenieSettings(ConnectionSettings):
    """An Opsgenie API integration key."""

    api_key: SecretStr
    api_url: str = Field(default="https://api.opsgenie.com", description="EU: api.eu.opsgenie.com")


def _endpoint(settings: OpsgenieSettings) -> Endpoint:
    return Endpoint(
        settings.api_url.rstrip("/"),
        {"Authorization": f"GenieKey {settings.api_key.get_secret_value()}"},
    )


connector = Connector(
    "opsgenie", OpsgenieSettings, title="Opsgenie", endpoint=_endpoint, doc=__doc__ or ""
)


class CreateAlert(BaseModel):
    """A new alert."""

    message: str = Field(min_length=1, max_length=130)
    alias: str | None = Field(default=None, max_length=512, description="Deduplication key.")
    description: str | None = Field(default=None, max_length=15000)
    priority: Literal["P1", "P2", "P3", "P4", "P5"] = "P3"
    tags: list[str] | None = None
    details: dict[str, str] | None = None
    entity: str | None = None
    source: str | None = None
    responders: list[dict[str, str]] | None = Field(
        default=None, description='e.g. [{"type": "team", "name": "ops"}]'
    )


class AlertRef(BaseModel):
    """An alert by alias (default), id or tiny id, with an optional note."""

    identifier: str
    identifier_type: Literal["alias", "id", "tiny"] = "alias"
    note: str | None = None


class Request(BaseModel):
    """Opsgenie's receipt: the asynchronous request's id."""

    request_id: str
    result: str
    alias: str | None = None


def _receipt(body: dict[str, Any], alias: str | None = None) -> Request:
    return Request(request_id=body["requestId"], result=body.get("result", ""), alias=alias)


@connector.action
async def create_alert(ctx: ActionContext[OpsgenieSettings], data: CreateAlert) -> Request:
    """Create an alert; the step's idempotency key is the default alias (dedup key)."""
    alias = data.alias or ctx.idempotency_key
    payload = {**data.model_dump(exclude_none=True), "alias": alias}
    body = await ctx.client.json(
        "POST", "/v2/alerts", json={k: v for k, v in payload.items() if v is not None}
    )
    return _receipt(body, alias)


async def _act(ctx: ActionContext[OpsgenieSettings], data: AlertRef, verb: str) -> Request:
    payload: dict[str, Any] = {"source": "opsloom"}
    if data.note:
        payload["note"] = data.note
    body = await ctx.client.json(
        "POST",
        f"/v2/alerts/{data.identifier}/{verb}",
        params={"identifierType": data.identifier_type},
        json=payload,
    )
    return _receipt(body)


@connector.action
async def acknowledge_alert(ctx: ActionContext[OpsgenieSettings], data: AlertRef) -> Request:
    """Acknowledge an alert."""
    return await _act(ctx, data, "acknowledge")


@connector.action
async def close_alert(ctx: ActionContext[OpsgenieSettings], data: AlertRef) -> Request:
    """Close an alert."""
    return await _act(ctx, data, "close")
