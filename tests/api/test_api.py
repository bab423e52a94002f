"""The HTTP API against a real App (embedded worker, SQLite file), through ASGI in-process."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authkit import auth_headers

from opsloom import App, Context, RetryPolicy, RunFailedError, RunRecord, RunStatus
from opsloom.api import create_api
from opsloom.api.schema import RunOut, StepOut
from opsloom.model import StepKind, StepRecord, StepStatus
from opsloom.settings import Settings

PROBLEM = "application/problem+json"
TOKEN = "s3cret-token"

#: Lets a test make ``flaky`` fail, then succeed on retry.
flaky_state = {"fail": True}


def build_app(path: Path) -> App:
    app = App(f"sqlite:///{path / 'api.db'}")

    @app.step()
    async def add_one(x: int) -> int:
        return x + 1

    @app.step()
    async def undo(note: str) -> str:
        return note

    @app.step(retry=RetryPolicy(attempts=1))
    async def fragile() -> str:
        if flaky_state["fail"]:
            raise ValueError("not yet")
        return "ok"

    @app.workflow(name="approve")
    async def approve(ctx: Context, x: int) -> dict[str, Any]:
        y: int = await ctx.step(add_one, x)
        ctx.compensate(undo, "rolled back")
        decision = await ctx.wait_for("approval")
        return {"y": y, "decision": decision}

    @app.workflow(name="flaky", version="2")
    async def flaky(ctx: Context) -> str:
        return await ctx.step(fragile)

    return app


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    flaky_state["fail"] = True
    app = build_app(tmp_path)
    async with app:
        yield app


def client_for(
    app: App, token: str | None = None, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    api = create_api(app, Settings(api_token=token))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://opsloom.test", headers=headers
    )


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    """A client authenticated as an admin user (a token made through Identity)."""
    async with client_for(app, headers=await auth_headers(app)) as client:
        yield client


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:opsloom:problem:{code}"
    assert body["title"]
    assert body["detail"]
    return body


# --- runs ---------------------------------------------------------------------------------------


async def test_run__start_get_signal_completes(app: App, client: httpx.AsyncClient) -> None:
    started = await client.post("/api/v1/runs", json={"workflow": "approve", "input": 41})
    assert started.status_code == 201, started.text
    run = started.json()
    assert run["workflow"] == "approve"
    assert run["input"] == 41
    assert started.headers["location"] == f"/api/v1/runs/{run['id']}"

    got = await client.get(f"/api/v1/runs/{run['id']}")
    assert got.status_code == 200
    assert got.json()["id"] == run["id"]

    # A signal sent before the run reaches its wait_for is kept for it.
    signalled = await client.post(
        f"/api/v1/runs/{run['id']}/signals/approval", json={"approved": True, "by": "alice"}
    )
    assert signalled.status_code == 202
    assert signalled.json() == {"run_id": run["id"], "signal": "approval"}

    assert await app.result(run["id"], timeout=10) == {
        "y": 42,
        "decision": {"approved": True, "by": "alice"},
    }
    done = (await client.get(f"/api/v1/runs/{run['id']}")).json()
    assert done["status"] == "completed"
    assert done["output"] == {"y": 42, "decision": {"approved": True, "by": "alice"}}
    assert [(s["kind"], s["name"], s["status"]) for s in done["steps"]] == [
        ("step", "build_app.<locals>.add_one", "completed"),
        ("signal", "approval", "completed"),
    ]


async def test_run__start_with_existing_run_id_returns_it(client: httpx.AsyncClient) -> None:
    body = {"workflow": "approve", "input": 1, "run_id": "deploy-42", "priority": 5}
    first = await client.post("/api/v1/runs", json=body)
    again = await client.post("/api/v1/runs", json={**body, "input": 2})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"] == "deploy-42"
    assert again.json()["input"] == 1
    assert again.json()["priority"] == 5
    assert again.json()["created_at"] == first.json()["created_at"]


async def test_run__unknown_workflow_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/runs", json={"workflow": "nope"})
    body = assert_problem(response, 404, "workflow_not_found")
    assert "nope" in body["detail"]
    assert body["instance"] == "/api/v1/runs"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"",
        b"[1, 2]",
        b'{"workflow": "approve", "inputs": 1}',
        b'{"workflow": "approve", "run_id": ""}',
    ],
)
async def test_run__invalid_body_is_422_problem(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(
        "/api/v1/runs", content=content, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, "invalid_input")
    assert body["errors"]
    assert all(error["loc"][0] == "body" for error in body["errors"])


async def test_run__body_without_json_content_type_is_read_as_json(
    client: httpx.AsyncClient,
) -> None:
    # What `curl -d '{...}'` sends: JSON labelled as a form.
    response = await client.post(
        "/api/v1/runs",
        content=b'{"workflow": "approve", "input": 1}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text


async def test_run__unstorable_input_is_422_problem(client: httpx.AsyncClient) -> None:
    # A lone surrogate is valid JSON but not storable UTF-8: the App's InputError becomes a 422.
    response = await client.post(
        "/api/v1/runs", content=b'{"workflow": "approve", "input": "\\ud800"}'
    )
    assert_problem(response, 422, "invalid_input")


async def test_run__unknown_run_is_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/runs/missing"), 404, "run_not_found")
    assert_problem(
        await client.post("/api/v1/runs/missing/signals/approval", json=True), 404, "run_not_found"
    )
    assert_problem(await client.post("/api/v1/runs/missing/cancel"), 404, "run_not_found")
    assert_problem(await client.post("/api/v1/runs/missing/retry"), 404, "run_not_found")


async def test_signal__non_json_body_is_422_problem(client: httpx.AsyncClient) -> None:
    run = (await client.post("/api/v1/runs", json={"workflow": "approve", "input": 1})).json()
    response = await client.post(
        f"/api/v1/runs/{run['id']}/signals/approval",
        content=b"approved",
        headers={"content-type": "text/plain"},
    )
    body = assert_problem(response, 422, "invalid_input")
    assert "not valid JSON" in body["detail"]


async def test_signal__empty_body_sends_null(app: App, client: httpx.AsyncClient) -> None:
    run = (await client.post("/api/v1/runs", json={"workflow": "approve", "input": 1})).json()
    response = await client.post(f"/api/v1/runs/{run['id']}/signals/approval")
    assert response.status_code == 202
    assert await app.result(run["id"], timeout=10) == {"y": 2, "decision": None}


async def test_cancel__runs_compensation_and_ends_cancelled(
    app: App, client: httpx.AsyncClient
) -> None:
    run = (await client.post("/api/v1/runs", json={"workflow": "approve", "input": 1})).json()
    response = await client.post(f"/api/v1/runs/{run['id']}/cancel")
    assert response.status_code == 202
    assert response.json() == {"cancelled": [run["id"]]}
    with pytest.raises(RunFailedError) as failed:
        await app.result(run["id"], timeout=10)
    assert failed.value.status == "cancelled"
    cancelled = (await client.get(f"/api/v1/runs/{run['id']}")).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel_requested"] is True

    again = await client.post(f"/api/v1/runs/{run['id']}/cancel")
    assert_problem(again, 409, "invalid_run_state")
    signal = await client.post(f"/api/v1/runs/{run['id']}/signals/approval", json=True)
    assert_problem(signal, 409, "invalid_run_state")


async def test_retry__failed_run_runs_again(app: App, client: httpx.AsyncClient) -> None:
    run = (await client.post("/api/v1/runs", json={"workflow": "flaky"})).json()
    assert run["version"] == "2"
    with pytest.raises(RunFailedError):
        await app.result(run["id"], timeout=10)
    failed = (await client.get(f"/api/v1/runs/{run['id']}")).json()
    assert failed["status"] == "failed"
    assert "not yet" in failed["error"]["message"]

    flaky_state["fail"] = False
    retried = await client.post(f"/api/v1/runs/{run['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "pending"
    assert await app.result(run["id"], timeout=10) == "ok"
    assert_problem(await client.post(f"/api/v1/runs/{run['id']}/retry"), 409, "invalid_run_state")


async def test_run__tracebacks_are_shown_to_admins_only(
    app: App, client: httpx.AsyncClient
) -> None:
    run = (await client.post("/api/v1/runs", json={"workflow": "flaky"})).json()
    with pytest.raises(RunFailedError):
        await app.result(run["id"], timeout=10)
    admin = (await client.get(f"/api/v1/runs/{run['id']}")).json()
    assert "Traceback" in admin["error"]["traceback"]
    viewer_headers = await auth_headers(app, "vera", roles=("viewer",))
    async with client_for(app, headers=viewer_headers) as viewer:
        shown = (await viewer.get(f"/api/v1/runs/{run['id']}")).json()
        listed = (await viewer.get("/api/v1/runs")).json()
    for seen in (shown, next(r for r in listed if r["id"] == run["id"])):
        assert seen["error"]["message"] == admin["error"]["message"]
        assert "traceback" not in seen["error"]
        assert all("traceback" not in (step["error"] or {}) for step in seen["steps"])
    assert ".py" not in str(shown)


async def test_list__filters_by_status_and_workflow(app: App, client: httpx.AsyncClient) -> None:
    waiting = (
        await client.post("/api/v1/runs", json={"workflow": "approve", "input": 1, "run_id": "a"})
    ).json()
    flaky_state["fail"] = False
    done = (await client.post("/api/v1/runs", json={"workflow": "flaky", "run_id": "b"})).json()
    await app.result(done["id"], timeout=10)

    everything = (await client.get("/api/v1/runs")).json()
    assert {run["id"] for run in everything} == {waiting["id"], done["id"]}
    completed = (await client.get("/api/v1/runs", params={"status": "completed"})).json()
    assert [run["id"] for run in completed] == [done["id"]]
    of_approve = (await client.get("/api/v1/runs", params={"workflow": "approve"})).json()
    assert [run["id"] for run in of_approve] == [waiting["id"]]
    assert len((await client.get("/api/v1/runs", params={"limit": 1})).json()) == 1

    assert_problem(
        await client.get("/api/v1/runs", params={"status": "bogus"}), 422, "invalid_input"
    )
    assert_problem(await client.get("/api/v1/runs", params={"limit": 0}), 422, "invalid_input")


# --- workflows, health, documents -----------------------------------------------------------


async def test_workflows__lists_registered_versions(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/workflows")
    assert response.status_code == 200
    assert [(w["name"], w["version"], w["latest"]) for w in response.json()] == [
        ("approve", "1", True),
        ("flaky", "2", True),
    ]


async def test_health__reports_store_and_worker(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["store"]["reachable"] is True
    assert body["store"]["schema_version"] >= 1
    assert body["worker"]["running"] is True
    assert body["worker"]["executing"] >= 0
    assert body["workflows"] == 2
    alive = await client.get("/healthz")
    assert (alive.status_code, alive.json()) == (200, {"status": "alive"})


async def test_health__closed_app_is_503(tmp_path: Path) -> None:
    async with client_for(build_app(tmp_path)) as client:
        response = await client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["store"]["reachable"] is False
    assert body["worker"]["running"] is False


async def test_lifespan__opens_and_closes_the_app(tmp_path: Path) -> None:
    # What `uvicorn module:api` does: the API's lifespan opens the App and closes it.
    app = build_app(tmp_path)
    api = create_api(app, Settings(api_token=TOKEN))
    transport = httpx.ASGITransport(app=api)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        api.router.lifespan_context(api),
        httpx.AsyncClient(
            transport=transport, base_url="http://opsloom.test", headers=auth
        ) as client,
    ):
        health = (await client.get("/api/v1/health")).json()
        assert health["status"] == "ok"
        assert health["worker"]["running"] is True
        started = await client.post("/api/v1/runs", json={"workflow": "approve", "input": 1})
        assert started.status_code == 201
    assert app.worker is None
    with pytest.raises(RuntimeError):
        app.store  # noqa: B018 - the property raises when the app is closed


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/nothing"), 404, "not_found")
    assert_problem(await client.delete("/api/v1/runs"), 405, "method_not_allowed")


async def test_unexpected_error_is_500_problem_without_details(app: App) -> None:
    api = create_api(app, Settings(api_token=None))

    async def broken() -> None:
        raise RuntimeError("secret internals")

    api.add_api_route("/api/v1/broken", broken)
    transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsloom.test") as client:
        response = await client.get("/api/v1/broken")
    body = assert_problem(response, 500, "opsloom_error")
    assert "secret internals" not in body["detail"]


async def test_openapi__documents_the_routes(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert set(document["paths"]) >= {
        "/api/v1/health",
        "/api/v1/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/runs/{run_id}/signals/{name}",
        "/api/v1/runs/{run_id}/cancel",
        "/api/v1/runs/{run_id}/retry",
        "/api/v1/workflows",
    }
    start = document["paths"]["/api/v1/runs"]["post"]
    assert "workflow" in start["requestBody"]["content"]["application/json"]["schema"]["properties"]


def test_run_schema__matches_the_stable_run_shape() -> None:
    step = StepRecord(run_id="r", seq=1, kind=StepKind.STEP, name="s", status=StepStatus.COMPLETED)
    run = RunRecord(id="r", workflow="w", version="1", status=RunStatus.PENDING, steps=[step])
    assert list(RunOut.model_fields) == list(run.to_dict())
    assert list(StepOut.model_fields) == list(step.to_dict())
    assert RunOut.model_validate(run.to_dict()).model_dump() == run.to_dict()
    assert {f.name for f in dataclasses.fields(RunRecord)} >= set(RunOut.model_fields)


# --- authentication ----------------------------------------------------------------------------


async def test_token__required_on_every_route_but_health(app: App) -> None:
    async with client_for(app, token=TOKEN) as client:
        missing = await client.get("/api/v1/runs")
        body = assert_problem(missing, 401, "unauthorized")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "Bearer" in body["detail"]

        wrong = await client.get("/api/v1/runs", headers={"Authorization": "Bearer nope"})
        assert_problem(wrong, 401, "unauthorized")
        basic = await client.get("/api/v1/runs", headers={"Authorization": f"Basic {TOKEN}"})
        assert_problem(basic, 401, "unauthorized")
        unstarted = await client.post("/api/v1/runs", json={"workflow": "approve"})
        assert_problem(unstarted, 401, "unauthorized")
        assert (await client.get("/api/v1/runs")).status_code == 401

        right = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/api/v1/runs", headers=right)).status_code == 200
        assert (await client.get("/api/v1/workflows", headers=right)).status_code == 200
        started = await client.post(
            "/api/v1/runs", headers=right, json={"workflow": "approve", "input": 1}
        )
        assert started.status_code == 201

        assert (await client.get("/api/v1/health")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200

    assert len(await app.list_runs()) == 1  # only the authorised start created a run
