"""Loopback fakes of vendor APIs that check every request against the vendor's own spec.

A :class:`FakeVendor` is a real HTTP server on 127.0.0.1 (a thread, so sync and async tests
can use it) that:

- validates each request against a :class:`Contract` made from the vendor's published spec
  (:class:`OpenApiContract` for OpenAPI 3.x through ``openapi-core``; :class:`SwaggerContract`
  for Swagger 2.0, checking path, method, parameters and body with ``jsonschema``), and answers
  400 listing the problems, which it also keeps in :attr:`FakeVendor.problems`;
- answers with what the test's route returns (usually the spec's own example);
- can be told to fail the next calls (``fail_next``: a 429 with the vendor's rate-limit headers,
  a 503) or to go away entirely (``stop``/``start`` on the same port) for breaker tests.

Connector tests, and anyone's tests that need a vendor, build on it; ``openapi-core`` is a
development dependency, imported only when an OpenAPI contract is made.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opsloom.connectors.contract import (
    Contract,
    DocumentedContract,
    JsonSchemaContract,
    OpenApiContract,
    Rule,
    SwaggerContract,
    load_spec,
    spec_example,
)

__all__ = [
    "Contract",
    "DocumentedContract",
    "FakeRequest",
    "FakeResponse",
    "FakeVendor",
    "JsonSchemaContract",
    "OpenApiContract",
    "Rule",
    "SwaggerContract",
    "example_routes",
    "load_spec",
    "spec_example",
]


@dataclass(slots=True)
class FakeRequest:
    """A request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        """The body as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, str]:
        """The body as an url-encoded form (last value of each field)."""
        return {k: v[-1] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


@dataclass(slots=True)
class FakeResponse:
    """What a route answers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if self.body is None:
            return b"", ""
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/plain")
        return json.dumps(self.body).encode(), "application/json"


Route = Callable[[FakeRequest], FakeResponse]


class FakeVendor:
    """A loopback HTTP server that checks requests against a contract and serves routes.

    Args:
        contract: the vendor spec checker (``None``: vendors without a spec, whose routes
            check the documented shape themselves).
        routes: ``{("POST", "/chat.postMessage"): fn}``; paths may hold ``{name}`` parts,
            which reach the route as ``request.params``.
        tls: serve HTTPS with this server context (e.g. one that requires client
            certificates).
    """

    def __init__(
        self,
        contract: Contract | None,
        routes: Mapping[tuple[str, str], Route],
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.contract = contract
        self.tls = tls
        self.routes = [
            (
                method.upper(),
                re.compile("^" + re.sub(r"\{([^}]+)\}", r"(?P<\1>[^/]+)", path) + "$"),
                fn,
            )
            for (method, path), fn in routes.items()
        ]
        self.requests: list[FakeRequest] = []
        self.problems: list[str] = []
        self._failures: list[FakeResponse] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> FakeVendor:
        """Listen (again, on the same port after :meth:`stop`)."""
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = FakeRequest(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                answer = vendor.serve(request)
                data, content_type = answer.encoded()
                self.send_response(answer.status)
                headers = (
                    {"Content-Type": content_type, **answer.headers} if data else {**answer.headers}
                )
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: calls now fail to connect (a dead endpoint)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeVendor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, *responses: FakeResponse) -> None:
        """Answer the next requests with these (after checking them against the contract)."""
        with self._lock:
            self._failures.extend(responses)

    def serve(self, request: FakeRequest) -> FakeResponse:
        """Check, record and answer one request."""
        problems = self.contract.check(request) if self.contract is not None else []
        with self._lock:
            self.requests.append(request)
            if problems:
                self.problems += [f"{request.method} {request.path}: {p}" for p in problems]
                return FakeResponse(400, {"problems": problems})
            if self._failures:
                return self._failures.pop(0)
        for method, pattern, fn in self.routes:
            found = pattern.match(request.path)
            if method == request.method and found:
                request.params = found.groupdict()
                return fn(request)
        return FakeResponse(404, {"message": f"no fake route for {request.method} {request.path}"})

    def last(self, path: str | None = None) -> FakeRequest:
        """The last request (to ``path``)."""
        for request in reversed(self.requests):
            if path is None or request.path == path:
                return request
        raise AssertionError(f"no request to {path}")


def example_routes(
    spec: dict[str, Any], operations: list[tuple[str, str, str]], prefix: str = ""
) -> dict[tuple[str, str], Route]:
    """Routes answering each ``(method, path, status)`` with the spec's example (or nothing
    for a status the spec gives no body, such as 204); ``prefix`` is put before each path."""
    routes: dict[tuple[str, str], Route] = {}
    for method, path, status in operations:
        try:
            body = spec_example(spec, path, method, status)
        except KeyError:
            body = None
        routes[(method, prefix + path)] = _answer(int(status), body)
    return routes


def _answer(status: int, body: Any) -> Route:
    def route(request: FakeRequest) -> FakeResponse:
        return FakeResponse(status, body)

    return route
