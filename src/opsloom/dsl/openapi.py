"""``call: openapi``: call an operation of a Swagger 2.0 or OpenAPI 3.x document by its id.

The document (``with.document.endpoint``: an http(s) URL, a ``file://`` URL or a local path; JSON
or YAML) is loaded once and kept in a small bounded cache. ``operationId`` is looked up across
the document's paths; the request URL is the server (OpenAPI 3: the first ``servers`` entry of
the operation, its path or the document, variables at their defaults, relative URLs resolved
against the document's location; Swagger 2: ``schemes``/``host``/``basePath``, https preferred)
followed by the operation's path.

``with.parameters`` are matched by name to the operation's declared parameters and sent where
their ``in`` says (path, query, header, cookie, formData). The request body is:

- Swagger 2: the value of the ``in: body`` parameter's name (usually ``body``);
- OpenAPI 3: the ``body`` argument when the operation declares no parameter named ``body``;
- in both, when that argument is absent, an object of the remaining arguments, if any.

Arguments that match nothing are refused when the operation takes no body. ``output``,
``redirect`` and ``authentication`` behave as for ``call: http``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import httpx

from opsloom.dsl.apidoc import DEFAULT_DOCUMENTS, DocumentCache, load_document, unusable
from opsloom.dsl.auth import AuthResolver
from opsloom.dsl.http import (
    Request,
    check_url,
    form_encode,
    header_values,
    query_values,
    send,
)
from opsloom.expr.problem import TaskError

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
_MAX_REFS = 32


@dataclass(slots=True)
class Operation:
    """An operation of a document, resolved enough to build a request."""

    method: str
    path: str
    base_url: str
    parameters: list[Mapping[str, Any]]
    version: int
    body: Mapping[str, Any] | None = None
    consumes: list[str] = field(default_factory=list)
    produces: list[str] = field(default_factory=list)


async def call_openapi(
    args: Mapping[str, Any],
    *,
    input: Any,
    auth: AuthResolver,
    client: httpx.AsyncClient,
    documents: DocumentCache | None = None,
) -> Any:
    """Run a ``call: openapi`` task whose ``with`` arguments (expressions evaluated) are ``args``.

    Args:
        args: ``document``, ``operationId``, ``parameters``, ``authentication``, ``output``,
            ``redirect``.
        input: the task's transformed input (variables of the document URI template).
        auth: resolves authentication policies (the document's endpoint and the call's).
        client: the HTTP client.
        documents: the document cache (a process-wide one by default).

    Raises:
        TaskError: as :func:`opsloom.dsl.http.call_http`, plus ``configuration`` for a document
            that cannot be used or an unknown operation and ``validation`` for parameters.
    """
    if not isinstance(args, Mapping):
        raise _invalid("the arguments of an openapi call must be an object")
    operation_id = args.get("operationId")
    if not isinstance(operation_id, str) or not operation_id:
        raise _invalid("operationId must be a non-empty string")
    parameters = args.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise _invalid("parameters must be an object")
    location, document = await load_document(
        args.get("document"),
        input=input,
        auth=auth,
        client=client,
        documents=DEFAULT_DOCUMENTS if documents is None else documents,
    )
    operation = find_operation(document, operation_id, location)
    request = build_request(operation, parameters)
    check_url(request.url, auth)
    return await send(
        request,
        client=client,
        auth=auth,
        authentication=args.get("authentication"),
        output=args.get("output"),
        redirect=args.get("redirect", False),
    )


# --- operations --------------------------------------------------------------------------


def find_operation(document: Mapping[str, Any], operation_id: str, location: str) -> Operation:
    """Resolve ``operation_id`` to its method, path, base URL, parameters and body."""
    version = 2 if "swagger" in document else 3
    paths = document.get("paths") or {}
    known: list[str] = []
    for path, raw_item in paths.items():
        item = resolve(document, raw_item)
        if not isinstance(item, Mapping):
            continue
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, Mapping):
                continue
            if op.get("operationId") != operation_id:
                if isinstance(op.get("operationId"), str):
                    known.append(op["operationId"])
                continue
            return _operation(document, version, str(path), method, item, op, location)
    listed = ", ".join(sorted(known)[:20]) or "none"
    raise unusable(f"API document {location} has no operation {operation_id!r} (has: {listed})")


def _operation(
    document: Mapping[str, Any],
    version: int,
    path: str,
    method: str,
    item: Mapping[str, Any],
    op: Mapping[str, Any],
    location: str,
) -> Operation:
    merged: dict[tuple[str, str], Mapping[str, Any]] = {}
    for raw in list(item.get("parameters") or []) + list(op.get("parameters") or []):
        param = resolve(document, raw)
        if isinstance(param, Mapping) and isinstance(param.get("name"), str):
            merged[(param["name"], str(param.get("in")))] = param
    parameters = list(merged.values())
    if version == 2:
        body = next((p for p in parameters if p.get("in") == "body"), None)
        return Operation(
            method=method.upper(),
            path=path,
            base_url=_swagger_base(document, op, location),
            parameters=[p for p in parameters if p.get("in") != "body"],
            version=2,
            body=body,
            consumes=list(op.get("consumes") or document.get("consumes") or [JSON]),
            produces=list(op.get("produces") or document.get("produces") or []),
        )
    request_body = resolve(document, op.get("requestBody"))
    produces: list[str] = []
    for code, raw_response in (op.get("responses") or {}).items():
        if str(code).startswith("2") or code == "default":
            response = resolve(document, raw_response)
            if isinstance(response, Mapping):
                produces.extend(t for t in response.get("content") or {} if t not in produces)
    content = request_body.get("content") if isinstance(request_body, Mapping) else None
    return Operation(
        method=method.upper(),
        path=path,
        base_url=_openapi_base(document, item, op, location),
        parameters=parameters,
        version=3,
        body=request_body if isinstance(request_body, Mapping) else None,
        consumes=list(content or []),
        produces=produces,
    )


def resolve(document: Mapping[str, Any], value: Any) -> Any:
    """Follow local ``$ref`` pointers (``#/…``) until a value that is not a reference."""
    for _ in range(_MAX_REFS):
        if not isinstance(value, Mapping) or not isinstance(value.get("$ref"), str):
            return value
        ref = str(value["$ref"])
        if not ref.startswith("#/"):
            raise unusable(f"external reference {ref!r} is not supported")
        target: Any = document
        for token in ref[2:].split("/"):
            token = unquote(token).replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or token not in target:
                raise unusable(f"reference {ref!r} points at nothing")
            target = target[token]
        value = target
    raise unusable("references nest too deeply (or form a loop)")


def _swagger_base(document: Mapping[str, Any], op: Mapping[str, Any], location: str) -> str:
    where = urlsplit(location)
    schemes = [str(s).lower() for s in op.get("schemes") or document.get("schemes") or []]
    if not schemes:
        schemes = [where.scheme if where.scheme in ("http", "https") else "https"]
    scheme = "https" if "https" in schemes else schemes[0]
    host = document.get("host") or (where.netloc if where.scheme in ("http", "https") else "")
    if not host:
        raise unusable(f"API document {location} names no host to call")
    base_path = str(document.get("basePath") or "/")
    return f"{scheme}://{host}/{base_path.strip('/')}".rstrip("/")


def _openapi_base(
    document: Mapping[str, Any], item: Mapping[str, Any], op: Mapping[str, Any], location: str
) -> str:
    servers = op.get("servers") or item.get("servers") or document.get("servers") or [{}]
    server = servers[0] if isinstance(servers[0], Mapping) else {}
    url = str(server.get("url") or "/")
    variables = server.get("variables") or {}
    for name, spec in variables.items():
        default = spec.get("default") if isinstance(spec, Mapping) else None
        url = url.replace("{" + str(name) + "}", "" if default is None else str(default))
    if "://" not in url:
        if urlsplit(location).scheme not in ("http", "https"):
            raise unusable(
                f"API document {location} has a relative server URL {url!r} and no http(s) "
                "location to resolve it against"
            )
        url = urljoin(location, url)
    return url.rstrip("/")


# --- requests ----------------------------------------------------------------------------


def build_request(operation: Operation, arguments: Mapping[str, Any]) -> Request:
    """The request that calls ``operation`` with ``arguments``."""
    used: set[str] = set()
    path = operation.path
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    cookies: list[str] = []
    form: dict[str, Any] = {}
    for param in operation.parameters:
        name = str(param["name"])
        where = param.get("in")
        if name not in arguments or arguments[name] is None:
            if param.get("required") or where == "path":
                raise _invalid(f"missing required {where} parameter {name!r}")
            continue
        used.add(name)
        value = arguments[name]
        if where == "path":
            path = path.replace("{" + name + "}", quote(_joined(value, ","), safe=""))
        elif where == "query":
            query.extend(_query(name, value, param, operation.version))
        elif where == "header":
            headers.update(header_values({name: value}))
        elif where == "cookie":
            cookies.append(f"{name}={quote(_joined(value, ','), safe='')}")
        elif where == "formData":
            form[name] = value
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    accept = _preferred(operation.produces)
    if accept:
        headers["Accept"] = accept
    content: bytes | None = None
    if form:
        headers["Content-Type"] = FORM
        content = form_encode(query_values(form))
    else:
        body, body_used = _body(operation, arguments, used)
        used |= body_used
        if body is not None:
            ctype = _preferred(operation.consumes) or JSON
            headers["Content-Type"] = ctype
            content = _encode(body, ctype)
    unknown = sorted(set(arguments) - used)
    if unknown:
        declared = ", ".join(sorted(str(p["name"]) for p in operation.parameters)) or "none"
        raise _invalid(f"unknown parameter(s) {', '.join(unknown)} (declared: {declared})")
    return Request(
        method=operation.method,
        url=operation.base_url + "/" + path.lstrip("/"),
        headers=headers,
        params=query,
        content=content,
    )


def _body(
    operation: Operation, arguments: Mapping[str, Any], used: set[str]
) -> tuple[Any, set[str]]:
    """The body value and the argument names it consumed."""
    spec = operation.body
    if spec is None:
        return None, set()
    name = str(spec.get("name") or "body") if operation.version == 2 else "body"
    if name in arguments and name not in used:
        return arguments[name], {name}
    rest = {k: v for k, v in arguments.items() if k not in used}
    if rest:
        return rest, set(rest)
    if spec.get("required"):
        raise _invalid(f"the operation needs a request body (argument {name!r})")
    return None, set()


def _query(name: str, value: Any, param: Mapping[str, Any], version: int) -> list[tuple[str, str]]:
    if not isinstance(value, list | tuple):
        if isinstance(value, Mapping) and version == 3 and param.get("explode", True):
            return query_values(value)
        return query_values({name: value})
    if version == 2:
        fmt = str(param.get("collectionFormat") or "csv")
        sep = {"csv": ",", "ssv": " ", "tsv": "\t", "pipes": "|"}.get(fmt)
    else:
        style = str(param.get("style") or "form")
        explode = param.get("explode", style == "form")
        sep = None if explode else {"spaceDelimited": " ", "pipeDelimited": "|"}.get(style, ",")
    if sep is None:
        return query_values({name: list(value)})
    return [(name, _joined(value, sep))]


def _joined(value: Any, sep: str) -> str:
    if isinstance(value, list | tuple):
        return sep.join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return sep.join(f"{k}{sep}{_text(v)}" for k, v in value.items())
    return _text(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _preferred(types: list[str]) -> str | None:
    """JSON when offered, else the first media type listed."""
    for media in types:
        base = media.split(";", 1)[0].strip().lower()
        if base == JSON or base.endswith("+json"):
            return media
    return types[0] if types else None


def _encode(body: Any, ctype: str) -> bytes:
    base = ctype.split(";", 1)[0].strip().lower()
    if base == FORM and isinstance(body, Mapping):
        return form_encode(query_values(body))
    if isinstance(body, str) and not (base == JSON or base.endswith("+json")):
        return body.encode()
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _invalid(detail: str) -> TaskError:
    return TaskError.standard("validation", detail, title="Invalid operation arguments")
