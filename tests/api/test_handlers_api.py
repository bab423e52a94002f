"""Queries and updates through the HTTP API: answers, refusals as problems, the audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authkit import auth_headers
from test_api import assert_problem, client_for

from opsloom import App, Context


def build_app(path: Path) -> App:
    app = App(f"sqlite:///{path / 'handlers.db'}")

    @app.workflow(name="tally")
    async def tally(ctx: Context, goal: int) -> int:
        state = {"total": 0}

        def add(amount: int) -> int:
            state["total"] += amount
            return state["total"]

        def positive(amount: Any) -> None:
            if not isinstance(amount, int) or amount <= 0:
                raise ValueError("amount must be a positive integer")

        ctx.on_signal("add", add)
        ctx.on_query("total", lambda _: state["total"])
        ctx.on_update("add", add, positive)
        await ctx.wait_until(lambda: state["total"] >= goal)
        return state["total"]

    return app


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = build_app(tmp_path)
    async with app:
        yield app


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, headers=await auth_headers(app)) as client:
        yield client


async def test_query_and_update__answer_and_are_audited(
    app: App, client: httpx.AsyncClient
) -> None:
    run = (await client.post("/api/v1/runs", json={"workflow": "tally", "input": 10})).json()
    await client.post(f"/api/v1/runs/{run['id']}/signals/add", json=3)
    asked = await client.post(f"/api/v1/runs/{run['id']}/queries/total")
    assert asked.status_code == 200, asked.text
    assert asked.json() == {"run_id": run["id"], "query": "total", "result": 3}

    updated = await client.post(f"/api/v1/runs/{run['id']}/updates/add", json=4)
    assert updated.status_code == 200, updated.text
    assert updated.json() == {"run_id": run["id"], "update": "add", "result": 7}
    await client.post(f"/api/v1/runs/{run['id']}/updates/add", json=3)
    assert await app.result(run["id"], timeout=10) == 10
    entries = await app.audit.entries()
    assert sum(1 for e in entries if e.action == "run.update") == 2


async def test_update__refused_by_validator_is_a_problem(client: httpx.AsyncClient) -> None:
    run = (await client.post("/api/v1/runs", json={"workflow": "tally", "input": 10})).json()
    refused = await client.post(f"/api/v1/runs/{run['id']}/updates/add", json="many")
    body = assert_problem(refused, 422, "update_rejected")
    assert "positive integer" in body["detail"]
    unknown = await client.post(f"/api/v1/runs/{run['id']}/queries/nope")
    assert "no query 'nope'" in assert_problem(unknown, 422, "query_failed")["detail"]
    missing = await client.post("/api/v1/runs/missing/queries/total")
    assert_problem(missing, 404, "run_not_found")
