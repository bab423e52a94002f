"""Serving the API with uvicorn inside an event loop that the caller runs.

``opsloom up`` runs the worker and the API in one process and one loop, and handles SIGTERM
and SIGINT itself (stop taking requests, then drain the worker), so uvicorn's own signal
handling is turned off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handlers: the process that embeds it decides when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


#: The one-time token in an approval link's path: a credential, never written to a log.
_LINK_TOKEN = re.compile(r"(/approvals/links/)[^/?#\s]+")


class LinkTokenMask(logging.Filter):
    """Masks approval-link tokens in uvicorn's access log lines (they act as credentials)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _LINK_TOKEN.sub(r"\1***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = _LINK_TOKEN.sub(r"\1***", record.msg)
        return True


def mask_link_tokens() -> None:
    """Install :class:`LinkTokenMask` on uvicorn's access logger (once)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, LinkTokenMask) for f in logger.filters):
        logger.addFilter(LinkTokenMask())


def listen(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket (port 0: any free port); ``OSError`` if that fails."""
    return listen_shared(host, port, 1)[0]


def listen_shared(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one address, one per serving process.

    With more than one, each has ``SO_REUSEPORT``: the kernel spreads new connections over
    the sockets evenly (by their addresses), whereas processes accepting from one shared
    socket take them in bursts, so that one process may hold most keep-alive connections.
    Port 0 picks a free port for the first socket; the others join it.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            # The next sockets join the port the first one got (port 0 picks one).
            address = sock.getsockname()
            sock.listen(2048)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    api: FastAPI, sock: socket.socket, stop: asyncio.Event, *, graceful_timeout: int = 5
) -> None:
    """Serve ``api`` on ``sock`` until ``stop`` is set, then finish open requests and return.

    Before waiting for open requests, each callable in ``api.state.before_stop`` is called: a
    part that holds requests open (the web UI's live pages) ends them there.
    """
    mask_link_tokens()
    config = uvicorn.Config(
        api, lifespan="off", log_config=None, timeout_graceful_shutdown=graceful_timeout
    )
    server = _EmbeddedServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="opsloom-api")
    stopping = asyncio.create_task(stop.wait(), name="opsloom-api-stop")
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        for end_held_requests in getattr(api.state, "before_stop", ()):
            end_held_requests()
        await serving
