"""One limit on request bodies for the whole API, applied before anything reads them.

An ASGI middleware, so that it holds for every route alike (authenticated or not: webhooks,
Slack's buttons, approval links) and before authentication or parsing spend memory on a body:
a declared ``Content-Length`` above the limit is answered 413 at once, and a body streamed
without one is cut off as soon as it passes the limit (the route then sees a disconnect).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsloom.api.problem import problem_type

#: Default limit: 1 MiB (``OPSLOOM_MAX_BODY_BYTES``).
DEFAULT_MAX_BODY = 1 << 20


class BodyLimit:
    """ASGI middleware answering 413 problem+json for bodies above ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, send)
            return
        state = {"read": 0, "refused": False, "started": False}

        async def limited_receive() -> Message:
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self.limit:
                    state["refused"] = True
                    if not state["started"]:
                        state["started"] = True
                        await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return  # the 413 is the answer; whatever the route says after is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise
            # The route saw the disconnect it was handed; the 413 has been sent.

    async def _refuse(self, scope: Scope, send: Send) -> None:
        await refuse(scope, send, self.limit)


async def refuse(scope: Scope, send: Send, limit: int) -> None:
    """Answer 413 problem+json for a body above ``limit`` bytes, and close the connection."""
    body: dict[str, Any] = {
        "type": problem_type("body_too_large"),
        "title": "Payload Too Large",
        "status": 413,
        "detail": f"the request body is larger than the limit of {limit} bytes "
        "(OPSLOOM_MAX_BODY_BYTES)",
        "instance": scope.get("path", ""),
        "code": "body_too_large",
        "limit": limit,
    }
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def content_length(scope: Scope) -> int | None:
    """The request's declared ``Content-Length`` (``None``: none, or not a number)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
