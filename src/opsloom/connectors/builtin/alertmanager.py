"""Prometheus Alertmanager (API v2): create and expire silences, list alerts.

Follows Alertmanager's published OpenAPI (Swagger 2.0) document: ``POST /api/v2/silences``
(answers ``silenceID``), ``DELETE /api/v2/silence/{silenceID}``, ``GET /api/v2/alerts`` with
``filter`` matchers. Tested against the real ``prometheus-alertmanager`` program.

Alertmanager takes no idempotency key, so ``create_silence`` makes one: the step's key goes
into the silence's comment (``[opsloom <key>]``), and before creating a silence the action
looks for an active or pending one carrying it (``GET /api/v2/silences``). A retried step
finds the silence its earlier attempt created instead of adding a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class AlertmanagerSettings(ConnectionSettings):
    """An Alertmanager, optionally behind a proxy that wants a bearer token."""

    url: str = Field(default="http://localhost:9093", description="Alertmanager base URL.")
    token: SecretStr | None = None


def _endpoint(settings: AlertmanagerSettings) -> Endpoint:
    headers = {}
    if settings.token is not None:
        headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
    return Endpoint(settings.url.rstrip("/"), headers)


connector = Connector(
    "alertmanager",
    AlertmanagerSettings,
    title="Alertmanager",
    endpoint=_endpoint,
    doc=__doc__ or "",
)


class Matcher(BaseModel):
    """A label matcher: ``name`` equals (or, ``is_regex``, matches) ``value``."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True


class CreateSilence(BaseModel):
    """A silence over the alerts matching every matcher."""

    matchers: list[Matcher] = Field(min_length=1)
    minutes: float = Field(default=60, gt=0, description="How long it lasts from now.")
    created_by: str = "opsloom"
    comment: str = Field(min_length=1)


class Silence(BaseModel):
    """The silence created (or found: made by an earlier attempt of the same step)."""

    silence_id: str
    ends_at: str
    existing: bool = False


class SilenceRef(BaseModel):
    """A silence by id."""

    silence_id: str


class Expired(BaseModel):
    """The silence expired."""

    silence_id: str
    expired: bool = True


class ListAlerts(BaseModel):
    """Which alerts to list (matchers like ``alertname="DiskFull"``)."""

    filter: list[str] = Field(default_factory=list)
    active: bool = True
    silenced: bool = True
    inhibited: bool = True


class Alert(BaseModel):
    """An alert as Alertmanager holds it."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    state: str
    starts_at: str


class Alerts(BaseModel):
    """The alerts found."""

    alerts: list[Alert]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def tag(key: str) -> str:
    """What marks a silence as made by the step whose idempotency key is ``key``."""
    return f"[opsloom {key}]"


async def _made_by(ctx: ActionContext[AlertmanagerSettings], mark: str) -> Silence | None:
    for found in await ctx.client.json("GET", "/api/v2/silences"):
        state = found.get("status", {}).get("state")
        if state in ("active", "pending") and mark in found.get("comment", ""):
            return Silence(silence_id=found["id"], ends_at=found["endsAt"], existing=True)
    return None


@connector.action
async def create_silence(ctx: ActionContext[AlertmanagerSettings], data: CreateSilence) -> Silence:
    """Silence matching alerts for some minutes from now.

    Idempotent within a step: a retry returns the silence the step already created.
    """
    comment = data.comment
    if ctx.idempotency_key is not None:
        mark = tag(ctx.idempotency_key)
        earlier = await _made_by(ctx, mark)
        if earlier is not None:
            return earlier
        comment = f"{comment} {mark}"
    start = datetime.fromtimestamp(ctx.now(), tz=UTC)
    end = start + timedelta(minutes=data.minutes)
    ends_at = _iso(end)
    body: dict[str, Any] = {
        "matchers": [
            {"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal}
            for m in data.matchers
        ],
        "startsAt": _iso(start),
        "endsAt": ends_at,
        "createdBy": data.created_by,
        "comment": comment,
    }
    answer = await ctx.client.json("POST", "/api/v2/silences", json=body)
    return Silence(silence_id=answer["silenceID"], ends_at=ends_at)


@connector.action
async def expire_silence(ctx: ActionContext[AlertmanagerSettings], data: SilenceRef) -> Expired:
    """Expire (end now) a silence."""
    await ctx.client.request("DELETE", f"/api/v2/silence/{data.silence_id}")
    return Expired(silence_id=data.silence_id)


@connector.action
async def list_alerts(ctx: ActionContext[AlertmanagerSettings], data: ListAlerts) -> Alerts:
    """List alerts, optionally filtered by label matchers."""
    params: dict[str, Any] = {
        "active": str(data.active).lower(),
        "silenced": str(data.silenced).lower(),
        "inhibited": str(data.inhibited).lower(),
    }
    if data.filter:
        params["filter"] = data.filter
    found = await ctx.client.json("GET", "/api/v2/alerts", params=params)
    return Alerts(
        alerts=[
            Alert(
                fingerprint=a["fingerprint"],
                labels=a.get("labels", {}),
                annotations=a.get("annotations", {}),
                state=a.get("status", {}).get("state", "unknown"),
                starts_at=a.get("startsAt", ""),
            )
            for a in found
        ]
    )


@connector.connection_check
async def _check(ctx: ActionContext[AlertmanagerSettings]) -> str:
    status = await ctx.client.json("GET", "/api/v2/status")
    return f"Alertmanager {status.get('versionInfo', {}).get('version', '?')}"
