"""PagerDuty v3 webhook subscriptions.

PagerDuty signs the raw body with HMAC-SHA256 under the subscription's secret and sends
``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]``: several signatures while a secret is being
rotated, and the request is genuine when any one of them matches. There is no timestamp; the
delivery's ``event.id`` is the event id, so a replayed delivery is stored once.

An incident is an alert: ``incident.triggered``, ``incident.reopened`` and
``incident.unacknowledged`` are ``io.opsloom.alert.firing.v1``, ``incident.acknowledged`` is
``io.opsloom.alert.acknowledged.v1`` and ``incident.resolved`` is
``io.opsloom.alert.resolved.v1``; the incident id is the fingerprint. Every other event type
(``incident.annotated``, ``incident.priority_updated``, ``service.created``, ``pagey.ping`` …)
is ``io.opsloom.pagerduty.<event_type>.v1``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from opsloom.model.cloudevent import CloudEvent
from opsloom.triggers.sources.base import (
    WebhookAuthError,
    WebhookRequest,
    json_object,
    obj_member,
    required_text,
    text,
)
from opsloom.triggers.sources.config import HooksConfig, PagerDutyHook
from opsloom.triggers.sources.event import (
    Alert,
    Link,
    alert_event,
    make_event,
    severity_of,
    type_segment,
)
from opsloom.triggers.sources.signature import any_digest_matches, decode_hex, not_configured

SIGNATURE_HEADER = "X-PagerDuty-Signature"
ALERT_STATUS_OF = {
    "incident.triggered": "firing",
    "incident.reopened": "firing",
    "incident.unacknowledged": "firing",
    "incident.acknowledged": "acknowledged",
    "incident.resolved": "resolved",
}


class PagerDutySource:
    """``/hooks/pagerduty``."""

    name = "pagerduty"
    config = PagerDutyHook

    def verify(self, request: WebhookRequest, config: HooksConfig, now: float) -> None:
        secrets = config.section(self.name, PagerDutyHook).secrets
        if not secrets:
            raise not_configured(self.name, "webhook subscription secret")
        header = request.header(SIGNATURE_HEADER)
        if header is None:
            raise WebhookAuthError("missing_signature", f"header {SIGNATURE_HEADER} is missing")
        digests = []
        for part in header.split(","):
            version, sep, value = part.strip().partition("=")
            # Signatures of a scheme this code does not know are skipped, not rejected (a
            # later scheme may be sent next to v1), and so is one that does not decode.
            if sep and version == "v1":
                with contextlib.suppress(WebhookAuthError):
                    digests.append(decode_hex(value, SIGNATURE_HEADER))
        if not digests:
            raise WebhookAuthError(
                "malformed_signature", f"header {SIGNATURE_HEADER} holds no v1=<hex> signature"
            )
        keys = [secret.get_secret_value().encode() for secret in secrets]
        if not any_digest_matches(keys, request.body, digests):
            raise WebhookAuthError(
                "bad_signature", f"no signature in header {SIGNATURE_HEADER} matches the body"
            )

    def normalise(self, request: WebhookRequest) -> list[CloudEvent]:
        payload = json_object(request.body)
        event = obj_member(payload, "event", "", required=True)
        event_type = required_text(event, "event_type", "event")
        event_id = required_text(event, "id", "event")
        occurred = text(event, "occurred_at", "event", required=False)
        source = f"/hooks/{self.name}"
        status = ALERT_STATUS_OF.get(event_type)
        if status is not None:
            return [_incident_alert(source, event, status, event_id, occurred, payload)]
        data = obj_member(event, "data", "event")
        subject = data.get("id") if isinstance(data.get("id"), str) else None
        name = ".".join(type_segment(part) for part in event_type.split("."))
        return [
            make_event(
                source=source,
                type=f"io.opsloom.pagerduty.{name}.v1",
                id=event_id,
                subject=subject,
                time=occurred,
                time_field="event.occurred_at",
                data={
                    "event_type": event_type,
                    "resource_type": event.get("resource_type"),
                    "delivery": event_id,
                    "raw": payload,
                },
            )
        ]


def _incident_alert(
    source: str,
    event: dict[str, Any],
    status: str,
    event_id: str,
    occurred: str | None,
    payload: dict[str, Any],
) -> CloudEvent:
    incident = obj_member(event, "data", "event", required=True)
    incident_id = required_text(incident, "id", "event.data")
    priority = obj_member(incident, "priority", "event.data")
    service = obj_member(incident, "service", "event.data")
    policy = obj_member(incident, "escalation_policy", "event.data")
    priority_name = text(priority, "summary", "event.data.priority", required=False)
    urgency = text(incident, "urgency", "event.data", required=False)
    labels = {
        "service": text(service, "summary", "event.data.service", required=False),
        "service_id": text(service, "id", "event.data.service", required=False),
        "escalation_policy": text(
            policy, "summary", "event.data.escalation_policy", required=False
        ),
        "priority": priority_name,
        "urgency": urgency,
        "incident_number": text(incident, "number", "event.data", required=False),
        "incident_key": text(incident, "incident_key", "event.data", required=False),
    }
    created = text(incident, "created_at", "event.data", required=False)
    title = text(incident, "title", "event.data", required=False)
    href = text(incident, "html_url", "event.data", required=False)
    return alert_event(
        Alert(
            source=source,
            fingerprint=incident_id,
            status=status,
            # Urgency low means "do not wake anyone": a warning, not information.
            severity=severity_of(priority_name, {"low": "warning"}.get(urgency or "", urgency)),
            raw=payload,
            where="event.data",
            labels={key: value for key, value in labels.items() if value},
            annotations={"title": title} if title else {},
            starts_at=created,
            ends_at=occurred if status == "resolved" else None,
            links=[Link("incident", href)] if href else [],
            summary=title,
            event_id=event_id,
            time=occurred,
            time_field="event.occurred_at",
        )
    )
