"""Generic hooks (``/hooks/generic/<name>``): any sender that follows Standard Webhooks.

Standard Webhooks: the sender signs ``<webhook-id>.<webhook-timestamp>.<body>`` with
HMAC-SHA256 under the base64-decoded part of its ``whsec_…`` secret and sends
``webhook-signature: v1,<base64>`` (several space-separated signatures during a secret
rotation; any one matching is enough). ``webhook-timestamp`` (Unix seconds) must be within the
replay window, and ``webhook-id`` is the event id, so a retried delivery is stored once.

The JSON body becomes the event's ``data.raw``. A body whose ``type`` member is a string
(Standard Webhooks' suggested ``{"type", "timestamp", "data"}`` shape) gives the type
``io.opsloom.generic.<name>.<type>.v1``; any other body ``io.opsloom.generic.<name>.v1``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from opsloom.codec import JsonTextError, read_json
from opsloom.model.cloudevent import CloudEvent, rfc3339
from opsloom.triggers.sources.base import WebhookAuthError, WebhookPayloadError, WebhookRequest
from opsloom.triggers.sources.config import GenericHook, HooksConfig
from opsloom.triggers.sources.event import make_event, type_segment
from opsloom.triggers.sources.signature import (
    any_digest_matches,
    check_window,
    decode_base64,
    not_configured,
)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class GenericSource:
    """``/hooks/generic/<name>``: one per configured hook name."""

    config = GenericHook

    def __init__(self, hook: str) -> None:
        self.hook = hook

    @property
    def name(self) -> str:
        return f"generic/{self.hook}"

    def verify(self, request: WebhookRequest, config: HooksConfig, now: float) -> None:
        hook = config.generic_hook(self.hook)
        if hook is None:
            raise not_configured(self.name, "Standard Webhooks secret")
        message_id = request.header(ID_HEADER)
        if message_id is None:
            raise WebhookAuthError("missing_signature", f"header {ID_HEADER} is missing")
        stamp = request.header(TIMESTAMP_HEADER)
        header = request.header(SIGNATURE_HEADER)
        if header is None:
            raise WebhookAuthError("missing_signature", f"header {SIGNATURE_HEADER} is missing")
        digests = []
        for item in header.split():
            version, sep, value = item.partition(",")
            # Only v1 (HMAC-SHA256) is symmetric; other schemes (v1a …) are skipped, and so is
            # an entry that does not decode: another entry may still match.
            if sep and version == "v1":
                with contextlib.suppress(WebhookAuthError):
                    digests.append(decode_base64(value, SIGNATURE_HEADER))
        if not digests:
            raise WebhookAuthError(
                "malformed_signature", f"header {SIGNATURE_HEADER} holds no v1,<base64> signature"
            )
        if stamp is None:
            raise WebhookAuthError("missing_timestamp", f"header {TIMESTAMP_HEADER} is missing")
        signed = f"{message_id}.{stamp}.".encode() + request.body
        if not any_digest_matches(hook.keys(), signed, digests):
            raise WebhookAuthError(
                "bad_signature", f"no signature in header {SIGNATURE_HEADER} matches"
            )
        check_window(stamp, TIMESTAMP_HEADER, now, config.replay_window)

    def normalise(self, request: WebhookRequest) -> list[CloudEvent]:
        message_id = request.header(ID_HEADER)
        if message_id is None:
            raise WebhookPayloadError(f"header {ID_HEADER} is missing", field=ID_HEADER)
        payload = _json(request.body)
        kind = payload.get("type") if isinstance(payload, dict) else None
        suffix = (
            ".".join(type_segment(part) for part in kind.split("."))
            if isinstance(kind, str) and kind.strip()
            else ""
        )
        stamp = request.header(TIMESTAMP_HEADER)
        moment = None
        if stamp is not None and stamp.isdigit():
            moment = rfc3339(float(stamp))
        hook = type_segment(self.hook)
        return [
            make_event(
                source=f"/hooks/{self.name}",
                type=f"io.opsloom.generic.{hook}.{suffix}.v1"
                if suffix
                else f"io.opsloom.generic.{hook}.v1",
                id=message_id,
                time=moment,
                time_field=TIMESTAMP_HEADER,
                data={
                    "hook": self.hook,
                    "type": kind if isinstance(kind, str) else None,
                    "delivery": message_id,
                    "raw": payload,
                },
            )
        ]


def _json(body: bytes) -> Any:
    try:
        return read_json(body)
    except JsonTextError as exc:
        raise WebhookPayloadError(f"the body is not accepted as JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise WebhookPayloadError(
            f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
