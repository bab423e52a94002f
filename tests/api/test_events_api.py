"""``/api/v1/events`` against a real App (embedded worker, SQLite file), through ASGI."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authkit import auth_headers

from opsloom import App, Context
from opsloom.api import create_api
from opsloom.settings import Settings

PROBLEM = "application/problem+json"
TOKEN = "events-token"
STRUCTURED = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


def build_app(path: Path) -> App:
    app = App(f"sqlite:///{path / 'events.db'}")

    @app.workflow(name="await-alert")
    async def await_alert(ctx: Context, service: str) -> dict[str, Any]:
        return await ctx.wait_for_event({"type": "alert.firing", "subject": service})

    return app


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
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
    """A client authenticated as an operator (a token made through Identity)."""
    async with client_for(app, headers=await auth_headers(app, roles=["operator"])) as client:
        yield client


def event(event_id: str | None = "e1", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "specversion": "1.0",
        "source": "https://alerts.example.com/prod",
        "type": "alert.firing",
        **extra,
    }
    if event_id is not None:
        out["id"] = event_id
    return out


async def post(client: httpx.AsyncClient, body: Any, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/api/v1/events", content=json.dumps(body), headers=headers)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code and body["detail"]
    return body


async def stored_ids(client: httpx.AsyncClient) -> list[str]:
    listed = await client.get("/api/v1/events")
    assert listed.status_code == 200
    return [item["event"]["id"] for item in listed.json()]


async def test_structured__stores_the_event_and_wakes_the_waiting_run(
    app: App, client: httpx.AsyncClient
) -> None:
    handle = await app.start("await-alert", "db")
    await subscribed(app, handle.run_id)
    fired = event("a-1", subject="db", data={"summary": "disk full"})
    answer = await post(client, fired, STRUCTURED)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": ["a-1"], "duplicates": []}
    got = await handle.result(timeout=10)
    assert got["id"] == "a-1" and got["data"] == {"summary": "disk full"}

    shown = await client.get(
        "/api/v1/events/a-1", params={"source": "https://alerts.example.com/prod"}
    )
    assert shown.status_code == 200
    assert shown.json()["event"] == fired
    assert shown.json()["seq"] >= 1 and shown.json()["received_at"]


async def subscribed(app: App, run_id: str) -> None:
    """Until the run has subscribed (awaiting the condition, with a bound)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not await app.store.subscriptions_of(run_id):
        assert loop.time() < deadline, "the run did not subscribe"
        await asyncio.sleep(0.005)


async def test_structured__plain_json_and_duplicates(client: httpx.AsyncClient) -> None:
    first = await post(client, event("d-1"), {"content-type": "application/json"})
    again = await post(client, event("d-1", data=2), {"content-type": "application/json"})
    assert first.json() == {"accepted": ["d-1"], "duplicates": []}
    assert again.status_code == 202 and again.json() == {"accepted": [], "duplicates": ["d-1"]}
    assert await stored_ids(client) == ["d-1"]


async def test_structured__an_id_is_generated_when_missing(client: httpx.AsyncClient) -> None:
    answer = await post(client, event(None), STRUCTURED)
    assert answer.status_code == 202
    [generated] = answer.json()["accepted"]
    assert generated and await stored_ids(client) == [generated]


async def test_batch__stores_all_events(client: httpx.AsyncClient) -> None:
    answer = await post(client, [event("b-1"), event("b-2"), event("b-1")], BATCH)
    assert answer.status_code == 202
    assert answer.json() == {"accepted": ["b-1", "b-2"], "duplicates": ["b-1"]}
    assert await stored_ids(client) == ["b-2", "b-1"]


async def test_batch__one_invalid_event_stores_nothing(client: httpx.AsyncClient) -> None:
    answer = await post(client, [event("b-1"), event("b-2", time="yesterday")], BATCH)
    body = assert_problem(answer, 400, "invalid_event")
    assert body["attribute"] == "time" and body["index"] == 1
    assert "#1" in body["detail"] and "'time'" in body["detail"]
    assert await stored_ids(client) == []


async def test_hook_sources__are_reserved_for_webhook_receivers(
    client: httpx.AsyncClient,
) -> None:
    spoofed = event("s-1", source="/hooks/github")
    answer = await post(client, spoofed, STRUCTURED)
    body = assert_problem(answer, 400, "reserved_source")
    assert body["attribute"] == "source" and "/hooks/github" in body["detail"]
    answer = await post(client, [event("s-2"), event("s-3", source="/hooks/alertmanager")], BATCH)
    assert assert_problem(answer, 400, "reserved_source")["index"] == 1
    assert await stored_ids(client) == []


async def test_binary__headers_are_attributes_and_the_body_is_data(
    client: httpx.AsyncClient,
) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "bin-1",
        "ce-source": "/github/acme/api",
        "ce-type": "com.github.push",
        "ce-subject": "refs%2Fheads%2Fmain",  # header values are percent-encoded
        "ce-team": "payments",
    }
    as_json = await client.post(
        "/api/v1/events",
        content=b'{"commits": 3}',
        headers={**headers, "content-type": "application/json"},
    )
    assert as_json.status_code == 202, as_json.text
    as_text = await client.post(
        "/api/v1/events",
        content="déploiement".encode(),
        headers={**headers, "ce-id": "bin-2", "content-type": "text/plain; charset=utf-8"},
    )
    as_bytes = await client.post(
        "/api/v1/events",
        content=b"\x00\x01\xff",
        headers={**headers, "ce-id": "bin-3", "content-type": "application/octet-stream"},
    )
    assert as_text.status_code == as_bytes.status_code == 202
    shown = [
        (await client.get(f"/api/v1/events/{i}", params={"source": "/github/acme/api"})).json()
        for i in ("bin-1", "bin-2", "bin-3")
    ]
    first = shown[0]["event"]
    assert first["subject"] == "refs/heads/main" and first["team"] == "payments"
    assert first["datacontenttype"] == "application/json" and first["data"] == {"commits": 3}
    assert shown[1]["event"]["data"] == "déploiement"
    assert shown[2]["event"]["data_base64"] == base64.b64encode(b"\x00\x01\xff").decode()
    assert "data" not in shown[2]["event"]


@pytest.mark.parametrize(
    ("body", "attribute"),
    [
        ({"specversion": "1.0", "id": "x", "source": "s"}, "type"),
        ({"specversion": "0.3", "id": "x", "source": "s", "type": "t"}, "specversion"),
        ({"specversion": "1.0", "id": "x", "source": "", "type": "t"}, "source"),
        ({"specversion": "1.0", "id": "x", "source": "s", "type": "t", "Team": "a"}, "Team"),
        (
            {
                "specversion": "1.0",
                "id": "x",
                "source": "s",
                "type": "t",
                "averyveryverylongname1": 1,
            },
            "averyveryverylongname1",
        ),
        ({"specversion": "1.0", "id": "x", "source": "s", "type": "t", "n": 1.5}, "n"),
        ({"specversion": "1.0", "id": 7, "source": "s", "type": "t"}, "id"),
    ],
)
async def test_invalid_event__400_names_the_attribute(
    client: httpx.AsyncClient, body: dict[str, Any], attribute: str
) -> None:
    answer = await post(client, body, STRUCTURED)
    problem = assert_problem(answer, 400, "invalid_event")
    assert problem["attribute"] == attribute and problem["index"] is None
    assert repr(attribute) in problem["detail"]


async def test_invalid_body__400_and_unknown_media_415(client: httpx.AsyncClient) -> None:
    broken = await client.post("/api/v1/events", content=b"{nope", headers=STRUCTURED)
    assert_problem(broken, 400, "invalid_event")
    not_array = await post(client, event("x"), BATCH)
    assert "array" in assert_problem(not_array, 400, "invalid_event")["detail"]
    text = await client.post(
        "/api/v1/events", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert_problem(text, 415, "unsupported_media_type")
    binary_without_type = await client.post(
        "/api/v1/events",
        content=b"{}",
        headers={"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s"},
    )
    assert assert_problem(binary_without_type, 400, "invalid_event")["attribute"] == "type"


async def test_list__filters_and_limits(client: httpx.AsyncClient) -> None:
    await post(
        client,
        [event("l-1"), event("l-2", type="alert.resolved"), event("l-3", source="ci")],
        BATCH,
    )
    by_type = await client.get("/api/v1/events", params={"type": "alert.firing"})
    assert [e["event"]["id"] for e in by_type.json()] == ["l-3", "l-1"]
    by_source = await client.get("/api/v1/events", params={"source": "ci"})
    assert [e["event"]["id"] for e in by_source.json()] == ["l-3"]
    limited = (await client.get("/api/v1/events", params={"limit": 1})).json()
    assert [e["event"]["id"] for e in limited] == ["l-3"]
    older = await client.get("/api/v1/events", params={"before": limited[0]["seq"]})
    assert [e["event"]["id"] for e in older.json()] == ["l-2", "l-1"]
    assert (await client.get("/api/v1/events", params={"limit": 0})).status_code == 422


async def test_show__unknown_event_is_404(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/events/nope", params={"source": "s"})
    assert_problem(answer, 404, "event_not_found")
    assert (await client.get("/api/v1/events/nope")).status_code == 422  # source is required


async def test_token__required_to_send_and_read_events(app: App) -> None:
    async with client_for(app, TOKEN) as client:
        refused = await post(client, event("t-1"), STRUCTURED)
        assert_problem(refused, 401, "unauthorized")
        assert (await client.get("/api/v1/events")).status_code == 401
        auth = {"authorization": f"Bearer {TOKEN}"}
        accepted = await post(client, event("t-1"), {**STRUCTURED, **auth})
        assert accepted.status_code == 202
        listed = await client.get("/api/v1/events", headers=auth)
        assert [e["event"]["id"] for e in listed.json()] == ["t-1"]


async def test_openapi__documents_the_event_routes(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    intake = document["paths"]["/api/v1/events"]["post"]
    assert set(intake["requestBody"]["content"]) >= {
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    }
    assert "/api/v1/events/{event_id}" in document["paths"]
