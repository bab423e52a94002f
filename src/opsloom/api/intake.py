"""A short path for the intake routes: webhooks and CloudEvents go straight to their handlers.

``POST /hooks/<source>``, ``POST /hooks/generic/<name>`` and ``POST /api/v1/events`` are the
requests a busy system receives thousands of times a second. For each, FastAPI's routing (a
regular expression tried per route until one matches) and its dependency solving cost more CPU
than storing the event does. :class:`IntakePath` is an ASGI middleware placed inside the body
limit and the security headers: it hands these requests to the very handlers the FastAPI routes
call, with the same authentication (the source's own credentials for hooks, a bearer token with
the ``operator`` role for events), the same answers and the same problem+json errors. Every
other request goes on to FastAPI unchanged. The routes stay registered: the OpenAPI document
describes them, and the tests that call them through FastAPI and through this path get the
same answers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from opsloom.api.auth import RoleGuard, authenticate_token, missing_token
from opsloom.api.problem import error_response
from opsloom.api.routes import events, hooks

#: The path of CloudEvents intake (``/api/v1`` + the events router's prefix).
EVENTS_PATH = "/api/v1/events"
_HOOKS = "/hooks/"
_GENERIC = "/hooks/generic/"
_OPERATOR = RoleGuard("operator")


class IntakePath:
    """ASGI middleware: intake requests to their handlers, everything else to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == EVENTS_PATH:
            handle = _events
        elif path.startswith(_HOOKS) and _one_segment(path, _HOOKS):
            handle = _hook
        elif path.startswith(_GENERIC) and _one_segment(path, _GENERIC):
            handle = _generic_hook
        else:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await handle(request)
        except Exception as exc:  # answered as the API's exception handlers answer it
            response = await error_response(request, exc)
        await response(scope, receive, send)


def _one_segment(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` and one non-empty segment (what ``{name}`` matches)."""
    rest = path[len(prefix) :]
    return bool(rest) and "/" not in rest


async def _hook(request: Request) -> Response:
    receiver = await hooks.hook_receiver(request)
    source = request.scope["path"][len(_HOOKS) :]
    return await hooks.post_hook(request.app.state.opsloom, receiver, request, source)


async def _generic_hook(request: Request) -> Response:
    receiver = await hooks.hook_receiver(request)
    name = request.scope["path"][len(_GENERIC) :]
    return await hooks.post_generic_hook(request.app.state.opsloom, receiver, request, name)


async def _events(request: Request) -> Response:
    # As FastAPI's HTTPBearer reads the header.
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise missing_token()
    principal = await authenticate_token(request, token.strip())
    who = await _OPERATOR(principal)
    return await events.post_events(request.app.state.opsloom, who, request)
