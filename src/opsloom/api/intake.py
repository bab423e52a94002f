"""A short path for the intake routes: webhooks and CloudEvents go straight to their handlers.

``POST /hooks/<source>``, ``POST /hooks/generic/<name>`` and ``POST /api/v1/events`` are the
requests a busy system receives thousands of times a second. For each, FastAPI's stack (its
telemetry and body-limit layers, Starlette's error middleware, opsloom's own middleware, then
routing by a regular expression tried per route and dependency solving) costs more CPU than
storing the event does. :class:`IntakePath` sits in front of all of it (:class:`~opsloom.api.
factory.Api` asks it first) and hands these requests to the very handlers the FastAPI routes
call, with what those layers would have done done here:

- the body limit (``OPSLOOM_MAX_BODY_BYTES``): a declared ``Content-Length`` above it is
  answered 413 before anything else, a body streamed past it is cut off and answered 413;
- the same authentication (the source's own credentials for hooks, checked against the raw
  body; a bearer token with the ``operator`` role for events, checked before the body is read);
- the same answers and problem+json errors, an unexpected error included (500);
- the security headers of :mod:`opsloom.api.header` on every answer.

Every other request goes on to FastAPI unchanged. The routes stay registered: the OpenAPI
document describes them, and the tests that call them through FastAPI and through this path
get the same answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from opsloom.api.auth import RoleGuard, authenticate_token, missing_token
from opsloom.api.header import secured
from opsloom.api.limit import content_length, refuse
from opsloom.api.problem import error_response
from opsloom.api.routes import events, hooks

#: The path of CloudEvents intake (``/api/v1`` + the events router's prefix).
EVENTS_PATH = "/api/v1/events"
_HOOKS = "/hooks/"
_GENERIC = "/hooks/generic/"
_OPERATOR = RoleGuard("operator")

Handler = Callable[[Request], Awaitable[Response]]


class BodyTooLargeError(Exception):
    """The body streamed past the limit (raised by the limited ``receive``)."""


class IntakePath:
    """Serves intake requests without FastAPI's stack; :meth:`route` says which they are."""

    def __init__(self, limit: int) -> None:
        """``limit``: the largest body accepted, in bytes."""
        self.limit = limit

    def route(self, scope: Scope) -> Handler | None:
        """The handler of an intake request, or ``None`` for any other request."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        if path == EVENTS_PATH:
            return _events
        if path.startswith(_HOOKS):
            if _one_segment(path, _HOOKS):
                return _hook
            if path.startswith(_GENERIC) and _one_segment(path, _GENERIC):
                return _generic_hook
        return None

    async def serve(self, handle: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one intake request with ``handle`` (from :meth:`route`)."""
        declared = content_length(scope)
        if declared is not None and declared > self.limit:
            await refuse(scope, _with_security_headers(send), self.limit)
            return
        limit, read = self.limit, 0

        async def limited_receive() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise BodyTooLargeError
            return message

        request = Request(scope, limited_receive)
        try:
            response = await handle(request)
        except BodyTooLargeError:
            await refuse(scope, _with_security_headers(send), limit)
            return
        except Exception as exc:  # answered as the API's exception handlers answer it
            response = await error_response(request, exc)
        if response.background is not None:  # not one of ours: let it send itself
            await response(scope, receive, _with_security_headers(send))
            return
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": secured(response.raw_headers),
            }
        )
        await send({"type": "http.response.body", "body": response.body})


def _with_security_headers(send: Send) -> Send:
    async def secured_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": secured(list(message.get("headers", ())))}
        await send(message)

    return secured_send


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
    # As FastAPI's HTTPBearer reads the header; the body is read only once this passed.
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise missing_token()
    principal = await authenticate_token(request, token.strip())
    who = await _OPERATOR(principal)
    return await events.post_events(request.app.state.opsloom, who, request)
