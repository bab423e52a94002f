"""A local stand-in for httpbin (https://httpbin.org), following its public API.

Implemented: ``/get``, ``/post``, ``/put``, ``/patch``, ``/delete``, ``/anything[/…]``,
``/headers``, ``/status/{codes}``, ``/basic-auth/{user}/{passwd}``, ``/bearer``,
``/redirect-to``, ``/redirect/{n}``, ``/bytes/{n}``, ``/robots.txt``. Echo bodies have
httpbin's shape: ``args`` (a value, or a list when repeated), ``headers`` (title-cased names),
``origin``, ``url``, and for bodies ``data``, ``files``, ``form``, ``json``.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ALL = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
TEAPOT = "I'm a teapot\n"


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _multi(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            out[key] = [*out[key], value] if isinstance(out[key], list) else [out[key], value]
        else:
            out[key] = value
    return out


def _headers(request: Request) -> dict[str, str]:
    return {_title(k): v for k, v in request.headers.items()}


def _url(request: Request) -> str:
    """The URL as sent (the path still percent-encoded, as httpbin shows it)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.url.query
    base = f"{request.url.scheme}://{request.url.netloc}{raw.decode('latin-1')}"
    return f"{base}?{query}" if query else base


def _origin(request: Request) -> str:
    return request.client.host if request.client else "127.0.0.1"


async def _echo(request: Request, *, body: bool, method: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"args": _multi(list(request.query_params.multi_items()))}
    if body:
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        form: dict[str, Any] = {}
        parsed: Any = None
        if ctype.startswith("application/x-www-form-urlencoded"):
            form = _multi(parse_qsl(raw.decode(), keep_blank_values=True))
            data = ""
        else:
            data = raw.decode("utf-8", errors="replace")
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
        out.update({"data": data, "files": {}, "form": form, "json": parsed})
    out["headers"] = _headers(request)
    if method:
        out["method"] = request.method
    out["origin"] = _origin(request)
    out["url"] = _url(request)
    return out


async def get(request: Request) -> Response:
    return JSONResponse(await _echo(request, body=False))


async def with_body(request: Request) -> Response:
    return JSONResponse(await _echo(request, body=True))


async def anything(request: Request) -> Response:
    return JSONResponse(await _echo(request, body=True, method=True))


async def headers(request: Request) -> Response:
    return JSONResponse({"headers": _headers(request)})


async def status(request: Request) -> Response:
    choices = [c.strip() for c in request.path_params["codes"].split(",") if c.strip()]
    try:
        codes = [int(c) for c in choices]
    except ValueError:
        return Response("Invalid status code", status_code=400, media_type="text/html")
    code = random.choice(codes) if codes else 200
    if code == 418:
        return Response(
            TEAPOT, status_code=418, headers={"x-more-info": "http://tools.ietf.org/html/rfc2324"}
        )
    if 300 <= code < 400:
        return Response(status_code=code, headers={"location": "/redirect/1"})
    if code == 401:
        return Response(status_code=401, headers={"www-authenticate": 'Basic realm="Fake Realm"'})
    return Response(status_code=code, media_type="text/html; charset=utf-8")


async def basic_auth(request: Request) -> Response:
    user, passwd = request.path_params["user"], request.path_params["passwd"]
    given = request.headers.get("authorization", "")
    ok = False
    if given.startswith("Basic "):
        try:
            ok = base64.b64decode(given[6:]).decode() == f"{user}:{passwd}"
        except (binascii.Error, UnicodeDecodeError):
            ok = False
    if not ok:
        return Response(status_code=401, headers={"www-authenticate": 'Basic realm="Fake Realm"'})
    return JSONResponse({"authenticated": True, "user": user})


async def bearer(request: Request) -> Response:
    given = request.headers.get("authorization", "")
    if not given.startswith("Bearer ") or not given[7:].strip():
        return Response(status_code=401, headers={"www-authenticate": "Bearer"})
    return JSONResponse({"authenticated": True, "token": given[7:].strip()})


async def redirect_to(request: Request) -> Response:
    url = request.query_params.get("url")
    if not url:
        return Response(status_code=400)
    code = int(request.query_params.get("status_code") or 302)
    if not 300 <= code < 400:
        code = 302
    return Response(status_code=code, headers={"location": url})


async def redirect(request: Request) -> Response:
    n = int(request.path_params["n"])
    target = "/get" if n <= 1 else f"/relative-redirect/{n - 1}"
    return Response(status_code=302, headers={"location": target})


async def random_bytes(request: Request) -> Response:
    n = min(int(request.path_params["n"]), 100 * 1024)
    seed = request.query_params.get("seed")
    rng = random.Random(int(seed)) if seed is not None else random.Random()
    return Response(
        bytes(rng.getrandbits(8) for _ in range(n)), media_type="application/octet-stream"
    )


async def robots(request: Request) -> Response:
    return Response("User-agent: *\nDisallow: /deny\n", media_type="text/plain")


def make_httpbin() -> Starlette:
    """A fresh httpbin fake."""
    return Starlette(
        routes=[
            Route("/get", get, methods=["GET"]),
            Route("/post", with_body, methods=["POST"]),
            Route("/put", with_body, methods=["PUT"]),
            Route("/patch", with_body, methods=["PATCH"]),
            Route("/delete", with_body, methods=["DELETE"]),
            Route("/anything", anything, methods=ALL),
            Route("/anything/{rest:path}", anything, methods=ALL),
            Route("/headers", headers, methods=["GET"]),
            Route("/status/{codes}", status, methods=ALL),
            Route("/basic-auth/{user}/{passwd}", basic_auth, methods=["GET"]),
            Route("/bearer", bearer, methods=["GET"]),
            Route("/redirect-to", redirect_to, methods=ALL),
            Route("/redirect/{n:int}", redirect, methods=["GET"]),
            Route("/relative-redirect/{n:int}", redirect, methods=["GET"]),
            Route("/bytes/{n:int}", random_bytes, methods=["GET"]),
            Route("/robots.txt", robots, methods=["GET"]),
        ]
    )
