"""Deciding from Slack: interactive-message callbacks, verified the way Slack signs them.

Slack sends button clicks as ``application/x-www-form-urlencoded`` with one field,
``payload`` (JSON), and signs every request: ``X-Slack-Signature: v0=<hex>`` is the
HMAC-SHA256, under the app's signing secret, of ``v0:<X-Slack-Request-Timestamp>:<raw body>``.
A request older (or newer) than five minutes is refused, so a captured request cannot be
replayed later. The clicking Slack user is mapped to an opsloom user by their ``slack_id``.

Buttons carry the decision in their ``action_id`` (``approve`` or ``deny``) and the task id
in their ``value``; a denial from Slack gets the reason "denied from Slack". A question comes
from the messages' "Ask the requester" input (``action_id`` ``ask``, sent when Enter is
pressed): its ``value`` is the question and its ``block_id`` ``ask:<task id>``. The
"Open in opsloom" link button (``open``) decides nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from opsloom.approvals.message import ASK_BLOCK
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
    """One click: who, which decision (or ``kind`` ``ask`` with its ``question``), on which
    task (``open``: the link button, nothing to do)."""

    slack_user: str
    approve: bool
    task_id: str
    response_url: str | None
    kind: str = "decide"
    question: str | None = None


def parse_interaction(body: bytes) -> SlackAction:
    """The approval action in an interaction callback body."""
    try:
        fields = parse_qs(body.decode(), strict_parsing=True)
        payload: dict[str, Any] = json.loads(fields["payload"][0])
        slack_user = str(payload["user"]["id"])
        action = payload["actions"][0]
        action_id = str(action.get("action_id") or action.get("name") or "")
        value = str(action.get("value") or "")
        block_id = str(action.get("block_id") or "")
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError):
        raise SlackRequestError("the Slack payload is not an approval action") from None
    response_url = payload.get("response_url")
    if action_id == "ask":
        if not block_id.startswith(ASK_BLOCK) or not value.strip():
            raise SlackRequestError("the Slack payload is not an approval question")
        task_id = block_id.removeprefix(ASK_BLOCK)
        return SlackAction(slack_user, False, task_id, response_url, "ask", value.strip())
    if action_id == "open":
        return SlackAction(slack_user, False, "", response_url, "open")
    if action_id not in ("approve", "deny") or not value:
        raise SlackRequestError(f"unknown Slack action {action_id!r}")
    return SlackAction(slack_user, action_id == "approve", value, response_url)
