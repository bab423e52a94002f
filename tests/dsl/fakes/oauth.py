"""A local OAuth2 / OpenID Connect authority (served as ``https://auth.example.test``).

Token endpoint per RFC 6749 §4.4 (client credentials) and §4.3 (password): the client
authenticates with HTTP Basic (``client_secret_basic``) or with ``client_id``/``client_secret``
in the body (``client_secret_post``); bodies are form-encoded or JSON. Errors use the RFC's
JSON error body (``invalid_client`` 401, ``unsupported_grant_type`` / ``invalid_request`` 400).
Discovery (OpenID Connect Discovery 1.0) answers ``/.well-known/openid-configuration``, both at
the root and under a Keycloak-style realm (``/realms/{realm}``).

``app.state.token_requests`` lists every token request (grant, client id, how the client
authenticated, scope, audience); ``app.state.issued`` lists the tokens handed out.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

AUTHORITY = "https://auth.example.test"
CLIENTS = {"workflow-runtime": "s3cr3t-client-secret"}
USERS = {"alice": "wonderland"}


def make_oauth(
    *,
    clients: dict[str, str] | None = None,
    expires_in: int | None = 3600,
    base: str = AUTHORITY,
) -> Starlette:
    """A fresh authority: ``clients`` maps client ids to secrets."""
    known = dict(CLIENTS if clients is None else clients)
    counter = itertools.count(1)
    token_requests: list[dict[str, Any]] = []
    issued: list[str] = []

    def error(status: int, code: str, description: str) -> Response:
        headers = {"www-authenticate": 'Basic realm="auth.example.test"'} if status == 401 else {}
        return JSONResponse(
            {"error": code, "error_description": description},
            status_code=status,
            headers={"cache-control": "no-store", **headers},
        )

    async def token(request: Request) -> Response:
        ctype = request.headers.get("content-type", "")
        fields: dict[str, Any]
        if ctype.startswith("application/json"):
            fields = dict(await request.json())
        else:
            fields = {}
            for key, value in parse_qsl((await request.body()).decode(), keep_blank_values=True):
                if key in fields:
                    prior = fields[key]
                    fields[key] = [*prior, value] if isinstance(prior, list) else [prior, value]
                else:
                    fields[key] = value
        method = "none"
        client_id = fields.get("client_id")
        secret = fields.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            try:
                pair = base64.b64decode(header[6:]).decode()
            except (binascii.Error, UnicodeDecodeError):
                return error(401, "invalid_client", "malformed Basic credentials")
            raw_id, _, raw_secret = pair.partition(":")
            client_id, secret, method = unquote_plus(raw_id), unquote_plus(raw_secret), "basic"
        elif secret is not None:
            method = "post"
        token_requests.append(
            {
                "grant_type": fields.get("grant_type"),
                "client_id": client_id,
                "client_auth": method,
                "scope": fields.get("scope"),
                "audience": fields.get("audience"),
                "content_type": ctype,
                "path": request.url.path,
            }
        )
        if client_id not in known or known[client_id] != secret:
            return error(401, "invalid_client", "client authentication failed")
        grant = fields.get("grant_type")
        if grant == "password":
            if USERS.get(str(fields.get("username"))) != fields.get("password"):
                return error(400, "invalid_grant", "wrong username or password")
        elif grant != "client_credentials":
            return error(400, "unsupported_grant_type", f"grant {grant!r} is not supported")
        value = f"at-{next(counter)}-{client_id}"
        issued.append(value)
        body: dict[str, Any] = {"access_token": value, "token_type": "Bearer"}
        if expires_in is not None:
            body["expires_in"] = expires_in
        if fields.get("scope"):
            body["scope"] = fields["scope"]
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def discovery(request: Request) -> Response:
        realm = request.path_params.get("realm")
        issuer = f"{base}/realms/{realm}" if realm else base
        token_endpoint = (
            f"{issuer}/protocol/openid-connect/token" if realm else f"{base}/oauth2/token"
        )
        return JSONResponse(
            {
                "issuer": issuer,
                "token_endpoint": token_endpoint,
                "grant_types_supported": ["client_credentials", "password"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    app = Starlette(
        routes=[
            Route("/oauth2/token", token, methods=["POST"]),
            Route("/realms/{realm}/protocol/openid-connect/token", token, methods=["POST"]),
            Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
            Route("/realms/{realm}/.well-known/openid-configuration", discovery, methods=["GET"]),
        ]
    )
    app.state.token_requests = token_requests
    app.state.issued = issued
    app.state.clients = known
    return app
