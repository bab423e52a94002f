"""Grafana Alerting (unified alerting) webhook contact points.

The payload is Alertmanager's shape plus Grafana members (``orgId``, ``title``, ``state``,
``message``; per alert ``silenceURL``, ``dashboardURL``, ``panelURL``, ``values``…).

Authenticity: a contact point with an HMAC secret signs each request with HMAC-SHA256, hex,
in a header whose name is configurable (``X-Grafana-Alerting-Signature`` by default). When the
contact point also names a timestamp header, Grafana sends the Unix time in it and signs
``<timestamp>:<body>`` instead of the body alone; opsloom then checks the replay window.
A contact point may instead send basic or bearer credentials; both checks apply when both
are configured.
"""

from __future__ import annotations

from opsloom.model.cloudevent import CloudEvent
from opsloom.triggers.sources.alertmanager import group_events
from opsloom.triggers.sources.base import WebhookAuthError, WebhookRequest, json_object
from opsloom.triggers.sources.config import GrafanaHook, HooksConfig
from opsloom.triggers.sources.credential import check_authorization
from opsloom.triggers.sources.signature import (
    any_digest_matches,
    check_window,
    decode_hex,
    not_configured,
)

GRAFANA_LINKS = (
    ("generatorURL", "source"),
    ("silenceURL", "silence"),
    ("dashboardURL", "dashboard"),
    ("panelURL", "panel"),
    ("imageURL", "image"),
)


class GrafanaSource:
    """``/hooks/grafana``."""

    name = "grafana"
    config = GrafanaHook

    def verify(self, request: WebhookRequest, config: HooksConfig, now: float) -> None:
        hook = config.section(self.name, GrafanaHook)
        if not hook.secrets and not hook.has_credentials:
            raise not_configured(self.name, "HMAC secret or credentials")
        if hook.secrets:
            _check_signature(request, hook, now, config.replay_window)
        if hook.has_credentials:
            check_authorization(request, hook)

    def normalise(self, request: WebhookRequest) -> list[CloudEvent]:
        payload = json_object(request.body)
        return group_events(
            payload, source=f"/hooks/{self.name}", links=GRAFANA_LINKS, external_rel="grafana"
        )


def _check_signature(request: WebhookRequest, hook: GrafanaHook, now: float, window: float) -> None:
    signature = request.header(hook.signature_header)
    if signature is None:
        raise WebhookAuthError("missing_signature", f"header {hook.signature_header} is missing")
    digest = decode_hex(signature, hook.signature_header)
    stamp = request.header(hook.timestamp_header) if hook.timestamp_header else None
    if stamp is None and hook.require_timestamp:
        raise WebhookAuthError("missing_timestamp", f"header {hook.timestamp_header} is missing")
    message = request.body
    if stamp is not None:
        assert hook.timestamp_header is not None
        message = stamp.encode() + b":" + request.body
    keys = [secret.get_secret_value().encode() for secret in hook.secrets]
    if not any_digest_matches(keys, message, [digest]):
        raise WebhookAuthError(
            "bad_signature", f"header {hook.signature_header} does not match the body"
        )
    # The window is checked once the timestamp is known to be Grafana's own.
    if stamp is not None:
        assert hook.timestamp_header is not None
        check_window(stamp, hook.timestamp_header, now, window)
