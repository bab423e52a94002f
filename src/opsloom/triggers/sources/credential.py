"""Bearer tokens and basic credentials, for senders that authenticate instead of signing."""

from __future__ import annotations

import base64
import binascii
import hmac

from opsloom.triggers.sources.base import WebhookAuthError, WebhookRequest
from opsloom.triggers.sources.config import CredentialHook
from opsloom.triggers.sources.signature import any_secret_equals


def check_authorization(request: WebhookRequest, hook: CredentialHook) -> None:
    """Accept the request's ``Authorization`` header if it carries a configured credential.

    Raises:
        WebhookAuthError: ``missing_credentials`` or ``bad_credentials``.
    """
    header = request.header("Authorization")
    if header is None:
        raise WebhookAuthError("missing_credentials", "header Authorization is missing")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and hook.tokens:
        if any_secret_equals((t.get_secret_value() for t in hook.tokens), value):
            return
        raise WebhookAuthError("bad_credentials", "the bearer token is not accepted")
    if scheme == "basic" and hook.basic:
        user, password = _basic(value)
        found = False
        for credential in hook.basic:
            same_user = hmac.compare_digest(credential.username.encode(), user.encode())
            same_password = hmac.compare_digest(
                credential.password.get_secret_value().encode(), password.encode()
            )
            found |= same_user and same_password
        if found:
            return
        raise WebhookAuthError("bad_credentials", "the basic credentials are not accepted")
    accepted = " or ".join(
        name for name, present in (("Bearer", hook.tokens), ("Basic", hook.basic)) if present
    )
    raise WebhookAuthError(
        "bad_credentials", f"the Authorization scheme {scheme!r} is not accepted here ({accepted})"
    )


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, ValueError):
        raise WebhookAuthError("bad_credentials", "the basic credentials are not base64") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise WebhookAuthError("bad_credentials", "the basic credentials have no ':'")
    return user, password
