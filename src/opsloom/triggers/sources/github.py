"""GitHub webhooks.

GitHub signs the raw body with HMAC-SHA256 under the webhook's secret and sends
``X-Hub-Signature-256: sha256=<hex>``. It sends no timestamp and signs none of its headers,
so a captured request could be sent again under another ``X-GitHub-Delivery``: the event id is
therefore the SHA-256 of the signed body, and the store keeps one event per source and id. A
replay, or GitHub's own redelivery, is a duplicate whatever its delivery header says (which is
kept in the data as ``delivery``). ``X-GitHub-Event`` names the event (``push``,
``pull_request``…), which becomes the type ``io.opsloom.github.<event>.v1``; it is not signed
either, but a replay under another event name carries a body it was not sent with and is
still a duplicate.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from opsloom.model.cloudevent import CloudEvent
from opsloom.triggers.sources.base import (
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    json_object,
)
from opsloom.triggers.sources.config import GitHubHook, HooksConfig
from opsloom.triggers.sources.event import make_event, type_segment
from opsloom.triggers.sources.signature import (
    any_digest_matches,
    body_id,
    decode_hex,
    not_configured,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"


class GitHubSource:
    """``/hooks/github``."""

    name = "github"
    config = GitHubHook

    def verify(self, request: WebhookRequest, config: HooksConfig, now: float) -> None:
        secrets = config.section(self.name, GitHubHook).secrets
        if not secrets:
            raise not_configured(self.name, "webhook secret")
        header = request.header(SIGNATURE_HEADER)
        if header is None:
            raise WebhookAuthError("missing_signature", f"header {SIGNATURE_HEADER} is missing")
        algorithm, sep, value = header.partition("=")
        if not sep or algorithm.strip().lower() != "sha256":
            raise WebhookAuthError(
                "malformed_signature", f"header {SIGNATURE_HEADER} must be 'sha256=<hex>'"
            )
        digest = decode_hex(value, SIGNATURE_HEADER)
        keys = [secret.get_secret_value().encode() for secret in secrets]
        if not any_digest_matches(keys, request.body, [digest]):
            raise WebhookAuthError("bad_signature", f"header {SIGNATURE_HEADER} does not match")

    def normalise(self, request: WebhookRequest) -> list[CloudEvent]:
        event = _header(request, EVENT_HEADER)
        delivery = _header(request, DELIVERY_HEADER)
        payload = _payload(request)
        action = payload.get("action") if isinstance(payload.get("action"), str) else None
        repository = payload.get("repository")
        repo = repository.get("full_name") if isinstance(repository, dict) else None
        return [
            make_event(
                source=f"/hooks/{self.name}",
                type=f"io.opsloom.github.{type_segment(event)}.v1",
                id=body_id(request.body),
                subject=repo if isinstance(repo, str) else None,
                data={"event": event, "action": action, "delivery": delivery, "raw": payload},
            )
        ]


def _header(request: WebhookRequest, name: str) -> str:
    value = request.header(name)
    if value is None:
        raise WebhookPayloadError(f"header {name} is missing", field=name)
    return value


def _payload(request: WebhookRequest) -> dict[str, Any]:
    # GitHub sends JSON, or, for webhooks set to the form content type, a 'payload' form field.
    content_type = (request.header("Content-Type") or "").lower()
    if content_type.startswith("application/x-www-form-urlencoded"):
        fields = parse_qs(request.body.decode("utf-8", errors="replace"))
        if "payload" not in fields:
            raise WebhookPayloadError("form field 'payload' is missing", field="payload")
        return json_object(fields["payload"][0].encode())
    return json_object(request.body)
