"""Who is calling the HTTP API, and whether they may: bearer tokens and roles.

Every route under ``/api/v1`` except health needs ``Authorization: Bearer <token>``:

- an API token made with ``opsloom tokens create`` (or the first admin token that ``opsloom
  up`` prints for a new database): it acts as its user, with that user's roles;
- ``OPSLOOM_API_TOKEN``, when set: the bootstrap and automation token, which acts as an admin
  (user ``system:api-token``). Keep it for provisioning and scripts; give people their own
  tokens so that their actions are audited under their name.

A request without a valid token is answered 401 with ``WWW-Authenticate: Bearer``; one whose
user lacks the route's role, 403 problem+json naming that role (``role``). Routes declare
their role with :func:`require`.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from opsloom.app import App
from opsloom.identity.access import AccessDeniedError, Principal, check_role
from opsloom.services.access import ENV_TOKEN_USER, authenticate

_CHALLENGE = {"WWW-Authenticate": "Bearer"}

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token (`opsloom tokens create USER`), or OPSLOOM_API_TOKEN.",
)


async def authenticated(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """The principal of the request's bearer token; 401 when it has none that is valid.

    FastAPI computes it once per request, however many routes' guards ask for it.
    """
    if credentials is None:
        raise missing_token()
    return await authenticate_token(request, credentials.credentials)


def missing_token() -> HTTPException:
    """The 401 for a request without a bearer token."""
    return HTTPException(
        401, "this API requires an 'Authorization: Bearer <token>' header", headers=_CHALLENGE
    )


async def authenticate_token(request: Request, token: str) -> Principal:
    """The principal of a bearer ``token`` sent with ``request``; 401 when it is not valid."""
    env_token: str | None = getattr(request.app.state, "api_token", None)
    app: App = request.app.state.opsloom
    principal = await authenticate(app, token, env_token)
    if principal is None:
        raise HTTPException(
            401, "the bearer token is not valid (unknown, revoked or expired)", headers=_CHALLENGE
        )
    return principal


class RoleGuard:
    """A dependency that returns the principal when it holds ``role``, 403 otherwise."""

    def __init__(self, role: str) -> None:
        self.role = check_role(role)

    async def __call__(self, principal: Principal = Depends(authenticated)) -> Principal:
        if not principal.has(self.role):
            held = ", ".join(sorted(principal.roles)) or "no role"
            raise AccessDeniedError(
                f"this needs the {self.role!r} role; {principal.user!r} holds {held}",
                role=self.role,
            )
        return principal

    def __repr__(self) -> str:
        return f"require({self.role!r})"


def require(role: str) -> RoleGuard:
    """A dependency for routes that need ``role``; it gives the route the :class:`Principal`.

    Example:
        ``@router.post("/x", dependencies=[Depends(require("operator"))])``, or as a parameter
        ``principal: Annotated[Principal, Depends(require("approver"))]``.
    """
    return RoleGuard(role)


__all__ = [
    "ENV_TOKEN_USER",
    "RoleGuard",
    "authenticate_token",
    "authenticated",
    "missing_token",
    "require",
]
