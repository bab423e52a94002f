"""The CloudEvents webhook sources produce: one shape for alerts, one naming rule for the rest.

Every alert source (Alertmanager, Grafana, Datadog, Sentry alerts, PagerDuty incidents) yields
one ``io.opsloom.alert.<status>.v1`` event per alert, whose ``data`` has the same members
whatever the sender, so a workflow reacting to alerts does not care where they come from.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsloom.model.cloudevent import CloudEvent, InvalidEventError, parse_event
from opsloom.triggers.sources.base import WebhookPayloadError

ALERT_TYPE = "io.opsloom.alert.{status}.v1"
ALERT_STATUSES = ("firing", "resolved", "acknowledged")
SEVERITIES = ("critical", "high", "warning", "info")
#: Severity of an alert whose sender gives none.
DEFAULT_SEVERITY = "warning"

_SEVERITY_WORDS: dict[str, str] = {}
for _severity, _words in {
    "critical": "critical crit fatal emergency emerg alert page disaster p1 p0 sev0 sev1 s1 1",
    "high": "high error err major p2 sev2 s2 2",
    "warning": "warning warn medium moderate minor average p3 sev3 s3 3",
    "info": "info informational information low notice debug ok none p4 p5 sev4 sev5 4 5",
}.items():
    for _word in _words.split():
        _SEVERITY_WORDS[_word] = _severity

_SEGMENT = re.compile(r"[^a-z0-9_]+")
# Go's zero time: Alertmanager and Grafana send it as endsAt of an alert still firing.
_ZERO_TIME = "0001-01-01T00:00:00"


def severity_of(*values: str | None) -> str:
    """The first value that names a known severity, as critical, high, warning or info."""
    for value in values:
        if not value:
            continue
        word = re.sub(r"[\s_-]+", "", value.strip().lower())
        if word in _SEVERITY_WORDS:
            return _SEVERITY_WORDS[word]
    return DEFAULT_SEVERITY


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable fingerprint of a label set (same labels, same fingerprint, in any order)."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stable_id(*parts: str) -> str:
    """A deterministic event id from its parts: the same notification gets the same id."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def type_segment(value: str) -> str:
    """A sender's event name as one segment of a CloudEvent ``type`` (``pull_request``)."""
    segment = _SEGMENT.sub("_", value.strip().lower()).strip("_")
    return segment or "unknown"


def clean_time(value: str | None) -> str | None:
    """A sender's timestamp, with Go's zero time and blanks read as absent."""
    if value is None or not value.strip() or value.startswith(_ZERO_TIME):
        return None
    return value.strip()


@dataclass(frozen=True, slots=True)
class Link:
    """A related URL of an alert (``rel`` says what it is: source, silence, dashboard …)."""

    rel: str
    href: str


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, normalised; :func:`alert_event` makes its CloudEvent.

    ``delivery`` is what tells two notifications of the same alert and status apart when the
    sender gives no start or end time to do it (a delivery or notification id).
    ``where`` is the alert's path in the payload, named in error messages. ``time`` (at the
    payload path ``time_field``) is the event's time when it is not the alert's start or end.
    """

    source: str
    fingerprint: str
    status: str
    severity: str
    raw: Any
    where: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: str | None = None
    ends_at: str | None = None
    links: Sequence[Link] = ()
    summary: str | None = None
    delivery: str | None = None
    event_id: str | None = None
    time: str | None = None
    time_field: str | None = None


def alert_event(alert: Alert) -> CloudEvent:
    """The ``io.opsloom.alert.<status>.v1`` CloudEvent of one alert."""
    if alert.status not in ALERT_STATUSES:
        raise WebhookPayloadError(
            f"field {alert.where + '.status'!r} must be firing or resolved, not {alert.status!r}",
            field=alert.where + ".status",
        )
    if alert.status == "resolved":
        moment, moment_field = alert.ends_at or alert.starts_at, "endsAt"
    else:
        moment, moment_field = alert.starts_at, "startsAt"
    marker = alert.delivery or moment or ""
    event_id = alert.event_id or stable_id(alert.source, alert.fingerprint, alert.status, marker)
    data = {
        "source": alert.source,
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "severity": alert.severity,
        "summary": alert.summary,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": alert.starts_at,
        "endsAt": alert.ends_at,
        "links": [{"rel": link.rel, "href": link.href} for link in alert.links if link.href],
        "raw": alert.raw,
    }
    return make_event(
        source=alert.source,
        type=ALERT_TYPE.format(status=alert.status),
        id=event_id,
        subject=alert.fingerprint,
        time=alert.time or moment,
        data=data,
        time_field=alert.time_field or f"{alert.where}.{moment_field}",
    )


def make_event(
    *,
    source: str,
    type: str,
    id: str,
    data: Any,
    subject: str | None = None,
    time: str | None = None,
    time_field: str = "time",
) -> CloudEvent:
    """A validated CloudEvent; a sender's value that does not fit names its payload field."""
    value: dict[str, Any] = {
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": type,
        "subject": subject or None,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    }
    try:
        return parse_event(value)
    except InvalidEventError as exc:
        where = time_field if exc.attribute == "time" else (exc.attribute or "payload")
        raise WebhookPayloadError(f"field {where!r} cannot be used: {exc}", field=where) from None
