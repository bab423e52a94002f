"""Every route of the API refuses a request without a token (401), one whose user lacks the
route's role (403), and lets the right role through. Routes are read from the app itself, so a
route added later is covered without touching this file; only the open ones are listed here."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from opsloom import App, FakeClock
from opsloom.api import create_api
from opsloom.api.auth import ENV_TOKEN_USER, RoleGuard
from opsloom.identity.access import ROLES, Identity, effective_roles
from opsloom.settings import Settings

PROBLEM = "application/problem+json"
ENV_TOKEN = "automation-token"

#: Routes that take no API token: probes, the API's own documents, webhook receivers (every
#: source checks its own credentials: signatures, its own bearer or basic secrets) and the
#: one-time approval links (signed).
OPEN_PATHS = frozenset(
    {
        "/api/v1/health",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/approvals/links/{token}",
    }
)
OPEN_PREFIXES = ("/hooks/",)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    role: str

    @property
    def url(self) -> str:
        return re.sub(r"\{[^}]+\}", "x", self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.role})"


def _guards(dependant: Dependant) -> Iterator[RoleGuard]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RoleGuard):
            yield dependency.call
        yield from _guards(dependency)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _routes(api: FastAPI) -> list[Any]:
    # FastAPI 0.16x keeps included routers as such; their routes are reached through contexts.
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(api.routes) if iterate is None else list(iterate(api.routes))


def guarded_endpoints(api: FastAPI) -> list[Endpoint]:
    """Each (method, path) of the app that is not open, with the role it requires."""
    found: list[Endpoint] = []
    for route in _routes(api):
        path = getattr(route, "path", "")
        if _is_open(path):
            continue
        original = getattr(route, "original_route", route)
        assert isinstance(original, APIRoute), f"{path} is not an API route and not listed as open"
        roles = {guard.role for guard in _guards(route.dependant)}
        assert len(roles) == 1, f"{path} must require exactly one role, requires {roles or 'none'}"
        found.extend(Endpoint(method, path, roles.pop()) for method in sorted(route.methods))
    assert found, "no guarded route found: the route listing does not work"
    return found


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(f"sqlite:///{tmp_path / 'roles.db'}", worker=None, clock=FakeClock())
    async with app:
        yield app


@pytest.fixture
async def tokens(app: App) -> dict[str, str]:
    """A token per role (its user holds just that role) and one of a user with no role."""
    identity = Identity(app.store, app.clock)
    made: dict[str, str] = {}
    for role in ("none", *ROLES):
        await identity.add_user(role, roles=[] if role == "none" else [role], actor="test")
        made[role] = await identity.create_token(role, name="test", actor="test")
    return made


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(app, Settings(api_token=ENV_TOKEN))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsloom.test") as client:
        yield client


async def call(
    client: httpx.AsyncClient, endpoint: Endpoint, token: str | None = None
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body: dict[str, Any] | None = {} if endpoint.method in ("POST", "PUT", "PATCH") else None
    return await client.request(endpoint.method, endpoint.url, json=body, headers=headers)


def test_routes__every_route_is_open_or_requires_a_role(app: App) -> None:
    endpoints = guarded_endpoints(create_api(app, Settings()))
    by_route = {(e.method, e.path): e.role for e in endpoints}
    # The routes of this tree at the time of writing, with their roles: reads need viewer,
    # changes need operator. Routes added since are checked by the tests below all the same.
    assert {
        ("GET", "/api/v1/runs"): "viewer",
        ("GET", "/api/v1/runs/{run_id:path}"): "viewer",
        ("POST", "/api/v1/runs"): "operator",
        ("POST", "/api/v1/runs/{run_id:path}/signals/{name}"): "operator",
        ("POST", "/api/v1/runs/{run_id:path}/cancel"): "operator",
        ("POST", "/api/v1/runs/{run_id:path}/retry"): "operator",
        ("GET", "/api/v1/workflows"): "viewer",
        ("GET", "/api/v1/events"): "viewer",
        ("GET", "/api/v1/events/{event_id}"): "viewer",
        ("POST", "/api/v1/events"): "operator",
    }.items() <= by_route.items()


async def test_routes__without_a_token_every_route_answers_401(
    app: App, client: httpx.AsyncClient
) -> None:
    for endpoint in guarded_endpoints(create_api(app, Settings())):
        for token in (None, "not-a-token"):
            answer = await call(client, endpoint, token)
            assert answer.status_code == 401, f"{endpoint}: {answer.status_code} {answer.text}"
            assert answer.headers["www-authenticate"] == "Bearer", str(endpoint)
            assert answer.headers["content-type"] == PROBLEM
            assert answer.json()["code"] == "unauthorized"


async def test_routes__a_token_without_the_role_answers_403_naming_it(
    app: App, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for endpoint in guarded_endpoints(create_api(app, Settings())):
        lacking = [
            user
            for user in tokens
            if endpoint.role not in effective_roles([] if user == "none" else [user])
        ]
        assert lacking, f"{endpoint}: every user holds {endpoint.role}"
        for user in lacking:
            answer = await call(client, endpoint, tokens[user])
            assert answer.status_code == 403, f"{endpoint} as {user}: {answer.text}"
            assert answer.headers["content-type"] == PROBLEM
            body = answer.json()
            assert body["code"] == "forbidden"
            assert body["role"] == endpoint.role
            assert repr(endpoint.role) in body["detail"]


async def test_routes__the_right_role_gets_through(
    app: App, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for endpoint in guarded_endpoints(create_api(app, Settings())):
        for token in (tokens[endpoint.role], tokens["admin"], ENV_TOKEN):
            answer = await call(client, endpoint, token)
            assert answer.status_code not in (401, 403), f"{endpoint}: {answer.text}"


async def test_roles__implied_roles_are_honoured(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for role in ("operator", "approver", "admin"):  # each implies viewer
        answer = await client.get(
            "/api/v1/runs", headers={"Authorization": f"Bearer {tokens[role]}"}
        )
        assert answer.status_code == 200, role
    approver = {"Authorization": f"Bearer {tokens['approver']}"}
    refused = await client.post("/api/v1/runs/x/cancel", headers=approver)
    assert refused.status_code == 403  # approving does not imply operating


async def test_tokens__revoked_expired_and_disabled_are_refused(
    app: App, client: httpx.AsyncClient
) -> None:
    identity = Identity(app.store, app.clock)
    clock = app.clock
    assert isinstance(clock, FakeClock)
    await identity.add_user("carol", roles=["viewer"], actor="test")
    record, revoked = await identity.issue_token("carol", name="old", actor="test")
    expiring = await identity.create_token(
        "carol", name="short", actor="test", expires_at=clock.now() + 60
    )
    kept = await identity.create_token("carol", name="kept", actor="test")

    async def status(token: str) -> int:
        answer = await client.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"})
        return answer.status_code

    assert [await status(t) for t in (revoked, expiring, kept)] == [200, 200, 200]
    assert await identity.revoke_token(record.id, actor="test") is True
    clock.advance(61)
    assert [await status(t) for t in (revoked, expiring, kept)] == [401, 401, 200]
    await identity.disable("carol", actor="test")
    assert await status(kept) == 401
    await identity.enable("carol", actor="test")
    assert await status(kept) == 200


async def test_env_token__acts_as_admin_and_others_do_not_match_it(app: App) -> None:
    api = create_api(app, Settings(api_token=ENV_TOKEN))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsloom.test") as client:
        auth = {"Authorization": f"Bearer {ENV_TOKEN}"}
        assert (await client.get("/api/v1/runs", headers=auth)).status_code == 200
        near = {"Authorization": f"Bearer {ENV_TOKEN}x"}
        assert (await client.get("/api/v1/runs", headers=near)).status_code == 401
    without = create_api(app, Settings(api_token=None))
    transport = httpx.ASGITransport(app=without)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsloom.test") as client:
        # Without OPSLOOM_API_TOKEN, auth is still on: no token, no access.
        assert (await client.get("/api/v1/runs")).status_code == 401
    assert ENV_TOKEN_USER.startswith("system:")


async def test_openapi__documents_bearer_auth_and_the_refusals(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    listing = document["paths"]["/api/v1/runs"]["get"]
    assert {"401", "403"} <= set(listing["responses"])
    assert listing["security"] == [{"HTTPBearer": []}]
    assert "security" not in document["paths"]["/api/v1/health"]["get"]
