"""Datadog: post an event, schedule a downtime (mute monitors by scope).

Follows Datadog's published OpenAPI document (API v1): ``POST /api/v1/events`` with the
``DD-API-KEY`` header (answers 202), ``POST /api/v1/downtime`` with ``DD-API-KEY`` and
``DD-APPLICATION-KEY``. The site (datadoghq.com, datadoghq.eu, us5.datadoghq.com…) picks the
API host.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.errors import ConnectorPermanentError


class DatadogSettings(ConnectionSettings):
    """Datadog keys and site."""

    api_key: SecretStr
    app_key: SecretStr | None = Field(default=None, description="Needed for downtimes.")
    site: str = "datadoghq.com"
    api_url: str | None = Field(default=None, description="Overrides https://api.<site>.")


def _endpoint(settings: DatadogSettings) -> Endpoint:
    headers = {"DD-API-KEY": settings.api_key.get_secret_value()}
    if settings.app_key is not None:
        headers["DD-APPLICATION-KEY"] = settings.app_key.get_secret_value()
    return Endpoint(settings.api_url or f"https://api.{settings.site}", headers)


connector = Connector(
    "datadog", DatadogSettings, title="Datadog", endpoint=_endpoint, doc=__doc__ or ""
)


class Event(BaseModel):
    """An event on the Datadog event stream."""

    title: str = Field(max_length=500)
    text: str = Field(max_length=4000)
    alert_type: Literal["error", "warning", "info", "success"] = "info"
    tags: list[str] | None = None
    aggregation_key: str | None = Field(default=None, max_length=100)


class EventOut(BaseModel):
    """The event created."""

    id: int | None
    url: str | None = None


class Downtime(BaseModel):
    """Mute monitors matching a scope for some minutes from now."""

    scope: list[str] = Field(min_length=1, description='e.g. ["env:prod", "service:api"]')
    monitor_id: int | None = None
    minutes: float = Field(default=60, gt=0)
    message: str | None = None


class DowntimeOut(BaseModel):
    """The downtime created."""

    id: int
    end: int | None = None


@connector.action
async def post_event(ctx: ActionContext[DatadogSettings], data: Event) -> EventOut:
    """Post an event (shows on dashboards and can trigger event monitors)."""
    body: dict[str, Any] = data.model_dump(exclude_none=True)
    answer = await ctx.client.json("POST", "/api/v1/events", json=body)
    event = answer.get("event") or {}
    return EventOut(id=event.get("id"), url=event.get("url"))


@connector.action
async def schedule_downtime(ctx: ActionContext[DatadogSettings], data: Downtime) -> DowntimeOut:
    """Schedule a downtime: monitors in the scope are muted until it ends."""
    if ctx.settings.app_key is None:
        raise ConnectorPermanentError(f"connection {ctx.connection!r} needs app_key for downtimes")
    start = int(ctx.now())
    body: dict[str, Any] = {
        "scope": data.scope,
        "start": start,
        "end": start + int(data.minutes * 60),
    }
    if data.monitor_id is not None:
        body["monitor_id"] = data.monitor_id
    if data.message:
        body["message"] = data.message
    answer = await ctx.client.json("POST", "/api/v1/downtime", json=body)
    return DowntimeOut(id=answer["id"], end=answer.get("end"))
