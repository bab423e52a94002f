"""The API's middleware: one body limit for every route, before authentication (and
authentication before parsing), and security headers on every response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from opsloom import App, FakeClock
from opsloom.api import create_api
from opsloom.settings import Settings

LIMIT = 1000
PROBLEM = "application/problem+json"

#: Routes reached without an API token and with one; all read a body.
PATHS = (
    "/api/v1/runs",
    "/api/v1/events",
    "/api/v1/approvals/r/tasks/0/decision",
    "/hooks/generic",
    "/hooks/slack/interactions",
    "/approvals/links/some-token",
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = App(f"sqlite:///{tmp_path / 'limit.db'}", worker=None, clock=FakeClock())
    api = create_api(
        app, Settings(max_body_bytes=LIMIT, slack_signing_secret="s", approval_link_secret="l")
    )
    async with app:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://opsloom.test") as c:
            yield c


@pytest.mark.parametrize("path", PATHS)
async def test_limit__a_declared_large_body_is_413_before_anything_else(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, content=b"x" * (LIMIT + 1))
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "body_too_large"
    assert response.json()["limit"] == LIMIT


async def test_limit__a_streamed_body_is_cut_off_at_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield b"y" * 100

    # No Content-Length: the body is counted as it arrives.
    for path in ("/hooks/slack/interactions", "/approvals/links/some-token"):
        response = await client.post(path, content=chunks())
        assert response.status_code == 413, (path, response.text)
        assert response.json()["code"] == "body_too_large"


async def test_limit__a_body_within_the_limit_reaches_the_route(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/v1/runs", json={"workflow": "none"})
    assert response.status_code == 401


async def test_auth__comes_before_parsing_the_body(client: httpx.AsyncClient) -> None:
    # Not JSON at all: without a token the answer is 401, not a complaint about the body.
    for path in (
        "/api/v1/approvals/r/tasks/0/decision",
        "/api/v1/approvals/r/tasks/0/ask",
        "/api/v1/approvals/r/answer",
        "/api/v1/approvals/r/tasks/0/delegate",
        "/api/v1/approvals/r/cancel",
    ):
        response = await client.post(path, content=b"{not json")
        assert response.status_code == 401, (path, response.text)


@pytest.mark.parametrize(
    "path", ["/api/v1/health", "/api/v1/runs", "/approvals/links/some-token", "/openapi.json"]
)
async def test_headers__no_framing_no_sniffing_no_caching_of_link_pages(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
    no_store = path.startswith("/approvals/links/")
    assert (response.headers.get("cache-control") == "no-store") is no_store
