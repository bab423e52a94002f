"""Outbound calls of documents stay within the egress allow and deny lists, redirects too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from opsloom import App, FakeClock, WorkerOptions
from opsloom.dsl.egress import EgressPolicy
from opsloom.dsl.runtime import DslOptions, DslRuntime
from opsloom.errors import RunFailedError

DOCUMENT = """\
document: {{dsl: '1.0.3', namespace: test, name: {name}, version: '1.0.0'}}
do:
  - fetch:
      call: http
      with:
        method: get
        endpoint: {url}
        redirect: true
"""


def test_policy__deny_wins_and_allow_limits() -> None:
    policy = EgressPolicy.of(["*.example.com", "10.1.0.0/16"], ["secret.example.com"])
    assert policy.permits("api.example.com")
    assert not policy.permits("secret.example.com")
    assert not policy.permits("example.org")
    assert policy.permits("10.1.2.3") and not policy.permits("10.2.0.1")
    metadata = EgressPolicy.of([], ["169.254.0.0/16", "fd00::/8"])
    assert not metadata.permits("169.254.169.254") and not metadata.permits("[fd00::1]")
    assert metadata.permits("api.example.com")
    with pytest.raises(ValueError, match="not a valid IP network"):
        EgressPolicy.of([], ["300.1.0.0/16"])


def _app() -> Starlette:
    async def hop(request: Request) -> Response:
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def data(request: Request) -> JSONResponse:
        return JSONResponse({"host": request.url.hostname})

    return Starlette(routes=[Route("/hop", hop), Route("/data", data)])


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(
        f"sqlite:///{tmp_path / 'e.db'}",
        worker=WorkerOptions(poll_seconds=0.02, reap_seconds=None),
        clock=FakeClock(),
    )
    async with app:
        yield app


async def _run(runtime: DslRuntime, app: App, name: str, url: str) -> tuple[str, Any]:
    text = DOCUMENT.format(name=name, url=url)
    workflow = runtime.register(runtime.load(text, f"{name}.yaml"), text)
    handle = await app.start(workflow)
    try:
        return "completed", await handle.result(timeout=20)
    except RunFailedError:
        fault = await runtime.fault_of(handle.run_id)
        return "failed", fault["title"] if fault else None


async def test_calls__to_denied_hosts_and_redirects_there_are_refused(app: App) -> None:
    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()))

    options = DslOptions(http_client=client, egress=EgressPolicy.of([], ["169.254.0.0/16"]))
    runtime = DslRuntime(app, options)
    try:
        assert await _run(runtime, app, "ok", "https://api.example.com/data") == (
            "completed",
            {"host": "api.example.com"},
        )
        direct = await _run(runtime, app, "direct", "http://169.254.169.254/data")
        hidden = await _run(
            runtime,
            app,
            "hidden",
            "https://api.example.com/hop?to=http://169.254.169.254/data",
        )
    finally:
        await runtime.close()
    assert direct == hidden == ("failed", "Destination not allowed")
