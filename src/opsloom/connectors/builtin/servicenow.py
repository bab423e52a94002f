"""ServiceNow: open and update incidents through the Table API.

No spec of ServiceNow is in our contracts; this follows ServiceNow's REST Table API
documentation: ``POST /api/now/table/incident`` (201, the record in ``result``), ``PATCH
/api/now/table/incident/{sys_id}`` (200), ``GET /api/now/table/incident?sysparm_query=…``
(``result`` a list); ``sysparm_fields`` limits the fields answered and
``sysparm_exclude_reference_link`` leaves reference fields as plain ids. Field values travel as
strings (``urgency`` "1".."3", ``state`` "1" New … "6" Resolved, "7" Closed); errors answer
``{"error": {"message", "detail"}, "status": "failure"}``. Auth is Basic (user and password) or
an OAuth ``Bearer`` token. A 429 of a rate limit rule carries ``X-RateLimit-Reset`` (epoch seconds).

The Table API takes no idempotency key: an incident opened from a step carries the step's
key in ``correlation_id`` (the field ServiceNow keeps for integrations), and a retried step
finds that incident instead of opening a second one.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.errors import ConnectorPermanentError

_FIELDS = "sys_id,number,state,short_description,urgency,impact,priority,correlation_id"
_PARAMS = {"sysparm_fields": _FIELDS, "sysparm_exclude_reference_link": "true"}
_TABLE = "/api/now/table/incident"
#: Incident states by name, as the base system numbers them.
STATES = {
    "new": "1",
    "in_progress": "2",
    "on_hold": "3",
    "resolved": "6",
    "closed": "7",
    "canceled": "8",
}
Level = Literal[1, 2, 3]


class ServiceNowSettings(ConnectionSettings):
    """A ServiceNow instance and the account (or OAuth token) that acts on it."""

    instance_url: str = Field(description="https://acme.service-now.com")
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(default=None, description="An OAuth access token instead.")

    @model_validator(mode="after")
    def _credentials(self) -> ServiceNowSettings:
        if self.token is None and (self.username is None or self.password is None):
            raise ValueError("set username and password, or an OAuth token")
        return self


def _endpoint(settings: ServiceNowSettings) -> Endpoint:
    headers = {"Accept": "application/json"}
    redact: tuple[str, ...] = ()
    if settings.token is not None:
        headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
    else:
        assert settings.password is not None  # checked by the settings model
        pair = f"{settings.username}:{settings.password.get_secret_value()}"
        credential = base64.b64encode(pair.encode()).decode()
        headers["Authorization"] = f"Basic {credential}"
        redact = (credential,)
    return Endpoint(settings.instance_url.rstrip("/"), headers, redact=redact)


connector = Connector(
    "servicenow", ServiceNowSettings, title="ServiceNow", endpoint=_endpoint, doc=__doc__ or ""
)


class OpenIncident(BaseModel):
    """A new incident."""

    short_description: str = Field(min_length=1, max_length=160)
    description: str | None = None
    urgency: Level | None = Field(default=None, description="1 high, 2 medium, 3 low.")
    impact: Level | None = Field(default=None, description="1 high, 2 medium, 3 low.")
    caller_id: str | None = Field(default=None, description="User sys_id or user name.")
    assignment_group: str | None = Field(default=None, description="Group sys_id or name.")
    category: str | None = None
    cmdb_ci: str | None = Field(default=None, description="Configuration item sys_id or name.")
    fields: dict[str, str] | None = Field(default=None, description="More incident fields.")


class UpdateIncident(BaseModel):
    """A change to an incident: a state, work notes, a comment, or any fields."""

    incident: str = Field(description="sys_id, or the incident number (INC0010001).")
    state: Literal["new", "in_progress", "on_hold", "resolved", "closed", "canceled"] | None = None
    work_notes: str | None = Field(default=None, description="Internal, for the fulfillers.")
    comments: str | None = Field(default=None, description="Visible to the caller.")
    close_code: str | None = Field(default=None, description="Needed to resolve or close.")
    close_notes: str | None = Field(default=None, description="Needed to resolve or close.")
    urgency: Level | None = None
    impact: Level | None = None
    fields: dict[str, str] | None = None

    @model_validator(mode="after")
    def _closing(self) -> UpdateIncident:
        if self.state in ("resolved", "closed") and not (self.close_code and self.close_notes):
            raise ValueError(f"state {self.state} needs close_code and close_notes")
        return self


class Incident(BaseModel):
    """The incident as ServiceNow answered."""

    sys_id: str
    number: str
    state: str
    short_description: str | None = None
    priority: str | None = None


def _incident(record: dict[str, Any]) -> Incident:
    return Incident.model_validate(record)


def _plain(data: BaseModel, skip: set[str]) -> dict[str, str]:
    values = data.model_dump(exclude_none=True, exclude={"fields", *skip})
    body = {k: str(v) for k, v in values.items()}
    body.update(getattr(data, "fields", None) or {})
    return body


async def _find(ctx: ActionContext[ServiceNowSettings], query: str) -> dict[str, Any] | None:
    params = {**_PARAMS, "sysparm_query": query, "sysparm_limit": "1"}
    found = (await ctx.client.json("GET", _TABLE, params=params))["result"]
    return found[0] if found else None


@connector.action
async def open_incident(ctx: ActionContext[ServiceNowSettings], data: OpenIncident) -> Incident:
    """Open an incident (a retried step finds the incident its first attempt opened)."""
    body = _plain(data, set())
    key = ctx.idempotency_key
    if key is not None:
        earlier = await _find(ctx, f"correlation_id={key}")
        if earlier is not None:
            return _incident(earlier)
        body["correlation_id"] = key
    answer = await ctx.client.json("POST", _TABLE, json=body, params=_PARAMS)
    return _incident(answer["result"])


@connector.action
async def update_incident(ctx: ActionContext[ServiceNowSettings], data: UpdateIncident) -> Incident:
    """Change an incident: move its state, add work notes or a comment, set fields."""
    sys_id = data.incident
    if not (len(sys_id) == 32 and all(c in "0123456789abcdef" for c in sys_id)):
        found = await _find(ctx, f"number={data.incident}")
        if found is None:
            raise ConnectorPermanentError(f"ServiceNow has no incident {data.incident}")
        sys_id = found["sys_id"]
    body = _plain(data, {"incident", "state"})
    if data.state is not None:
        body["state"] = STATES[data.state]
    if not body:
        raise ConnectorPermanentError("nothing to change: give a state, notes or fields")
    answer = await ctx.client.json("PATCH", f"{_TABLE}/{sys_id}", json=body, params=_PARAMS)
    return _incident(answer["result"])


@connector.connection_check
async def _check(ctx: ActionContext[ServiceNowSettings]) -> str:
    params = {"sysparm_limit": "1", "sysparm_fields": "sys_id"}
    await ctx.client.json("GET", _TABLE, params=params)
    who = ctx.settings.username or "an OAuth token"
    return f"ServiceNow {ctx.settings.instance_url} as {who}: incident table readable"
