"""Pausing, resuming and resetting runs and workflows over the API: answers, errors, audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from authkit import auth_headers

from opsloom import App, Context, RunFailedError
from opsloom.api import create_api
from opsloom.settings import Settings


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(f"sqlite:///{tmp_path / 'pause.db'}", settings=Settings())

    @app.workflow(name="park")
    async def park(ctx: Context) -> object:
        return await ctx.wait_for("go")

    async with app:
        yield app


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    headers = await auth_headers(app, user="olga", roles=("operator",))
    transport = httpx.ASGITransport(app=create_api(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def test_pause_resume_run__answers_the_run_and_is_audited(
    app: App, client: httpx.AsyncClient
) -> None:
    assert (
        await client.post("/api/v1/runs", json={"workflow": "park", "run_id": "p-1"})
    ).is_success
    paused = await client.post("/api/v1/runs/p-1/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] == "run" and paused.json()["paused_at"] is not None
    assert (await client.get("/api/v1/runs/p-1")).json()["paused"] == "run"
    resumed = await client.post("/api/v1/runs/p-1/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is None
    again = await client.post("/api/v1/runs/p-1/resume")
    assert again.status_code == 409 and again.json()["code"] == "invalid_run_state"
    missing = await client.post("/api/v1/runs/nope/pause")
    assert missing.status_code == 404 and missing.json()["code"] == "run_not_found"
    actions = [(e.actor, e.action, e.subject) for e in await app.audit.entries()]
    assert ("olga", "run.pause", "run:p-1") in actions
    assert ("olga", "run.resume", "run:p-1") in actions


async def test_pause_resume_workflow__lists_runs_and_is_audited(
    app: App, client: httpx.AsyncClient
) -> None:
    assert (
        await client.post("/api/v1/runs", json={"workflow": "park", "run_id": "w-1"})
    ).is_success
    paused = await client.post("/api/v1/workflows/park/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"workflow": "park", "runs": ["w-1"]}
    listed = (await client.get("/api/v1/workflows/paused")).json()
    assert [(p["workflow"], p["paused_by"]) for p in listed] == [("park", "olga")]
    new = await client.post("/api/v1/runs", json={"workflow": "park", "run_id": "w-2"})
    assert new.json()["paused"] == "workflow"
    resumed = await client.post("/api/v1/workflows/park/resume")
    assert resumed.json() == {"workflow": "park", "runs": ["w-1", "w-2"]}
    assert (await client.post("/api/v1/workflows/park/resume")).status_code == 409
    unknown = await client.post("/api/v1/workflows/nope/pause")
    assert unknown.status_code == 404 and unknown.json()["code"] == "workflow_not_found"
    entries = {e.action: e for e in await app.audit.entries() if e.actor == "olga"}
    assert entries["workflow.pause"].subject == "workflow:park"
    assert entries["workflow.pause"].data == {"paused": ["w-1"]}
    assert entries["workflow.resume"].data == {"resumed": ["w-1", "w-2"]}


async def test_reset_run__answers_the_new_run_linked_to_the_old(
    app: App, client: httpx.AsyncClient
) -> None:
    assert (
        await client.post("/api/v1/runs", json={"workflow": "park", "run_id": "r-1"})
    ).is_success
    assert (await client.post("/api/v1/runs/r-1/reset", json={"to_step": 1})).status_code == 409
    assert (await client.post("/api/v1/runs/r-1/cancel")).status_code == 202
    with pytest.raises(RunFailedError):
        await app.result("r-1", timeout=10)
    bad = await client.post("/api/v1/runs/r-1/reset", json={"to_step": 0})
    assert bad.status_code == 422
    out_of_range = await client.post("/api/v1/runs/r-1/reset", json={"to_step": 9})
    assert out_of_range.status_code == 422, out_of_range.text
    assert "between 1 and 2" in out_of_range.json()["detail"]
    reset = await client.post("/api/v1/runs/r-1/reset", json={"to_step": 1})
    assert reset.status_code == 201, reset.text
    assert (reset.json()["reset_of"], reset.json()["reset_to"]) == ("r-1", 1)
    assert reset.headers["location"].endswith(reset.json()["id"])
    entries = [e for e in await app.audit.entries() if e.action == "run.reset"]
    assert [(e.actor, e.subject, e.data["run"]) for e in entries] == [
        ("olga", "run:r-1", reset.json()["id"])
    ]


async def test_labels__start_with_labels_and_list_by_label(
    app: App, client: httpx.AsyncClient
) -> None:
    body = {"workflow": "park", "run_id": "l-1", "labels": {"team": "db"}}
    started = await client.post("/api/v1/runs", json=body)
    assert started.status_code == 201 and started.json()["labels"] == {"team": "db"}
    await client.post("/api/v1/runs", json={"workflow": "park", "run_id": "l-2"})
    listed = await client.get("/api/v1/runs", params={"label": "team=db"})
    assert [run["id"] for run in listed.json()] == ["l-1"]
    bad = await client.get("/api/v1/runs", params={"label": "nolabel"})
    assert bad.status_code == 422 and "key=value" in bad.json()["detail"]
    refused = await client.post(
        "/api/v1/runs", json={"workflow": "park", "labels": {"bad key": "x"}}
    )
    assert refused.status_code == 422 and "'bad key'" in refused.json()["detail"]


async def test_rate_limit__set_listed_and_lifted(app: App, client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/runs", json={"workflow": "park"})).is_success
    put = await client.put("/api/v1/workflows/park/rate-limit", json={"per_second": 2, "burst": 3})
    assert put.status_code == 200, put.text
    listed = (await client.get("/api/v1/workflows/rate-limits")).json()
    shown = {"per_second": 2.0, "burst": 3, "key": None, "overflow": "queue"}
    assert listed == [{"workflow": "park", **shown, "declared": False}]
    bad = await client.put("/api/v1/workflows/park/rate-limit", json={"per_second": 0})
    assert bad.status_code == 422
    bad_key = {"per_second": 1, "key": ".["}
    bad = await client.put("/api/v1/workflows/park/rate-limit", json=bad_key)
    assert bad.status_code == 422 and "jq" in bad.json()["detail"]
    assert (await client.put("/api/v1/workflows/park/rate-limit", json={})).status_code == 200
    assert (await client.get("/api/v1/workflows/rate-limits")).json() == []
    audited = [e.data for e in await app.audit.entries() if e.action == "workflow.rate_limit"]
    assert audited == [shown, {"per_second": None}]


async def test_rate_limit__a_dropping_limit_answers_429(client: httpx.AsyncClient) -> None:
    drop = {"per_second": 0.01, "key": ".team", "overflow": "drop"}
    put = await client.put("/api/v1/workflows/park/rate-limit", json=drop)
    assert put.status_code == 200, put.text
    first = {"workflow": "park", "input": {"team": "db"}}
    assert (await client.post("/api/v1/runs", json=first)).status_code == 201
    refused = await client.post("/api/v1/runs", json=first)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limit_exceeded"
    other = {"workflow": "park", "input": {"team": "web"}}
    assert (await client.post("/api/v1/runs", json=other)).status_code == 201
