"""``/api/v1/conversations`` against a real App (SQLite file), through ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from payloads import OPENAI_TOOLS, otel_genai

from opsloom import App, Context
from opsloom.api import create_api
from opsloom.identity.access import Identity
from opsloom.settings import Settings
from opsloom.store.event import EventQuery

PROBLEM = "application/problem+json"

ANGRY = {
    "id": "angry-2",
    "messages": [
        {"role": "user", "content": "Where is my parcel?"},
        {"role": "assistant", "content": "Your card 4111 1111 1111 1111 was charged."},
        {"role": "user", "content": "That's not what I asked! Get me a human now."},
    ],
}


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    app = App(db_url)

    @app.workflow(name="review-conversation")
    async def review(ctx: Context, event: dict[str, Any]) -> dict[str, Any]:
        return {"conversation": event["subject"], "rule": event["rule"]}

    # A follow-up workflow per conversation whose assistant leaked personal data.
    app.trigger(
        "review-conversation",
        on={"type": "io.opsloom.conversation.attention.v1", "rule": "pii_leak"},
    )
    async with app:
        yield app


async def token(app: App, user: str, role: str) -> dict[str, str]:
    identity = Identity(app.store, app.clock)
    await identity.add_user(user, roles=[role], actor="test")
    secret = await identity.create_token(user, name="test", actor="test")
    return {"Authorization": f"Bearer {secret}"}


def client(app: App, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    api = create_api(app, Settings(api_token=None))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://opsloom.test", headers=headers
    )


async def test_post_then_get__analysis_round_trip_and_follow_up_run(app: App) -> None:
    async with client(app, await token(app, "ops", "operator")) as http:
        posted = await http.post("/api/v1/conversations", json=ANGRY)
        assert posted.status_code == 200, posted.text
        [result] = posted.json()["results"]
        assert result["conversation_id"] == "angry-2"
        assert result["attention"]["priority"] == "critical"
        assert len(result["events"]) == 1 + len(result["attention"]["reasons"])
        got = await http.get("/api/v1/conversations/angry-2/analysis")
        assert got.status_code == 200
        analysis = got.json()
        assert analysis["version"] == "1"
        assert "4111 1111" not in got.text
        assert analysis["turns"][1]["pii"] == [{"type": "card", "value": "[card ***1111]"}]
        again = await http.post("/api/v1/conversations", json=ANGRY)
        assert again.json()["results"][0]["events"] == []
        assert sorted(again.json()["results"][0]["duplicates"]) == sorted(result["events"])
    runs = await app.list_runs(workflow="review-conversation")
    assert len(runs) == 1
    output = await app.result(runs[0].id, timeout=30)
    assert output == {"conversation": "angry-2", "rule": "pii_leak"}


async def test_post__batch_of_mixed_formats(app: App) -> None:
    async with client(app, await token(app, "ops", "operator")) as http:
        posted = await http.post(
            "/api/v1/conversations", json={"conversations": [OPENAI_TOOLS, otel_genai()]}
        )
        assert posted.status_code == 200, posted.text
        ids = [r["conversation_id"] for r in posted.json()["results"]]
        assert ids == ["conv-weather-1", "ops-chat-7"]


async def test_post__bad_input_is_400_naming_the_part(app: App) -> None:
    async with client(app, await token(app, "ops", "operator")) as http:
        bad = {"conversations": [ANGRY, {"messages": [{"role": "robot", "content": "x"}]}]}
        answer = await http.post("/api/v1/conversations", json=bad)
        assert answer.status_code == 400
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["where"] == "conversations[1].messages[0].role"
        not_json = await http.post("/api/v1/conversations", content=b"{oops")
        assert not_json.status_code == 400
    assert await app.store.list_events(EventQuery()) == []


async def test_get__unknown_conversation_is_404(app: App) -> None:
    async with client(app, await token(app, "viewer", "viewer")) as http:
        answer = await http.get("/api/v1/conversations/nope/analysis")
        assert answer.status_code == 404
        assert answer.json()["code"] == "analysis_not_found"


async def test_roles__viewer_reads_operator_posts(app: App) -> None:
    async with client(app) as http:
        assert (await http.post("/api/v1/conversations", json=ANGRY)).status_code == 401
    async with client(app, await token(app, "viewer", "viewer")) as http:
        denied = await http.post("/api/v1/conversations", json=ANGRY)
        assert denied.status_code == 403
        assert denied.json()["role"] == "operator"
