"""Local fakes of the public services documents call: Petstore, httpbin and an OAuth2 authority.

``fake_http_client()`` gives an ``httpx.AsyncClient`` (built by opsloom's own ``http_client``, so
timeouts, redirects and User-Agent are the production ones) whose ``https://petstore.swagger.io``,
``https://httpbin.org`` and ``https://auth.example.test`` are served in-process by the fakes.
Pass a :class:`Fakes` to look at what the fakes received or hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette

from opsloom.dsl.http import http_client

from .httpbin import make_httpbin
from .oauth import AUTHORITY, CLIENTS, make_oauth
from .petstore import make_petstore, swagger_document

PETSTORE = "https://petstore.swagger.io"
HTTPBIN = "https://httpbin.org"

__all__ = [
    "AUTHORITY",
    "CLIENTS",
    "HTTPBIN",
    "PETSTORE",
    "Fakes",
    "fake_http_client",
    "make_httpbin",
    "make_oauth",
    "make_petstore",
    "swagger_document",
]


@dataclass
class Fakes:
    """One set of fake services; each has its own state."""

    petstore: Starlette = field(default_factory=make_petstore)
    httpbin: Starlette = field(default_factory=make_httpbin)
    oauth: Starlette = field(default_factory=make_oauth)

    def mounts(self) -> dict[str, httpx.AsyncBaseTransport]:
        """httpx mounts routing the services' hosts to the fakes."""
        routes: dict[str, Starlette] = {
            "petstore.swagger.io": self.petstore,
            "httpbin.org": self.httpbin,
            "auth.example.test": self.oauth,
        }
        mounts: dict[str, httpx.AsyncBaseTransport] = {}
        for host, app in routes.items():
            transport = httpx.ASGITransport(app=app)
            mounts[f"https://{host}"] = transport
            mounts[f"http://{host}"] = transport
        return mounts


def fake_http_client(fakes: Fakes | None = None, **kw: Any) -> httpx.AsyncClient:
    """An HTTP client whose public test services are served by local fakes."""
    return http_client(mounts=(fakes or Fakes()).mounts(), **kw)
