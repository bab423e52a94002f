"""Datadog monitor notifications through the Webhooks integration.

Datadog posts whatever payload template the webhook is given, filled with ``$VARIABLES``;
opsloom reads the template of docs/howto/webhooks.md (members ``id``, ``alert_id``,
``aggreg_key``, ``alert_cycle_key``, ``transition``, ``alert_type``, ``priority``, ``title``,
``status``, ``scope``, ``tags``, ``query``, ``metric``, ``date``, ``link``, ``hostname``,
``org_id``). ``id`` and ``transition`` are required, and ``aggreg_key`` or ``alert_id``.

Datadog signs nothing. The webhook sends a shared token in a custom header (``X-Opsloom-Token``
by default; keep the value in a hidden Datadog custom variable) or basic credentials. Datadog's
``$ID`` is the notification's id: it makes the event id, so a retried delivery is stored once.
"""

from __future__ import annotations

from typing import Any

from opsloom.model.cloudevent import CloudEvent, rfc3339
from opsloom.triggers.sources.base import (
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    json_object,
    required_text,
    text,
)
from opsloom.triggers.sources.config import DatadogHook, HooksConfig
from opsloom.triggers.sources.credential import check_authorization
from opsloom.triggers.sources.event import (
    Alert,
    Link,
    alert_event,
    severity_of,
    stable_id,
)
from opsloom.triggers.sources.signature import any_secret_equals, not_configured

#: ``$ALERT_TRANSITION`` values that end an alert; every other one (Triggered, Re-Triggered,
#: Warn, Re-Warn, No Data, Re-No Data, Renotify) means it is firing.
RESOLVED_TRANSITIONS = frozenset({"recovered"})


class DatadogSource:
    """``/hooks/datadog``."""

    name = "datadog"
    config = DatadogHook

    def verify(self, request: WebhookRequest, config: HooksConfig, now: float) -> None:
        hook = config.section(self.name, DatadogHook)
        if not hook.has_credentials:
            raise not_configured(self.name, "token or basic credentials")
        token = request.header(hook.token_header)
        if token is not None and hook.tokens:
            if any_secret_equals((t.get_secret_value() for t in hook.tokens), token):
                return
            raise WebhookAuthError("bad_credentials", f"header {hook.token_header} is not accepted")
        if request.header("Authorization") is not None:
            check_authorization(request, hook)
            return
        expected = hook.token_header if hook.tokens else "Authorization"
        raise WebhookAuthError("missing_credentials", f"header {expected} is missing")

    def normalise(self, request: WebhookRequest) -> list[CloudEvent]:
        payload = json_object(request.body)
        notification = required_text(payload, "id", "")
        transition = required_text(payload, "transition", "")
        alert_id = text(payload, "alert_id", "", required=False)
        aggregation = text(payload, "aggreg_key", "", required=False)
        scope = text(payload, "scope", "", required=False)
        if not aggregation and not alert_id:
            raise WebhookPayloadError(
                "field 'aggreg_key' or 'alert_id' is missing", field="aggreg_key"
            )
        source = f"/hooks/{self.name}"
        fingerprint = aggregation or stable_id(alert_id or "", scope or "")[:16]
        status = "resolved" if transition.strip().lower() in RESOLVED_TRANSITIONS else "firing"
        labels = _tags(text(payload, "tags", "", required=False))
        labels.update(_tags(scope))
        for key in ("alert_id", "hostname", "org_id", "alert_type", "priority"):
            value = text(payload, key, "", required=False)
            if value:
                labels.setdefault(key, value)
        moment = _date(payload)
        title = text(payload, "title", "", required=False)
        annotations = {
            key: value
            for key in ("title", "status", "query", "metric", "transition", "alert_cycle_key")
            if (value := text(payload, key, "", required=False))
        }
        link = text(payload, "link", "", required=False)
        warn = "warning" if "warn" in transition.lower() else None
        return [
            alert_event(
                Alert(
                    source=source,
                    fingerprint=fingerprint,
                    status=status,
                    severity=severity_of(
                        text(payload, "priority", "", required=False),
                        warn,
                        text(payload, "alert_type", "", required=False),
                    ),
                    raw=payload,
                    where="",
                    labels=labels,
                    annotations=annotations,
                    starts_at=moment if status == "firing" else None,
                    ends_at=moment if status == "resolved" else None,
                    links=[Link("monitor", link)] if link else [],
                    summary=title,
                    delivery=notification,
                    time_field="date",
                )
            )
        ]


def _tags(value: str | None) -> dict[str, str]:
    """``$TAGS``/``$ALERT_SCOPE`` (``env:prod, service:api``) as labels; a bare tag maps to ''."""
    labels: dict[str, str] = {}
    for item in (value or "").split(","):
        item = item.strip()
        if item:
            key, _, tag_value = item.partition(":")
            labels.setdefault(key.strip(), tag_value.strip())
    return labels


def _date(payload: dict[str, Any]) -> str | None:
    """``$DATE`` is epoch milliseconds; an RFC 3339 text is taken as it is."""
    value = payload.get("date")
    if value is None or value == "":
        return None
    if isinstance(value, str) and not value.strip().isdigit():
        return value.strip()
    try:
        return rfc3339(int(value) / 1000.0)
    except (TypeError, ValueError, OverflowError, OSError):
        raise WebhookPayloadError(
            "field 'date' must be epoch milliseconds ($DATE)", field="date"
        ) from None
