"""Optional bearer-token authentication of the HTTP API."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer_guard(token: str) -> Callable[..., Awaitable[None]]:
    """A dependency that requires ``Authorization: Bearer <token>`` (401 otherwise)."""
    expected = token.encode()
    scheme = HTTPBearer(auto_error=False, description="The value of OPSLOOM_API_TOKEN.")

    # ``Depends`` as a default, not in ``Annotated``: postponed annotations cannot name
    # ``scheme``, a local of this function.
    async def require_token(
        credentials: HTTPAuthorizationCredentials | None = Depends(scheme),
    ) -> None:
        if credentials is None:
            raise HTTPException(
                401,
                "this API requires an 'Authorization: Bearer <token>' header",
                headers=_CHALLENGE,
            )
        # Constant-time comparison: the answer time must not reveal how much of it matched.
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise HTTPException(401, "the bearer token is not valid", headers=_CHALLENGE)

    return require_token
