"""Who an API token belongs to: the same answer for the HTTP API and the web UI's sign-in."""

from __future__ import annotations

import hmac

from opsloom.app import App
from opsloom.identity.access import ROLES, Principal

#: The user that ``OPSLOOM_API_TOKEN`` acts as.
ENV_TOKEN_USER = "system:api-token"


async def authenticate(app: App, token: str, env_token: str | None) -> Principal | None:
    """The principal of ``token``; None when it is unknown, revoked, expired or disabled.

    ``env_token`` (``OPSLOOM_API_TOKEN``), when set, acts as an admin.
    """
    # Constant-time comparison: the answer time must not reveal how much of it matched.
    if env_token and hmac.compare_digest(token.encode(), env_token.encode()):
        return Principal(user=ENV_TOKEN_USER, roles=frozenset(ROLES))
    return await app.identity.authenticate(token)
