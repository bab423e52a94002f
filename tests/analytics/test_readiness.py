"""``/healthz`` says the process is alive; ``/readyz`` checks each component, on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from opsloom import App, FakeClock
from opsloom.api.factory import create_probe_api


async def probe(app: App, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_probe_api(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        return await client.get(path)


async def ready_body(app: App) -> dict[str, Any]:
    # The worker takes its singletons in its first loop turns after opening: await that.
    for _ in range(400):
        response = await probe(app, "/readyz")
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"never ready: {response.json()}")


async def test_readyz__ready_with_store_writer_worker_singletons_and_scheduler(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    async with app:
        body = await ready_body(app)
        assert (await probe(app, "/healthz")).json() == {"status": "alive"}
    components = body["components"]
    assert body["status"] == "ready"
    assert set(components) == {
        "store",
        "writer",
        "worker",
        "singleton:reaper",
        "singleton:scheduler",
        "scheduler",
    }
    assert components["store"]["schema_version"] >= 1
    assert components["writer"]["alive"] is True
    assert components["singleton:reaper"]["here"] is True
    assert components["scheduler"]["lag_s"] == 0


async def test_readyz__a_singleton_nobody_renews_makes_the_process_not_ready(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    async with app:
        await ready_body(app)
        assert app.scheduler is not None
        await app.scheduler.stop()  # its holder is gone; the lease runs out in fake time
        clock.advance(3600)
        response = await probe(app, "/readyz")
    assert response.status_code == 503
    components = response.json()["components"]
    assert components["singleton:scheduler"] == {
        "ok": False,
        "held": False,
        "here": True,
        "expires_in_s": components["singleton:scheduler"]["expires_in_s"],
    }
    assert components["singleton:scheduler"]["expires_in_s"] < 0
    assert components["store"]["ok"] is True


async def test_readyz__closed_app_is_not_ready_but_alive(make_app: Callable[..., App]) -> None:
    app = make_app()
    response = await probe(app, "/readyz")
    assert response.status_code == 503
    assert response.json()["components"]["store"]["ok"] is False
    assert (await probe(app, "/healthz")).status_code == 200
