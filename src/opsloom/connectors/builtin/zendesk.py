"""Zendesk Support: open a ticket, comment on a ticket.

No spec of Zendesk is in our contracts; this follows Zendesk's Support (Ticketing) API
documentation: base ``https://{subdomain}.zendesk.com/api/v2``; ``POST /tickets.json`` with
``{"ticket": {"subject", "comment": {"body" | "html_body", "public"}, …}}`` answers 201 with
the ticket; a comment is added by updating the ticket, ``PUT /tickets/{id}.json`` with
``{"ticket": {"comment": {…}}}`` (the Ticket Comments API itself has no create endpoint).
Auth is Basic with ``{email}/token:{api_token}``, or an OAuth ``Bearer`` token. Ticket creation
takes an ``Idempotency-Key`` header, set from the step's idempotency key, so a retried step
gets the ticket its first attempt made. A 429 carries ``Retry-After`` (seconds); 422
``RecordInvalid`` names the fields Zendesk refused.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint

Priority = Literal["urgent", "high", "normal", "low"]
Status = Literal["new", "open", "pending", "hold", "solved", "closed"]


class ZendeskSettings(ConnectionSettings):
    """A Zendesk account and the agent that acts on it."""

    subdomain: str = Field(description="acme for https://acme.zendesk.com")
    email: str | None = Field(default=None, description="The agent's e-mail (API token auth).")
    api_token: SecretStr = Field(description="An API token, or an OAuth access token.")
    oauth: bool = Field(default=False, description="api_token is an OAuth access token.")
    api_url: str | None = Field(default=None, description="Default: from the subdomain.")

    @model_validator(mode="after")
    def _email_for_tokens(self) -> ZendeskSettings:
        if not self.oauth and not self.email:
            raise ValueError("API token auth needs the agent's email")
        return self


def _endpoint(settings: ZendeskSettings) -> Endpoint:
    base = settings.api_url or f"https://{settings.subdomain}.zendesk.com/api/v2"
    token = settings.api_token.get_secret_value()
    if settings.oauth:
        return Endpoint(base.rstrip("/"), {"Authorization": f"Bearer {token}"})
    credential = base64.b64encode(f"{settings.email}/token:{token}".encode()).decode()
    return Endpoint(
        base.rstrip("/"), {"Authorization": f"Basic {credential}"}, redact=(credential,)
    )


connector = Connector(
    "zendesk", ZendeskSettings, title="Zendesk", endpoint=_endpoint, doc=__doc__ or ""
)


class Requester(BaseModel):
    """Who the ticket is on behalf of (created as an end user if unknown)."""

    email: str
    name: str | None = None


class OpenTicket(BaseModel):
    """A new ticket; its first comment is the description."""

    subject: str = Field(min_length=1)
    body: str = Field(min_length=1, description="The first comment (text, or HTML with html).")
    html: bool = False
    public: bool = Field(default=True, description="False: an internal note.")
    priority: Priority | None = None
    type: Literal["problem", "incident", "question", "task"] | None = None
    status: Status | None = None
    tags: list[str] | None = None
    requester: Requester | None = None
    group_id: int | None = None
    assignee_id: int | None = None
    external_id: str | None = None
    custom_fields: dict[int, Any] | None = Field(default=None, description="Field id -> value.")


class Ticket(BaseModel):
    """The ticket as Zendesk answered."""

    id: int
    status: str
    subject: str | None = None
    url: str


class AddComment(BaseModel):
    """A comment on a ticket, and optionally a new status."""

    ticket_id: int
    body: str = Field(min_length=1)
    html: bool = False
    public: bool = Field(default=False, description="True: a reply the requester sees.")
    status: Status | None = None


class Commented(BaseModel):
    """The ticket after the comment, and the audit that recorded it."""

    ticket_id: int
    status: str
    audit_id: int | None


def _comment(body: str, html: bool, public: bool) -> dict[str, Any]:
    return {"html_body" if html else "body": body, "public": public}


def _ticket(answer: dict[str, Any]) -> Ticket:
    ticket = answer["ticket"]
    return Ticket(
        id=ticket["id"], status=ticket["status"], subject=ticket.get("subject"), url=ticket["url"]
    )


@connector.action
async def open_ticket(ctx: ActionContext[ZendeskSettings], data: OpenTicket) -> Ticket:
    """Open a ticket (a retried step gets the ticket its first attempt opened)."""
    ticket: dict[str, Any] = {
        "subject": data.subject,
        "comment": _comment(data.body, data.html, data.public),
    }
    for name in ("priority", "type", "status", "tags", "group_id", "assignee_id", "external_id"):
        value = getattr(data, name)
        if value is not None:
            ticket[name] = value
    if data.requester is not None:
        ticket["requester"] = data.requester.model_dump(exclude_none=True)
    if data.custom_fields:
        ticket["custom_fields"] = [{"id": k, "value": v} for k, v in data.custom_fields.items()]
    headers = {"Idempotency-Key": ctx.idempotency_key} if ctx.idempotency_key else None
    answer = await ctx.client.json(
        "POST", "/tickets.json", json={"ticket": ticket}, headers=headers
    )
    return _ticket(answer)


@connector.action
async def add_comment(ctx: ActionContext[ZendeskSettings], data: AddComment) -> Commented:
    """Add a comment (internal note unless public) to a ticket, optionally setting its status."""
    ticket: dict[str, Any] = {"comment": _comment(data.body, data.html, data.public)}
    if data.status is not None:
        ticket["status"] = data.status
    answer = await ctx.client.json(
        "PUT", f"/tickets/{data.ticket_id}.json", json={"ticket": ticket}
    )
    audit = answer.get("audit") or {}
    return Commented(
        ticket_id=answer["ticket"]["id"],
        status=answer["ticket"]["status"],
        audit_id=audit.get("id"),
    )


@connector.connection_check
async def _check(ctx: ActionContext[ZendeskSettings]) -> str:
    user = (await ctx.client.json("GET", "/users/me.json"))["user"]
    return f"Zendesk as {user.get('name')} <{user.get('email')}> ({user.get('role')})"
