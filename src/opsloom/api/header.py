"""Security headers on every response of the API and the UI.

Nothing of opsloom is meant to be framed (clickjacking a decision button), sniffed as another
content type, or leak its URL to another site; pages that carry a one-time approval token are
never cached.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Set on every response unless the route set them itself.
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}
_RAW_HEADERS = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
#: Paths whose responses hold a credential (the link's token): never stored by a cache.
NO_STORE_PREFIXES = ("/approvals/links/",)


def secured(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (raw, lower-case names) with the security headers the response lacks."""
    present = {name.lower() for name, _ in headers}
    return headers + [pair for pair in _RAW_HEADERS if pair[0] not in present]


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` (and ``no-store`` on link pages)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = str(scope.get("path", "")).startswith(NO_STORE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Raw pairs, appended: this runs for every response, intake at full speed too.
                headers = secured(list(message.get("headers", ())))
                if no_store:
                    headers = [pair for pair in headers if pair[0].lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
