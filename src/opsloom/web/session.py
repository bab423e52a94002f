"""Browser sessions: an API token exchanged for a signed, HTTP-only cookie, and CSRF tokens.

Signing in posts an API token (the same tokens the API takes, so roles are the API's). The
session cookie holds that token and an expiry, signed with HMAC-SHA256; it is ``HttpOnly`` (page
scripts cannot read it) and ``SameSite=Strict`` (other sites' pages do not send it). Every
request authenticates the token again, so a revoked token or a disabled user ends the session
at once.

Every form carries a CSRF token: an HMAC of the session cookie, so it is worth nothing without
the cookie and nothing after sign-out. The sign-in form, which has no session yet, uses a
double-submit token instead (a random cookie the form must repeat). A POST whose token is
missing or wrong is refused with 403 before anything else happens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

from opsloom.app import App
from opsloom.identity.access import Principal
from opsloom.services.access import authenticate

SESSION_COOKIE = "opsloom_session"
SIGNIN_COOKIE = "opsloom_signin"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class SignInRequiredError(Exception):
    """The request has no valid session; the browser is sent to the sign-in page."""


class ForbiddenError(Exception):
    """The session's user may not do this (a missing role or a bad CSRF token)."""


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: who it is and the CSRF token its forms must carry."""

    principal: Principal
    csrf: str

    def can(self, role: str) -> bool:
        return self.principal.has(role)


class SessionKeeper:
    """Issues and checks session cookies with one signing key.

    Args:
        secret: the HMAC key (``OPSLOOM_WEB_SESSION_SECRET``); None: a random one.
        hours: how long a session lasts after sign-in.
        env_token: ``OPSLOOM_API_TOKEN``, accepted as an admin as the API accepts it.
    """

    def __init__(self, secret: str | None, hours: float, env_token: str | None) -> None:
        self._key = (secret or secrets.token_hex(32)).encode()
        self._seconds = hours * 3600
        self._env_token = env_token

    def _sign(self, data: bytes) -> str:
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    async def authenticate(self, app: App, token: str) -> Principal | None:
        """The principal of an API token, exactly as the API decides it."""
        return await authenticate(app, token, self._env_token)

    def issue(self, response: Response, request: Request, token: str) -> None:
        """Set the session cookie for ``token`` on ``response``."""
        payload = json.dumps({"t": token, "exp": time.time() + self._seconds}).encode()
        encoded = base64.urlsafe_b64encode(payload).decode()
        response.set_cookie(
            SESSION_COOKIE,
            f"{encoded}.{self._sign(payload)}",
            max_age=int(self._seconds),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        response.delete_cookie(SIGNIN_COOKIE, path="/")

    @staticmethod
    def end(response: Response) -> None:
        """Delete the session cookie (sign-out)."""
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")

    def _token_of(self, cookie: str) -> str | None:
        encoded, _, signature = cookie.rpartition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded.encode())
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict) or float(data.get("exp", 0)) < time.time():
            return None
        token = data.get("t")
        return token if isinstance(token, str) else None

    async def session(self, request: Request) -> Session | None:
        """The request's session, or None when it has no valid one."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        token = self._token_of(cookie)
        if token is None:
            return None
        principal = await self.authenticate(request.app.state.opsloom, token)
        if principal is None:
            return None
        return Session(principal, self._sign(b"csrf:" + cookie.encode()))

    def signin_csrf(self, request: Request) -> str:
        """The double-submit token of the sign-in form (reusing the browser's, if it has one)."""
        return request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)

    @staticmethod
    def check_signin_csrf(request: Request, submitted: str | None) -> None:
        expected = request.cookies.get(SIGNIN_COOKIE)
        if not expected or not submitted or not hmac.compare_digest(expected, submitted):
            raise ForbiddenError("the sign-in form has expired: reload the page and try again")


def check_csrf(session: Session, submitted: str | None) -> None:
    """Refuse (403) a change whose CSRF token is not the session's."""
    if not submitted or not hmac.compare_digest(session.csrf, submitted):
        raise ForbiddenError("the form's CSRF token is missing or wrong: reload the page")


def check_role(session: Session, role: str) -> None:
    """Refuse (403) a change that needs a role the session's user lacks."""
    if not session.can(role):
        held = ", ".join(sorted(session.principal.roles)) or "no role"
        raise ForbiddenError(
            f"this needs the {role!r} role; {session.principal.user!r} holds {held}"
        )
