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
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema  # type: ignore[import-untyped]


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


class Contract:
    """Checks a request against a vendor spec; returns problems (empty: it conforms)."""

    def check(self, request: FakeRequest) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError


def load_spec(path: Path) -> dict[str, Any]:
    """A JSON or YAML spec file as data (never changed on disk)."""
    text = path.read_text("utf-8")
    if path.suffix == ".json":
        data: dict[str, Any] = json.loads(text)
        return data
    from ruamel.yaml import YAML

    loaded: dict[str, Any] = YAML(typ="safe").load(text)
    return loaded


class OpenApiContract(Contract):
    """An OpenAPI 3.x spec, checked with ``openapi-core``.

    Args:
        spec: the spec as data.
        server: the spec's server URL the fake stands in for (default: its first one); a
            request path is taken relative to it.
        formats: checks of string formats the vendor defines (Discord's ``snowflake``).
    """

    def __init__(
        self,
        spec: dict[str, Any],
        server: str | None = None,
        formats: Mapping[str, Callable[[Any], bool]] | None = None,
    ) -> None:
        from openapi_core import Config, OpenAPI

        self.server = (server or spec["servers"][0]["url"]).rstrip("/")
        # The vendor's document is taken as published: checking the document itself takes
        # minutes for large ones (GitHub's) and is not what these fakes are for.
        config = Config(
            spec_validator_cls=None,
            extra_format_validators=dict(formats or {}),
            extra_format_unmarshallers={name: str for name in formats or {}},
        )
        self.api = OpenAPI.from_dict(spec, config=config)

    def check(self, request: FakeRequest) -> list[str]:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        base = urlsplit(self.server)
        if base.path and request.path.startswith(base.path + "/"):
            full = f"{base.scheme}://{base.netloc}{request.path}"  # the fake serves the prefix
        else:
            full = self.server + request.path
        parts = urlsplit(full)

        class _Request:
            host_url = f"{parts.scheme}://{parts.netloc}"
            path = parts.path
            full_url_pattern = full
            method = request.method.lower()
            parameters = RequestParameters(
                query=ImmutableMultiDict(
                    [(k, v) for k, values in request.query.items() for v in values]
                ),
                header=Headers(list(request.headers.items())),
            )
            content_type = request.headers.get("content-type", "")
            body = request.body or None

        result = self.api.unmarshal_request(_Request())
        return [_describe(error) for error in result.errors]


class JsonSchemaContract(Contract):
    """An OpenAPI 3.1 spec checked with ``jsonschema`` alone: operation, required query
    parameters and the JSON body against the operation's schema.

    For documents whose OpenAPI-only keywords trip ``openapi-core`` (OpenAI's discriminator
    mappings by short name); JSON Schema validation ignores ``discriminator`` and checks the
    ``oneOf`` branches instead.
    """

    def __init__(self, spec: dict[str, Any], server: str | None = None) -> None:
        self.spec = spec
        self.prefix = urlsplit(server or spec["servers"][0]["url"]).path.rstrip("/")
        self._paths = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", p) + "$"), p)
            for p in spec.get("paths", {})
        ]

    def check(self, request: FakeRequest) -> list[str]:
        path = request.path.removeprefix(self.prefix)
        for pattern, template in self._paths:
            op = self.spec["paths"][template].get(request.method.lower())
            if op is not None and pattern.match(path):
                break
        else:
            return [f"{request.method} {request.path} is not an operation of the spec"]
        problems = [
            f"required query parameter {p['name']!r} is missing"
            for p in op.get("parameters", [])
            if p.get("in") == "query" and p.get("required") and p["name"] not in request.query
        ]
        media = op.get("requestBody", {}).get("content", {}).get("application/json")
        if media is not None:
            try:
                body = request.json
            except ValueError:
                return [*problems, "the body is not JSON"]
            schema = {**media.get("schema", {}), "components": self.spec.get("components", {})}
            validator = jsonschema.Draft202012Validator(schema)
            problems += [
                f"body at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
                for e in validator.iter_errors(body)
            ][:5]
        return problems


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    for inner in getattr(error, "schema_errors", ()) or ():
        path = "/".join(str(p) for p in getattr(inner, "absolute_path", ()))
        text += f"; at /{path}: {getattr(inner, 'message', inner)}"
    cause = error.__cause__
    if cause is not None and cause is not error:
        text += f" ({_describe(cause)})"
    return text


class SwaggerContract(Contract):
    """A Swagger 2.0 spec: operation, parameters (path, query, header, formData) and body.

    Args:
        spec: the spec as data.
        header_aliases: spec header names satisfied by another header the vendor documents
            (the Slack spec names a ``token`` header where Slack's docs send
            ``Authorization: Bearer``).
    """

    def __init__(
        self, spec: dict[str, Any], header_aliases: Mapping[str, str] | None = None
    ) -> None:
        self.spec = spec
        self.base = str(spec.get("basePath", "")).rstrip("/")
        self.aliases = {k.lower(): v.lower() for k, v in (header_aliases or {}).items()}
        self._paths = [
            (re.compile("^" + re.sub(r"\{([^}]+)\}", r"(?P<\1>[^/]+)", p) + "$"), p)
            for p in spec.get("paths", {})
        ]

    def operation(self, method: str, path: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        """The operation a request is for, and its path parameters."""
        if self.base and path.startswith(self.base):
            path = path[len(self.base) :]
        for pattern, template in self._paths:
            found = pattern.match(path)
            if found:
                item = self.spec["paths"][template]
                op = item.get(method.lower())
                if op is None:
                    continue
                params = [*item.get("parameters", []), *op.get("parameters", [])]
                return {**op, "parameters": params}, found.groupdict()
        return None

    def check(self, request: FakeRequest) -> list[str]:
        found = self.operation(request.method, request.path)
        if found is None:
            return [f"{request.method} {request.path} is not an operation of the spec"]
        op, path_params = found
        problems: list[str] = []
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        consumes = op.get("consumes", self.spec.get("consumes", []))
        form = request.form if content_type == "application/x-www-form-urlencoded" else {}
        if content_type == "application/json" and request.body:
            form = {}
        for raw in op["parameters"]:
            param = self._resolve(raw)
            name, where = param["name"], param["in"]
            value: Any
            if where == "body":
                if param.get("required") and not request.body:
                    problems.append("the request has no body")
                elif request.body:
                    problems += self._schema(param.get("schema", {}), request.json, "body")
                continue
            if where == "path":
                value = path_params.get(name)
            elif where == "query":
                values = request.query.get(name)
                value = values[-1] if values else None
            elif where == "header":
                value = request.headers.get(name.lower())
                alias = self.aliases.get(name.lower())
                if value is None and alias is not None:
                    value = request.headers.get(alias)
            else:  # formData
                value = form.get(name)
                if value is None and content_type == "application/json" and request.body:
                    body = request.json
                    value = body.get(name) if isinstance(body, dict) else None
            if value is None:
                if param.get("required"):
                    problems.append(f"required {where} parameter {name!r} is missing")
                continue
            problems += self._scalar(param, value, f"{where} parameter {name!r}")
        if request.body and consumes and content_type not in consumes:
            problems.append(f"content type {content_type!r} is not one of {consumes}")
        return problems

    def _resolve(self, param: dict[str, Any]) -> dict[str, Any]:
        ref = param.get("$ref")
        if ref is None:
            return param
        name = ref.rsplit("/", 1)[-1]
        resolved: dict[str, Any] = self.spec["parameters"][name]
        return resolved

    def _scalar(self, param: dict[str, Any], value: Any, what: str) -> list[str]:
        kind = param.get("type")
        if isinstance(value, str) and kind in ("integer", "number", "boolean"):
            converted: Any = value
            try:
                if kind == "integer":
                    converted = int(value)
                elif kind == "number":
                    converted = float(value)
                elif value not in ("true", "false", "1", "0"):
                    return [f"{what} is not a boolean: {value!r}"]
                else:
                    return []
            except ValueError:
                return [f"{what} is not {kind}: {value!r}"]
            value = converted
        if kind == "array" and isinstance(value, str):
            value = value.split(",")
        schema = {k: v for k, v in param.items() if k not in ("name", "in", "required")}
        schema.pop("description", None)
        schema.pop("collectionFormat", None)
        return self._schema(schema, value, what)

    def _schema(self, schema: dict[str, Any], value: Any, what: str) -> list[str]:
        document = {**schema, "definitions": self.spec.get("definitions", {})}
        validator = jsonschema.Draft4Validator(document)
        return [
            f"{what} at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(value)
        ][:5]


@dataclass(frozen=True, slots=True)
class Rule:
    """What a vendor's documentation says one operation takes.

    Attributes:
        method / path: the operation (``{name}`` parts match one path segment).
        body: JSON Schema of the JSON body (``None``: no body is checked).
        headers: header names that must be present, with a regular expression each value
            must match.
    """

    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class DocumentedContract(Contract):
    """For vendors without a published spec: the operations their documentation describes."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = [
            (r, re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", r.path) + "$")) for r in rules
        ]

    def check(self, request: FakeRequest) -> list[str]:
        for rule, pattern in self.rules:
            if rule.method == request.method and pattern.match(request.path):
                break
        else:
            return [f"{request.method} {request.path} is not a documented operation"]
        problems = []
        for name, expected in rule.headers.items():
            value = request.headers.get(name.lower())
            if value is None or not re.match(expected, value):
                problems.append(f"header {name} is {value!r}, expected /{expected}/")
        if rule.body is not None:
            try:
                body = request.json
            except ValueError:
                return [*problems, "the body is not JSON"]
            validator = jsonschema.Draft202012Validator(rule.body)
            problems += [
                f"body at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
                for e in validator.iter_errors(body)
            ]
        return problems


class FakeVendor:
    """A loopback HTTP server that checks requests against a contract and serves routes.

    Args:
        contract: the vendor spec checker (``None``: vendors without a spec, whose routes
            check the documented shape themselves).
        routes: ``{("POST", "/chat.postMessage"): fn}``; paths may hold ``{name}`` parts,
            which reach the route as ``request.params``.
    """

    def __init__(self, contract: Contract | None, routes: Mapping[tuple[str, str], Route]) -> None:
        self.contract = contract
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
        return f"http://127.0.0.1:{self.port}"

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


def spec_example(spec: dict[str, Any], path: str, method: str, status: str = "200") -> Any:
    """The JSON example a spec gives for an operation's answer (Swagger 2 or OpenAPI 3)."""
    answer = spec["paths"][path][method.lower()]["responses"][status]
    if "$ref" in answer:
        answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
    if "examples" in answer and "application/json" in answer["examples"]:
        return answer["examples"]["application/json"]
    media = answer.get("content", {}).get("application/json", {})
    if "example" in media:
        return media["example"]
    for example in media.get("examples", {}).values():
        if "$ref" in example:
            example = spec["components"]["examples"][example["$ref"].rsplit("/", 1)[-1]]
        if "value" in example:
            return example["value"]
    raise KeyError(f"the spec gives no JSON example for {method} {path} {status}")


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
