"""PagerDuty: Events API v2 (trigger, acknowledge, resolve) and REST incidents (ack, resolve,
note).

PagerDuty's OpenAPI documents are not in our contracts (their repository carries no licence),
so this follows PagerDuty's API documentation: events go to ``POST /v2/enqueue`` on
``events.pagerduty.com`` with the service's integration (routing) key and answer 202 with the
``dedup_key``; REST calls go to ``api.pagerduty.com`` with ``Authorization: Token token=…``,
``Accept: application/vnd.pagerduty+json;version=2`` and a ``From`` address for changes.
A trigger without a ``dedup_key`` uses the step's idempotency key, so a retried step never
pages twice.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.errors import ConnectorPermanentError


class PagerDutySettings(ConnectionSettings):
    """A PagerDuty connection: an Events v2 routing key and/or a REST API token."""

    routing_key: SecretStr | None = Field(default=None, description="Events v2 integration key.")
    api_token: SecretStr | None = Field(default=None, description="REST API token.")
    from_email: str | None = Field(default=None, description="User e-mail for REST changes.")
    events_url: str = "https://events.pagerduty.com"
    api_url: str = "https://api.pagerduty.com"


def _endpoint(settings: PagerDutySettings) -> Endpoint:
    # Auth goes per request: events and REST calls carry different credentials.
    return Endpoint(settings.api_url.rstrip("/"))


connector = Connector(
    "pagerduty", PagerDutySettings, title="PagerDuty", endpoint=_endpoint, doc=__doc__ or ""
)

Severity = Literal["critical", "error", "warning", "info"]


class Trigger(BaseModel):
    """An alert to open (or update, with the same ``dedup_key``) an incident."""

    summary: str = Field(max_length=1024)
    source: str = Field(description="Where the problem is (host, service).")
    severity: Severity = "error"
    dedup_key: str | None = Field(default=None, max_length=255)
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] | None = None
    links: list[dict[str, str]] | None = None


class EventRef(BaseModel):
    """The alert an event was for."""

    dedup_key: str


class Accepted(BaseModel):
    """PagerDuty's answer to an event."""

    status: str
    message: str
    dedup_key: str


class IncidentRef(BaseModel):
    """A REST incident by id."""

    incident_id: str


class Incident(BaseModel):
    """An incident as PagerDuty answered."""

    id: str
    status: str
    incident_number: int | None = None
    html_url: str | None = None


class Note(BaseModel):
    """A note to add to an incident."""

    incident_id: str
    content: str = Field(min_length=1)


class NoteOut(BaseModel):
    """The note created."""

    id: str
    content: str


async def _enqueue(ctx: ActionContext[PagerDutySettings], event: dict[str, Any]) -> Accepted:
    key = ctx.settings.routing_key
    if key is None:
        raise ConnectorPermanentError(f"connection {ctx.connection!r} has no routing_key")
    url = ctx.settings.events_url.rstrip("/") + "/v2/enqueue"
    body = await ctx.client.json("POST", url, json={"routing_key": key.get_secret_value(), **event})
    return Accepted.model_validate(body)


@connector.action
async def trigger(ctx: ActionContext[PagerDutySettings], data: Trigger) -> Accepted:
    """Trigger an alert (Events v2); the step's idempotency key is the default dedup_key."""
    payload = data.model_dump(exclude={"dedup_key", "links"}, exclude_none=True, by_alias=True)
    event: dict[str, Any] = {
        "event_action": "trigger",
        "payload": payload,
        "dedup_key": data.dedup_key or ctx.idempotency_key,
    }
    if data.links:
        event["links"] = data.links
    return await _enqueue(ctx, {k: v for k, v in event.items() if v is not None})


@connector.action
async def acknowledge(ctx: ActionContext[PagerDutySettings], data: EventRef) -> Accepted:
    """Acknowledge the alert with this dedup_key (Events v2)."""
    return await _enqueue(ctx, {"event_action": "acknowledge", "dedup_key": data.dedup_key})


@connector.action
async def resolve(ctx: ActionContext[PagerDutySettings], data: EventRef) -> Accepted:
    """Resolve the alert with this dedup_key (Events v2)."""
    return await _enqueue(ctx, {"event_action": "resolve", "dedup_key": data.dedup_key})


def _rest_headers(ctx: ActionContext[PagerDutySettings]) -> dict[str, str]:
    token, sender = ctx.settings.api_token, ctx.settings.from_email
    if token is None or sender is None:
        raise ConnectorPermanentError(
            f"connection {ctx.connection!r} needs api_token and from_email for REST calls"
        )
    return {
        "Authorization": f"Token token={token.get_secret_value()}",
        "Accept": "application/vnd.pagerduty+json;version=2",
        "From": sender,
    }


async def _set_status(
    ctx: ActionContext[PagerDutySettings], incident_id: str, status: str
) -> Incident:
    body = await ctx.client.json(
        "PUT",
        f"/incidents/{incident_id}",
        headers=_rest_headers(ctx),
        json={"incident": {"type": "incident_reference", "status": status}},
    )
    return Incident.model_validate(body["incident"])


@connector.action
async def acknowledge_incident(
    ctx: ActionContext[PagerDutySettings], data: IncidentRef
) -> Incident:
    """Acknowledge an incident (REST ``PUT /incidents/{id}``)."""
    return await _set_status(ctx, data.incident_id, "acknowledged")


@connector.action
async def resolve_incident(ctx: ActionContext[PagerDutySettings], data: IncidentRef) -> Incident:
    """Resolve an incident (REST ``PUT /incidents/{id}``)."""
    return await _set_status(ctx, data.incident_id, "resolved")


@connector.action
async def add_note(ctx: ActionContext[PagerDutySettings], data: Note) -> NoteOut:
    """Add a note to an incident's timeline (REST ``POST /incidents/{id}/notes``)."""
    body = await ctx.client.json(
        "POST",
        f"/incidents/{data.incident_id}/notes",
        headers=_rest_headers(ctx),
        json={"note": {"content": data.content}},
    )
    return NoteOut.model_validate(body["note"])
