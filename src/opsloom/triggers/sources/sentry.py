"""Sentry integration-platform webhooks (internal or public integrations).

Sentry signs the raw body with HMAC-SHA256 under the integration's client secret and sends the
hex digest in ``Sentry-Hook-Signature``; ``Sentry-Hook-Resource`` names the resource and
``Sentry-Hook-Timestamp`` the send time, checked against the replay window when present (it
is not part of the signature, and neither is the ``Request-ID`` delivery id: so events are
told apart by the SHA-256 of the signed body, and a replayed request, under whatever
``Request-ID`` and timestamp, is stored once). The delivery id is kept in the data.

Alerts: ``event_alert`` (an issue alert rule fired: ``io.opsloom.alert.firing.v1``, the issue
is the fingerprint) and ``metric_alert`` (``critical``/``warning`` fire, ``resolved``
resolves; the metric incident is the fingerprint). Every other resource (``issue``,
``error``, ``comment``, ``installation`` …) is ``io.opsloom.sentry.<resource>.<action>.v1``
with the body's hash as event id.
"""

from __future__ import annotations

from typing import Any

from opsloom.model.cloudevent import CloudEvent
from opsloom.triggers.sources.base import (
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    json_object,
    obj_member,
    required_text,
    text,
)
from opsloom.triggers.sources.config import HooksConfig, SentryHook
from opsloom.triggers.sources.event import (
    Alert,
    Link,
    alert_event,
    make_event,
    severity_of,
    type_segment,
)
from opsloom.triggers.sources.signature import (
    any_digest_matches,
    body_id,
    check_window,
    decode_hex,
    not_configured,
)

SIGNATURE_HEADER = "Sentry-Hook-Signature"
RESOURCE_HEADER = "Sentry-Hook-Resource"
TIMESTAMP_HEADER = "Sentry-Hook-Timestamp"
DELIVERY_HEADER = "Request-ID"


class SentrySource:
    """``/hooks/sentry``."""

    name = "sentry"
    config = SentryHook

    def verify(self, request: WebhookRequest, config: HooksConfig, now: float) -> None:
        secrets = config.section(self.name, SentryHook).secrets
        if not secrets:
            raise not_configured(self.name, "client secret")
        header = request.header(SIGNATURE_HEADER)
        if header is None:
            raise WebhookAuthError("missing_signature", f"header {SIGNATURE_HEADER} is missing")
        digest = decode_hex(header, SIGNATURE_HEADER)
        keys = [secret.get_secret_value().encode() for secret in secrets]
        if not any_digest_matches(keys, request.body, [digest]):
            raise WebhookAuthError("bad_signature", f"header {SIGNATURE_HEADER} does not match")
        stamp = request.header(TIMESTAMP_HEADER)
        if stamp is not None:
            check_window(stamp, TIMESTAMP_HEADER, now, config.replay_window)

    def normalise(self, request: WebhookRequest) -> list[CloudEvent]:
        resource = request.header(RESOURCE_HEADER)
        if resource is None:
            raise WebhookPayloadError(f"header {RESOURCE_HEADER} is missing", field=RESOURCE_HEADER)
        payload = json_object(request.body)
        action = required_text(payload, "action", "")
        delivery = request.header(DELIVERY_HEADER)
        signed = body_id(request.body)
        source = f"/hooks/{self.name}"
        if resource == "metric_alert":
            return [_metric_alert(source, payload, action, signed)]
        if resource == "event_alert":
            return [_event_alert(source, payload, signed)]
        data = obj_member(payload, "data", "")
        subject = None
        for key in ("issue", "error", "comment", "installation"):
            inner = data.get(key)
            if isinstance(inner, dict) and isinstance(inner.get("id") or inner.get("uuid"), str):
                subject = inner.get("id") or inner.get("uuid")
                break
        return [
            make_event(
                source=source,
                type=f"io.opsloom.sentry.{type_segment(resource)}.{type_segment(action)}.v1",
                id=signed,
                subject=subject,
                data={"resource": resource, "action": action, "delivery": delivery, "raw": payload},
            )
        ]


def _metric_alert(source: str, payload: dict[str, Any], action: str, signed: str) -> CloudEvent:
    if action not in ("critical", "warning", "resolved"):
        raise WebhookPayloadError(
            f"field 'action' of a metric alert must be critical, warning or resolved, not "
            f"{action!r}",
            field="action",
        )
    data = obj_member(payload, "data", "", required=True)
    incident = obj_member(data, "metric_alert", "data", required=True)
    incident_id = required_text(incident, "id", "data.metric_alert")
    rule = obj_member(incident, "alert_rule", "data.metric_alert")
    projects = rule.get("projects")
    labels = {
        "alert_rule": text(rule, "name", "data.metric_alert.alert_rule", required=False),
        "alert_rule_id": text(rule, "id", "data.metric_alert.alert_rule", required=False),
        "aggregate": text(rule, "aggregate", "data.metric_alert.alert_rule", required=False),
        "dataset": text(rule, "dataset", "data.metric_alert.alert_rule", required=False),
        "projects": ",".join(map(str, projects)) if isinstance(projects, list) else None,
    }
    title = text(data, "description_title", "data", required=False)
    description = text(data, "description_text", "data", required=False)
    href = text(data, "web_url", "data", required=False)
    started = text(incident, "date_started", "data.metric_alert", required=False)
    closed = text(incident, "date_closed", "data.metric_alert", required=False)
    status = "resolved" if action == "resolved" else "firing"
    annotations = {"title": title, "description": description}
    return alert_event(
        Alert(
            source=source,
            fingerprint=f"metric_alert-{incident_id}",
            status=status,
            severity=severity_of(action) if status == "firing" else "info",
            raw=payload,
            where="data.metric_alert",
            labels={key: value for key, value in labels.items() if value},
            annotations={key: value for key, value in annotations.items() if value},
            starts_at=started,
            ends_at=closed,
            links=[Link("alert", href)] if href else [],
            summary=title or text(incident, "title", "data.metric_alert", required=False),
            # critical -> warning -> critical of one incident share their start time: the
            # signed body tells the notifications apart (a replay of one is the same event).
            delivery=signed,
            time_field="data.metric_alert."
            + ("date_closed" if status == "resolved" and closed else "date_started"),
        )
    )


def _event_alert(source: str, payload: dict[str, Any], signed: str) -> CloudEvent:
    data = obj_member(payload, "data", "", required=True)
    event = obj_member(data, "event", "data", required=True)
    issue_id = required_text(event, "issue_id", "data.event")
    labels: dict[str, str] = {}
    tags = event.get("tags")
    if isinstance(tags, list):
        for pair in tags:
            if isinstance(pair, list) and len(pair) == 2:
                labels[str(pair[0])] = str(pair[1])
    project = text(event, "project", "data.event", required=False)
    if project:
        labels.setdefault("project", project)
    rule = text(data, "triggered_rule", "data", required=False)
    if rule:
        labels["alert_rule"] = rule
    title = text(event, "title", "data.event", required=False)
    culprit = text(event, "culprit", "data.event", required=False)
    links = [
        Link(rel, value)
        for rel, value in (
            ("event", text(event, "web_url", "data.event", required=False)),
            ("issue", text(event, "issue_url", "data.event", required=False)),
        )
        if value
    ]
    return alert_event(
        Alert(
            source=source,
            fingerprint=f"issue-{issue_id}",
            status="firing",
            severity=severity_of(text(event, "level", "data.event", required=False)),
            raw=payload,
            where="data.event",
            labels=labels,
            annotations={k: v for k, v in (("title", title), ("culprit", culprit)) if v},
            starts_at=text(event, "datetime", "data.event", required=False),
            links=links,
            summary=title,
            delivery=signed,
            time_field="data.event.datetime",
        )
    )
