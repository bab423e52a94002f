"""``/api/v1/connections`` and ``/api/v1/connectors`` through ASGI, against a real App."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from vendors import slack_fake

from opsloom import App
from opsloom.api import create_api
from opsloom.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from authkit import auth_headers

TOKEN = "xoxb-api-secret-token"


def client_for(app: App, headers: dict[str, str]) -> httpx.AsyncClient:
    api = create_api(app, Settings())
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://opsloom.test", headers=headers
    )


async def test_connections_api__secrets_in_never_out(ops: App) -> None:
    admin = await auth_headers(ops, "root", ["admin"])
    viewer = await auth_headers(ops, "watcher", ["viewer"])
    with slack_fake() as fake:
        async with client_for(ops, admin) as client:
            body = {
                "name": "ops-slack",
                "connector": "slack",
                "settings": {"token": TOKEN, "api_url": f"{fake.url}/api"},
            }
            created = await client.post("/api/v1/connections", json=body)
            assert created.status_code == 201, created.text
            assert created.json()["secrets"] == ["token"]
            again = await client.post("/api/v1/connections", json=body)
            assert again.status_code == 422 and "exists" in again.json()["detail"]
            bad = await client.post(
                "/api/v1/connections", json={**body, "name": "b", "settings": {}}
            )
            assert bad.status_code == 422 and "token" in bad.json()["detail"]
            changed = await client.patch(
                "/api/v1/connections/ops-slack", json={"settings": {"timeout": 5}}
            )
            assert changed.status_code == 200 and changed.json()["settings"]["timeout"] == 5
            tested = await client.post("/api/v1/connections/ops-slack/test")
            assert tested.status_code == 200 and "Subarachnoid" in tested.json()["result"]
            listed = await client.get("/api/v1/connections")
            assert [c["breaker"]["state"] for c in listed.json()] == ["closed"]
            connectors = await client.get("/api/v1/connectors")
            slack = next(c for c in connectors.json() if c["name"] == "slack")
            assert slack["connections"] == ["ops-slack"]
            for answer in (created, changed, tested, listed, connectors):
                assert TOKEN not in answer.text
            missing = await client.get("/api/v1/connections/nope")
            assert missing.status_code == 404
            assert missing.json()["code"] == "connection_not_found"
        async with client_for(ops, viewer) as client:
            assert (await client.get("/api/v1/connections/ops-slack")).status_code == 200
            refused = await client.delete("/api/v1/connections/ops-slack")
            assert refused.status_code == 403
        async with client_for(ops, admin) as client:
            assert (await client.delete("/api/v1/connections/ops-slack")).status_code == 204
            assert (await client.delete("/api/v1/connections/ops-slack")).status_code == 404
    assert fake.problems == []
