"""Atlassian Statuspage: open or update an incident, set a component's status.

No spec of it is in our contracts; this follows Statuspage's REST API documentation: base
``https://api.statuspage.io/v1``, ``Authorization: OAuth <api key>``; ``POST
/pages/{page_id}/incidents`` and ``PATCH /pages/{page_id}/incidents/{id}`` take
``{"incident": {…}}``, ``PATCH /pages/{page_id}/components/{id}`` takes
``{"component": {"status": …}}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint

IncidentStatus = Literal["investigating", "identified", "monitoring", "resolved"]
ComponentStatus = Literal[
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"
]


class StatuspageSettings(ConnectionSettings):
    """A Statuspage API key and the page it manages."""

    api_key: SecretStr
    page_id: str
    api_url: str = "https://api.statuspage.io/v1"


def _endpoint(settings: StatuspageSettings) -> Endpoint:
    return Endpoint(
        settings.api_url.rstrip("/"),
        {"Authorization": f"OAuth {settings.api_key.get_secret_value()}"},
    )


connector = Connector(
    "statuspage", StatuspageSettings, title="Statuspage", endpoint=_endpoint, doc=__doc__ or ""
)


class OpenIncident(BaseModel):
    """A new incident on the page."""

    name: str = Field(min_length=1)
    status: IncidentStatus = "investigating"
    body: str | None = None
    component_ids: list[str] | None = None
    components: dict[str, ComponentStatus] | None = Field(
        default=None, description="Component id -> status to set with the incident."
    )


class UpdateIncident(BaseModel):
    """A status update of an incident."""

    incident_id: str
    status: IncidentStatus
    body: str | None = None


class Incident(BaseModel):
    """The incident as Statuspage answered."""

    id: str
    status: str
    shortlink: str | None = None


class SetComponent(BaseModel):
    """A component's new status."""

    component_id: str
    status: ComponentStatus


class Component(BaseModel):
    """The component as Statuspage answered."""

    id: str
    status: str


def _incident(answer: dict[str, Any]) -> Incident:
    return Incident(id=answer["id"], status=answer["status"], shortlink=answer.get("shortlink"))


@connector.action
async def open_incident(ctx: ActionContext[StatuspageSettings], data: OpenIncident) -> Incident:
    """Open an incident on the status page."""
    incident = data.model_dump(exclude_none=True)
    path = f"/pages/{ctx.settings.page_id}/incidents"
    return _incident(await ctx.client.json("POST", path, json={"incident": incident}))


@connector.action
async def update_incident(ctx: ActionContext[StatuspageSettings], data: UpdateIncident) -> Incident:
    """Post a status update (or resolve) an incident."""
    incident = data.model_dump(exclude_none=True, exclude={"incident_id"})
    path = f"/pages/{ctx.settings.page_id}/incidents/{data.incident_id}"
    return _incident(await ctx.client.json("PATCH", path, json={"incident": incident}))


@connector.action
async def set_component(ctx: ActionContext[StatuspageSettings], data: SetComponent) -> Component:
    """Set a component's status (operational, degraded_performance, major_outage…)."""
    path = f"/pages/{ctx.settings.page_id}/components/{data.component_id}"
    answer = await ctx.client.json("PATCH", path, json={"component": {"status": data.status}})
    return Component(id=answer["id"], status=answer["status"])
