"""Prometheus Alertmanager (``webhook_config``, payload version 4).

Alertmanager does not sign its notifications; its receiver's ``http_config`` sends either
``authorization`` (``Authorization: Bearer <credentials>``) or ``basic_auth``, and opsloom
accepts the tokens and user/password pairs configured for ``alertmanager``.

A notification is a group: ``alerts[]`` each with ``status``, ``labels``, ``annotations``,
``startsAt``, ``endsAt``, ``generatorURL`` and ``fingerprint``, plus group members
(``receiver``, ``groupKey``, ``externalURL``, ``truncatedAlerts`` …). Each alert becomes one
event whose id is derived from (fingerprint, status, startsAt or endsAt), so the repeat
notifications Alertmanager sends for a still-firing alert are stored once.
"""

from __future__ import annotations

from typing import Any

from opsloom.model.cloudevent import CloudEvent
from opsloom.triggers.sources.base import (
    WebhookPayloadError,
    WebhookRequest,
    json_object,
    string_map,
    text,
)
from opsloom.triggers.sources.config import AlertmanagerHook, HooksConfig
from opsloom.triggers.sources.credential import check_authorization
from opsloom.triggers.sources.event import (
    Alert,
    Link,
    alert_event,
    clean_time,
    label_fingerprint,
    severity_of,
)
from opsloom.triggers.sources.signature import not_configured

#: Links of an Alertmanager-style alert: the member holding the URL, and its ``rel``.
ALERT_LINKS = (("generatorURL", "source"),)


class AlertmanagerSource:
    """``/hooks/alertmanager``."""

    name = "alertmanager"
    config = AlertmanagerHook

    def verify(self, request: WebhookRequest, config: HooksConfig, now: float) -> None:
        hook = config.section(self.name, AlertmanagerHook)
        if not hook.has_credentials:
            raise not_configured(self.name, "bearer token or basic credentials")
        check_authorization(request, hook)

    def normalise(self, request: WebhookRequest) -> list[CloudEvent]:
        payload = json_object(request.body)
        return group_events(
            payload, source=f"/hooks/{self.name}", links=ALERT_LINKS, external_rel="alertmanager"
        )


def group_events(
    payload: dict[str, Any],
    *,
    source: str,
    links: tuple[tuple[str, str], ...],
    external_rel: str,
) -> list[CloudEvent]:
    """One event per alert of an Alertmanager-shaped notification (Alertmanager, Grafana)."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise WebhookPayloadError(
            "field 'alerts' is missing or not an array of alerts", field="alerts"
        )
    external = payload.get("externalURL")
    group_status = payload.get("status") if isinstance(payload.get("status"), str) else None
    events = []
    for index, raw in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(raw, dict):
            raise WebhookPayloadError(f"field {where!r} must be an object", field=where)
        labels = string_map(raw, "labels", where)
        annotations = string_map(raw, "annotations", where)
        status = text(raw, "status", where, required=group_status is None) or group_status
        assert status is not None
        alert_links = [Link(rel, str(raw[key])) for key, rel in links if raw.get(key)]
        if isinstance(external, str) and external:
            alert_links.append(Link(external_rel, external))
        alert = Alert(
            source=source,
            fingerprint=text(raw, "fingerprint", where, required=False)
            or label_fingerprint(labels),
            status=status,
            severity=severity_of(labels.get("severity"), labels.get("priority")),
            raw=raw,
            where=where,
            labels=labels,
            annotations=annotations,
            starts_at=clean_time(text(raw, "startsAt", where, required=False)),
            ends_at=clean_time(text(raw, "endsAt", where, required=False)),
            links=alert_links,
            summary=annotations.get("summary") or labels.get("alertname"),
        )
        events.append(alert_event(alert))
    return events
