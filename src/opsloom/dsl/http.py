"""``call: http``: one HTTP request described by a task's ``with`` arguments.

The interpreter evaluates the ``${…}`` expressions of ``with`` and runs :func:`call_http`
inside a durable step; this module expands the endpoint's URI template, authenticates, sends
the request and shapes the answer as the task's output:

- ``content`` (default): the body, parsed when its content type is JSON, else text (base64 when
  it is not text at all); ``None`` for an empty body.
- ``response``: ``{request: {method, uri, headers}, statusCode, headers, content}``; header names
  are lower-case, and credential headers of the request are masked as ``***``.
- ``raw``: the body as base64 (``None`` when empty).

Only 2xx answers succeed, or 2xx and 3xx with ``redirect: true`` (redirects are then followed).
Anything else raises a ``communication`` :class:`TaskError` whose ``status`` is the HTTP status;
timeouts raise ``timeout`` (408) and connection failures ``communication`` (500).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx

from opsloom.dsl.auth import MASK, AuthResolver
from opsloom.expr.problem import TaskError

OUTPUTS = ("content", "response", "raw")

#: Request headers whose values are credentials: masked in ``response.request.headers``.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
        "api-key",
        "api_key",
        "x-auth-token",
    }
)

_EXCERPT = 200
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_EXPRESSION = re.compile(r"\{([^{}]*)\}")
_VARNAME = re.compile(r"^(?:[A-Za-z0-9_.]|%[0-9A-Fa-f]{2})+$")
_TEXT_TYPES = ("xml", "javascript", "x-www-form-urlencoded", "yaml", "csv", "html")


def user_agent() -> str:
    """``opsloom/<version>`` as sent in the ``User-Agent`` header."""
    try:
        version = metadata.version("opsloom")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"opsloom/{version}"


def http_client(**kw: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for document calls.

    Defaults: connect timeout 5 s, read/write/pool 30 s, redirects not followed (a task asks
    for them with ``redirect: true``), ``User-Agent: opsloom/<version>``. Keyword arguments
    are passed to ``httpx.AsyncClient`` and override the defaults (``headers`` are merged).
    """
    headers = {"User-Agent": user_agent()}
    headers.update(kw.pop("headers", None) or {})
    options: dict[str, Any] = {
        "timeout": httpx.Timeout(30.0, connect=5.0),
        "follow_redirects": False,
    }
    options.update(kw)
    return httpx.AsyncClient(headers=headers, **options)


# --- URI templates -----------------------------------------------------------------------


def expand_uri(template: str, variables: Any) -> str:
    """Expand an RFC 6570 URI template with simple string expansion (``{name}``, ``{a,b}``).

    Variables are the top-level properties of ``variables`` (the task's input object): names
    are taken verbatim (``{pet.id}`` is the property ``"pet.id"``), values are percent-encoded
    except for unreserved characters, and an undefined or null variable expands to nothing.

    Raises:
        TaskError: ``expression`` (400) when a value is an object or an array;
            ``configuration`` (400) for an expression form other than simple expansion.
    """
    scope = variables if isinstance(variables, Mapping) else {}

    def replace(match: re.Match[str]) -> str:
        names = match.group(1).split(",")
        values: list[str] = []
        for name in names:
            if not _VARNAME.match(name):
                raise TaskError.standard(
                    "configuration",
                    f"URI template expression {match.group(0)!r} is not a simple "
                    "variable expansion",
                    title="Invalid URI template",
                )
            value = scope.get(name)
            if value is None:
                continue
            if isinstance(value, Mapping | list | tuple):
                raise TaskError.standard(
                    "expression",
                    f"URI template variable {name!r} must be a string, number, boolean or "
                    f"null, not {type(value).__name__}",
                    title="Invalid URI template variable",
                )
            values.append(quote(_scalar(value), safe=""))
        return ",".join(values)

    return _EXPRESSION.sub(replace, template)


def _scalar(value: Any) -> str:
    """The text of a scalar as JSON spells it (``true``, ``1.5``) but strings unquoted."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)


# --- requests ----------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """A request ready to send, before authentication."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: list[tuple[str, str]] = field(default_factory=list)
    content: bytes | None = None


def header_values(headers: Any) -> dict[str, str]:
    """The ``headers`` argument as a mapping of strings (scalars spelled as JSON)."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise _invalid(f"headers must be an object, not {type(headers).__name__}")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            out[str(name)] = ", ".join(_scalar(v) for v in value)
        elif isinstance(value, Mapping):
            out[str(name)] = json.dumps(value)
        else:
            out[str(name)] = _scalar(value)
    return out


def query_values(query: Any) -> list[tuple[str, str]]:
    """The ``query`` argument as name/value pairs; arrays repeat the parameter."""
    if query is None:
        return []
    if not isinstance(query, Mapping):
        raise _invalid(f"query must be an object, not {type(query).__name__}")
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if item is None:
                continue
            text = json.dumps(item) if isinstance(item, Mapping) else _scalar(item)
            pairs.append((str(name), text))
    return pairs


def encode_body(body: Any, headers: dict[str, str]) -> bytes | None:
    """Encode a request body, adding a ``Content-Type`` header when none is given.

    Strings are sent as they are (``text/plain`` by default); an object sent with a
    ``application/x-www-form-urlencoded`` content type is form-encoded; anything else is JSON.
    """
    if body is None:
        return None
    ctype = _get(headers, "content-type")
    if isinstance(body, str):
        if ctype is None:
            headers["Content-Type"] = "text/plain; charset=utf-8"
        return body.encode()
    if ctype is not None and _media_type(ctype) == "application/x-www-form-urlencoded":
        if not isinstance(body, Mapping):
            raise _invalid("a form-encoded body must be an object")
        return form_encode(query_values(body))
    if ctype is None:
        headers["Content-Type"] = "application/json"
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def with_query(url: str, params: list[tuple[str, str]]) -> str:
    """``url`` with ``params`` appended to its query string (what it has already is kept)."""
    if not params:
        return url
    base, hash_, fragment = url.partition("#")
    added = urlencode(params, quote_via=quote)
    joiner = "&" if "?" in base and not base.endswith(("?", "&")) else ("" if "?" in base else "?")
    return f"{base}{joiner}{added}{hash_}{fragment}"


def form_encode(pairs: list[tuple[str, str]]) -> bytes:
    """``application/x-www-form-urlencoded`` bytes of name/value pairs."""
    return urlencode(pairs).encode("ascii")


#: Redirects followed at most by one call.
MAX_REDIRECTS = 10
#: Headers that carry credentials whoever set them.
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")


async def _follow(
    client: httpx.AsyncClient, built: httpx.Request, sent: Mapping[str, str], redirect: bool
) -> httpx.Response:
    """Send ``built``, following redirects one by one when asked.

    A redirect to another origin (scheme, host, port) carries none of the headers the task
    or its authentication set (``sent``), nor any credential header: a secret in a custom
    header must not travel to wherever the first server points.
    """
    response = await client.send(built, follow_redirects=False)
    hops = 0
    while redirect and response.next_request is not None:
        hops += 1
        if hops > MAX_REDIRECTS:
            raise httpx.TooManyRedirects(
                f"more than {MAX_REDIRECTS} redirects", request=response.next_request
            )
        following = response.next_request
        if _origin(following.url) != _origin(built.url):
            for name in (*sent, *_CREDENTIAL_HEADERS):
                if name in following.headers:
                    del following.headers[name]
        await response.aclose()
        response = await client.send(following, follow_redirects=False)
    return response


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


async def send(
    request: Request,
    *,
    client: httpx.AsyncClient,
    auth: AuthResolver,
    authentication: Any = None,
    output: Any = "content",
    redirect: Any = False,
) -> Any:
    """Authenticate and send ``request``; return the task output in the ``output`` form.

    Raises:
        TaskError: see the module documentation.
    """
    if output is None:
        output = "content"
    if output not in OUTPUTS:
        raise _invalid(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    if not isinstance(redirect, bool):
        raise _invalid("redirect must be true or false")
    headers = dict(request.headers)
    headers.update(await auth.headers_for(authentication))
    try:
        built = client.build_request(
            request.method,
            with_query(request.url, request.params),
            headers=headers,
            content=request.content,
        )
    except (httpx.InvalidURL, ValueError) as exc:
        detail = f"invalid request URL {_safe_url(request.url)}: {exc}"
        raise _invalid(auth.redact(detail)) from None
    where = f"{request.method} {_safe_url(str(built.url))}"
    try:
        response = await _follow(client, built, headers, redirect)
    except httpx.UnsupportedProtocol as exc:
        raise _invalid(auth.redact(f"{where}: {exc}")) from None
    except httpx.HTTPError as exc:
        raise unanswered(exc, where, auth) from None
    status = response.status_code
    if status == 401 and authentication is not None:
        auth.forget_tokens()
    if not (200 <= status < 300 or (redirect and 300 <= status < 400)):
        raise TaskError.standard(
            "communication",
            auth.redact(f"{where} answered {status} {response.reason_phrase}{_excerpt(response)}"),
            status=status,
            title=response.reason_phrase or f"HTTP {status}",
        )
    if output == "raw":
        return base64.b64encode(response.content).decode("ascii") if response.content else None
    content = read_content(response)
    if output == "content":
        return content
    sent = response.request
    return {
        "request": {
            "method": sent.method.lower(),
            "uri": str(sent.url),
            "headers": _masked(sent.headers),
        },
        "statusCode": status,
        "headers": _joined(response.headers),
        "content": content,
    }


async def call_http(
    args: Mapping[str, Any],
    *,
    input: Any,
    auth: AuthResolver,
    client: httpx.AsyncClient,
) -> Any:
    """Run a ``call: http`` task whose ``with`` arguments (expressions evaluated) are ``args``.

    Args:
        args: ``method``, ``endpoint`` (URI template or ``{uri, authentication}``),
            ``headers``, ``query``, ``body``, ``output``, ``redirect``.
        input: the task's transformed input; the URI template's variables.
        auth: resolves the endpoint's authentication policy.
        client: the HTTP client (see :func:`http_client`).

    Returns:
        The task's raw output, in the form ``output`` asks for.

    Raises:
        TaskError: ``communication``/``timeout`` for failed requests, ``configuration``,
            ``validation`` or ``expression`` (400) for invalid arguments, ``authentication``
            when a token cannot be obtained.
    """
    if not isinstance(args, Mapping):
        raise _invalid("the arguments of an http call must be an object")
    method = args.get("method")
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise _invalid(f"method must be an HTTP method name, not {method!r}")
    uri, authentication = endpoint_parts(args.get("endpoint"))
    url = expand_uri(uri, input)
    check_url(url, auth)
    headers = header_values(args.get("headers"))
    request = Request(
        method=method.upper(),
        url=url,
        headers=headers,
        params=query_values(args.get("query")),
        content=encode_body(args.get("body"), headers),
    )
    return await send(
        request,
        client=client,
        auth=auth,
        authentication=authentication,
        output=args.get("output"),
        redirect=args.get("redirect", False),
    )


def unanswered(exc: httpx.HTTPError, what: str, auth: AuthResolver) -> TaskError:
    """The error of a request that got no response: it timed out, or the transport failed.

    Args:
        exc: what httpx raised.
        what: the request in words (``GET https://host/path``), for the detail.
        auth: redacts the secrets of the call from the detail.
    """
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        detail = f"{what} timed out ({name})"
        return TaskError.standard("timeout", auth.redact(detail), title="Request timed out")
    detail = f"{what} failed: {name}: {exc}"
    return TaskError.standard("communication", auth.redact(detail), title="Request failed")


def endpoint_parts(endpoint: Any) -> tuple[str, Any]:
    """``(uri, authentication)`` of an endpoint given as a string or ``{uri, authentication}``."""
    if isinstance(endpoint, str):
        return endpoint, None
    if isinstance(endpoint, Mapping):
        uri = endpoint.get("uri")
        if isinstance(uri, str):
            return uri, endpoint.get("authentication")
    raise _invalid("endpoint must be a URI or an object with a 'uri'")


def check_url(url: str, auth: AuthResolver | None = None) -> None:
    """Refuse anything but an absolute http(s) URL, with a configuration error."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        detail = f"not an absolute http(s) URL: {_safe_url(url)!r}"
        raise TaskError.standard(
            "configuration",
            auth.redact(detail) if auth is not None else detail,
            title="Invalid endpoint",
        )


# --- responses ---------------------------------------------------------------------------


def read_content(response: httpx.Response) -> Any:
    """The body: parsed JSON for JSON media types, text for text, else base64."""
    data = response.content
    if not data:
        return None
    media = _media_type(response.headers.get("content-type", ""))
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(data)
        except ValueError:
            pass
    textual = not media or media.startswith("text/") or any(t in media for t in _TEXT_TYPES)
    if textual or media == "application/json" or media.endswith("+json"):
        try:
            return data.decode(response.encoding or "utf-8")
        except (UnicodeDecodeError, LookupError):
            pass
    return base64.b64encode(data).decode("ascii")


def _excerpt(response: httpx.Response) -> str:
    text = response.content[: _EXCERPT * 4].decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    text = " ".join(text.split())
    return ": " + (text[:_EXCERPT] + "…" if len(text) > _EXCERPT else text)


def _masked(headers: httpx.Headers) -> dict[str, str]:
    out = _joined(headers)
    for name in out:
        if name in SENSITIVE_HEADERS:
            out[name] = MASK
    return out


def _joined(headers: httpx.Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _media_type(ctype: str) -> str:
    return ctype.split(";", 1)[0].strip().lower()


def _get(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _safe_url(url: str) -> str:
    """``url`` without its user-info part (``user:password@``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _invalid(detail: str) -> TaskError:
    return TaskError.standard("validation", detail, title="Invalid call arguments")
