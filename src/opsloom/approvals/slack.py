"""Deciding from Slack: interactive-message callbacks, verified the way Slack signs them.

Slack sends button clicks as ``application/x-www-form-urlencoded`` with one field,
``payload`` (JSON), and signs every request: ``X-Slack-Signature: v0=<hex>`` is the
HMAC-SHA256, under the app's signing secret, of ``v0:<X-Slack-Request-Timestamp>:<raw body>``.
A request older (or newer) than five minutes is refused, so a captured request cannot be
replayed later. The clicking Slack user is mapped to an opsloom user by their ``slack_id``.

Buttons carry the decision in their ``action_id`` (``approve`` or ``deny``) and the task id
in their ``value``; a denial from Slack gets the reason "denied from Slack".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from opsloom.approvals.spec import ApprovalError

#: How far a request's timestamp may be from now, in seconds.
WINDOW_SECONDS = 300.0


class SlackRequestError(ApprovalError):
    """A Slack callback is not authentic, is stale, or cannot be read."""

    code = "slack_request_invalid"


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack computes for ``body`` sent at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_slack_request(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    window: float = WINDOW_SECONDS,
) -> None:
    """Raise ``SlackRequestError`` unless the request is signed and fresh."""
    if not secret:
        raise SlackRequestError("no Slack signing secret is configured")
    if not timestamp or not signature:
        raise SlackRequestError("the Slack signature headers are missing")
    # Slack sends whole epoch seconds; anything else (nan, inf, 1e9, 1.5) is refused, since
    # ``abs(now - nan) > window`` is false and a NaN would pass the freshness check.
    if not timestamp.isdigit() or not timestamp.isascii():
        raise SlackRequestError("the Slack request timestamp is not whole epoch seconds")
    sent = float(timestamp)
    if not abs(now - sent) <= window:
        raise SlackRequestError("the Slack request is stale (outside the 5 minute window)")
    if not hmac.compare_digest(slack_signature(secret, timestamp, body), signature):
        raise SlackRequestError("the Slack signature does not match")


@dataclass(frozen=True, slots=True)
class SlackAction:
    """One button click: who, which decision, on which task."""

    slack_user: str
    approve: bool
    task_id: str
    response_url: str | None


def parse_interaction(body: bytes) -> SlackAction:
    """The approval action in an interaction callback body."""
    try:
        fields = parse_qs(body.decode(), strict_parsing=True)
        payload: dict[str, Any] = json.loads(fields["payload"][0])
        slack_user = str(payload["user"]["id"])
        action = payload["actions"][0]
        action_id = str(action.get("action_id") or action.get("name") or "")
        task_id = str(action["value"])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError):
        raise SlackRequestError("the Slack payload is not an approval action") from None
    if action_id not in ("approve", "deny"):
        raise SlackRequestError(f"unknown Slack action {action_id!r}")
    return SlackAction(slack_user, action_id == "approve", task_id, payload.get("response_url"))
