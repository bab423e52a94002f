"""Grafana: add an annotation, create a silence in Grafana's alerting.

No spec of it is in our contracts; this follows Grafana's HTTP API documentation: ``POST
/api/annotations`` (``{"message": "Annotation added", "id": …}``) and, for Grafana-managed
alerts, ``POST /api/alertmanager/grafana/api/v2/silences``, which takes the Alertmanager v2
silence model (see the Alertmanager connector). Auth is a service account token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class GrafanaSettings(ConnectionSettings):
    """A Grafana URL and service account token."""

    url: str
    token: SecretStr


def _endpoint(settings: GrafanaSettings) -> Endpoint:
    return Endpoint(
        settings.url.rstrip("/"), {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
    )


connector = Connector(
    "grafana", GrafanaSettings, title="Grafana", endpoint=_endpoint, doc=__doc__ or ""
)


class Annotate(BaseModel):
    """An annotation (a deploy, an incident) now, on one dashboard or organisation-wide."""

    text: str = Field(min_length=1)
    tags: list[str] | None = None
    dashboard_uid: str | None = None
    panel_id: int | None = None


class Annotation(BaseModel):
    """The annotation created."""

    id: int


class Silence(BaseModel):
    """Silence Grafana alerts whose labels match, for some minutes."""

    matchers: dict[str, str] = Field(min_length=1, description="Label -> value (equality).")
    minutes: float = Field(default=60, gt=0)
    comment: str = Field(min_length=1)
    created_by: str = "opsloom"


class SilenceOut(BaseModel):
    """The silence created."""

    silence_id: str


@connector.action
async def annotate(ctx: ActionContext[GrafanaSettings], data: Annotate) -> Annotation:
    """Add an annotation at the current time."""
    body: dict[str, Any] = {"text": data.text, "time": int(ctx.now() * 1000)}
    if data.tags:
        body["tags"] = data.tags
    if data.dashboard_uid:
        body["dashboardUID"] = data.dashboard_uid
    if data.panel_id is not None:
        body["panelId"] = data.panel_id
    answer = await ctx.client.json("POST", "/api/annotations", json=body)
    return Annotation(id=answer["id"])


@connector.action
async def silence(ctx: ActionContext[GrafanaSettings], data: Silence) -> SilenceOut:
    """Silence matching Grafana-managed alerts for some minutes."""
    start = datetime.fromtimestamp(ctx.now(), tz=UTC)
    end = start + timedelta(minutes=data.minutes)
    body = {
        "matchers": [
            {"name": k, "value": v, "isRegex": False, "isEqual": True}
            for k, v in data.matchers.items()
        ],
        "startsAt": start.isoformat().replace("+00:00", "Z"),
        "endsAt": end.isoformat().replace("+00:00", "Z"),
        "createdBy": data.created_by,
        "comment": data.comment,
    }
    answer = await ctx.client.json("POST", "/api/alertmanager/grafana/api/v2/silences", json=body)
    return SilenceOut(silence_id=answer["silenceID"])
