"""HMAC signatures, shared secrets and replay windows, checked in constant time.

Every comparison of a secret-derived value goes through :func:`hmac.compare_digest`, and every
candidate secret is tried (no early exit on the first match) so the time a check takes says
nothing about which secret, or which part of a signature, was right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

from opsloom.triggers.sources.base import WebhookAuthError


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """The HMAC-SHA256 digest of ``message`` under ``key``."""
    return hmac.new(key, message, hashlib.sha256).digest()


def decode_hex(value: str, header: str) -> bytes:
    """A hex-encoded SHA-256 digest from a header.

    Raises:
        WebhookAuthError: ``malformed_signature`` when it is not 64 hex digits.
    """
    try:
        digest = bytes.fromhex(value.strip())
    except ValueError:
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        raise WebhookAuthError(
            "malformed_signature", f"header {header} does not hold a hex SHA-256 signature"
        )
    return digest


def decode_base64(value: str, header: str) -> bytes:
    """A base64-encoded SHA-256 digest from a header (``malformed_signature`` otherwise)."""
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        raise WebhookAuthError(
            "malformed_signature", f"header {header} does not hold a base64 SHA-256 signature"
        )
    return digest


def any_digest_matches(keys: Iterable[bytes], message: bytes, given: Iterable[bytes]) -> bool:
    """Whether HMAC-SHA256(key, message) equals one of ``given`` for one of ``keys``."""
    expected = [hmac_sha256(key, message) for key in keys]
    found = False
    for digest in given:
        for candidate in expected:
            # No short cut: every pair is compared whatever the outcome so far.
            found |= hmac.compare_digest(candidate, digest)
    return found


def any_secret_equals(secrets: Iterable[str], given: str) -> bool:
    """Whether ``given`` equals one of ``secrets`` (constant time per secret)."""
    raw = given.encode()
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(secret.encode(), raw)
    return found


def check_window(value: str | None, header: str, now: float, window: float) -> float:
    """Check a Unix-seconds timestamp header against the replay window; return it.

    A timestamp too far in the future is rejected like a stale one: a sender whose clock runs
    ahead by more than the window would otherwise hand out requests replayable for longer.

    Raises:
        WebhookAuthError: ``missing_timestamp`` or ``stale_timestamp``.
    """
    if value is None:
        raise WebhookAuthError("missing_timestamp", f"header {header} is missing")
    try:
        stamp = float(value)
    except ValueError:
        raise WebhookAuthError(
            "stale_timestamp", f"header {header} is not a Unix timestamp: {value[:40]!r}"
        ) from None
    # Milliseconds are told apart from seconds by size: seconds stay below 1e11 until year 5138.
    if stamp > 1e11:
        stamp /= 1000.0
    if not abs(now - stamp) <= window:
        raise WebhookAuthError(
            "stale_timestamp",
            f"header {header} is {abs(now - stamp):.0f}s away from now, outside the "
            f"{window:.0f}s replay window",
        )
    return stamp


def not_configured(source: str, what: str) -> WebhookAuthError:
    """The error for a source that has no credentials configured: it accepts nothing."""
    return WebhookAuthError(
        "not_configured",
        f"webhook source {source!r} has no {what} configured, so it accepts no request "
        "(see docs/howto/webhooks.md)",
    )


def body_id(body: bytes) -> str:
    """The event id of a signed body, for senders that sign no id or timestamp: the same bytes
    are the same event, whatever the unsigned headers around them say."""
    return hashlib.sha256(body).hexdigest()[:32]
