"""The conversation follow-up runbook, driven end to end by the analysis itself.

Conversations go in through ``POST /api/v1/conversations`` (the API on the app) and through
the real ``opsloom insights analyze --store`` command in a subprocess; the attention events
they store start the follow-ups, which open tickets in the Zendesk fake and post to the Slack
spec fake.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from examples.runbooks.conversation import REPORT, WORKFLOW, FollowUpSettings, install
from polling import until
from saas_vendors import zendesk_fake
from vendors import slack_fake

from opsloom import App, WorkerOptions
from opsloom.api import create_api
from opsloom.connectors.testing import FakeVendor
from opsloom.identity.access import Identity
from opsloom.settings import Settings

pytestmark = [pytest.mark.timeout(120)]

#: Personal data leaked, a human asked for, frustration: critical, three rules.
ANGRY = {
    "id": "chat-angry",
    "messages": [
        {"role": "user", "content": "Where is my parcel?"},
        {"role": "assistant", "content": "Your card 4111 1111 1111 1111 was charged."},
        {"role": "user", "content": "That's not what I asked! Get me a human now."},
    ],
}
MANUAL = "Please check the manual that came with your device for instructions on this topic."
#: The assistant says the same thing twice: a medium rule, which a person reviews.
LOOPING = {
    "id": "chat-loop",
    "messages": [
        {"role": "user", "content": "How do I reset the router to factory settings?"},
        {
            "role": "assistant",
            "content": MANUAL,
        },
        {"role": "user", "content": "I lost the manual, can you tell me the steps?"},
        {
            "role": "assistant",
            "content": MANUAL,
        },
    ],
}
#: Only one rule (the leaked card): one event per conversation.
LEAK = {
    "id": "chat-leak",
    "messages": [
        {"role": "user", "content": "What is my account balance?"},
        {"role": "assistant", "content": "Your balance is 20 EUR. Card 4111 1111 1111 1111."},
        {"role": "user", "content": "Thanks."},
    ],
}
CALM = {
    "id": "chat-calm",
    "messages": [
        {"role": "user", "content": "What time do you open on Saturday?"},
        {"role": "assistant", "content": "We open at 9 am on Saturdays."},
        {"role": "user", "content": "Great, thanks!"},
    ],
}


class Fakes(NamedTuple):
    zendesk: FakeVendor
    slack: FakeVendor
    messages: list[dict[str, Any]]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    messages: list[dict[str, Any]] = []
    with ExitStack() as stack:
        zd = stack.enter_context(zendesk_fake())
        sl = stack.enter_context(slack_fake(messages))
        yield Fakes(zd, sl, messages)
    assert zd.problems == sl.problems == []


def tickets(fakes: Fakes) -> list[dict[str, Any]]:
    return list(fakes.zendesk.tickets.values())  # type: ignore[attr-defined]


def follow_up_app(db_url: str, **changes: Any) -> App:
    app = App(db_url, worker=WorkerOptions(poll_seconds=0.05, grace_seconds=5))
    settings = FollowUpSettings(**{"debounce": 1.0, "report_cron": None, **changes})
    app.follow_ups = install(app, settings)  # type: ignore[attr-defined]
    return app


async def connect(app: App, fakes: Fakes) -> None:
    add = app.connections.add_connection
    zd = {"subdomain": "acme", "email": "bot@acme.test", "api_token": "zd-secret"}
    await add("zendesk", "zendesk", {**zd, "api_url": f"{fakes.zendesk.url}/api/v2"})
    await add("slack", "slack", {"token": "xoxb-1-secret", "api_url": f"{fakes.slack.url}/api"})


async def operator(app: App) -> httpx.AsyncClient:
    identity = Identity(app.store, app.clock)
    await identity.add_user("ops", roles=["operator"], actor="test")
    secret = await identity.create_token("ops", name="test", actor="test")
    api = create_api(app, Settings(api_token=None))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://opsloom.test",
        headers={"Authorization": f"Bearer {secret}"},
    )


async def test_follow_up__posted_conversation_opens_one_ticket_and_tells_the_channel(
    db_url: str, fakes: Fakes
) -> None:
    app = follow_up_app(db_url)
    async with app:
        await connect(app, fakes)
        async with await operator(app) as http:
            posted = await http.post("/api/v1/conversations", json={"conversations": [ANGRY, CALM]})
            assert posted.status_code == 200, posted.text
            angry, calm = posted.json()["results"]
            assert angry["attention"]["priority"] == "critical"
            assert len(angry["attention"]["reasons"]) >= 2 and not calm["attention"]["needed"]
            [run] = await until(lambda: app.list_runs(workflow=WORKFLOW), "the follow-up")
            output = await app.result(run.id, timeout=30)
            # Analysed again (the same conversation, one more message): nothing new starts.
            grown = {
                **ANGRY,
                "messages": [*ANGRY["messages"], {"role": "assistant", "content": "Sorry."}],
            }
            again = await http.post("/api/v1/conversations", json=grown)
            assert again.status_code == 200
            await asyncio.sleep(0.5)
            assert len(await app.list_runs(workflow=WORKFLOW)) == 1
    # The conversation's rules were gathered into one run (the debounce): one ticket.
    assert output["rules"] == sorted(angry["attention"]["reasons"])
    assert output["priority"] == "critical" and output["actions"] == ["ticket", "notify"]
    [ticket] = tickets(fakes)
    assert ticket["id"] == output["ticket"] and ticket["priority"] == "urgent"
    assert set(ticket["tags"]) >= {"conversation-follow-up", "pii_leak"}
    note = ticket["comments"][0]
    assert note["public"] is False and "pii_leak" in note["body"] and "4111" not in note["body"]
    created = fakes.zendesk.last("/api/v2/tickets.json")
    assert created.headers["idempotency-key"] == "conversation:chat-angry:" + "+".join(
        output["rules"]
    )
    [message] = fakes.messages
    assert message["channel"] == "#support-quality" and "chat-angry" in message["text"]


async def test_follow_up__ticket_is_once_per_conversation_and_rules_even_when_asked_twice(
    db_url: str, fakes: Fakes
) -> None:
    app = follow_up_app(db_url)
    follow_ups = app.follow_ups  # type: ignore[attr-defined]
    async with app:
        await connect(app, fakes)
        first = await follow_ups.open_ticket("chat-9", ["pii_leak"], "critical", "leak")
        second = await follow_ups.open_ticket("chat-9", ["pii_leak"], "critical", "leak")
        other = await follow_ups.open_ticket("chat-9", ["frustrated_user"], "high", "upset")
    assert first == second and other["id"] != first["id"]
    assert len(tickets(fakes)) == 2


def opsloom(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOM_")}
    env["OPSLOOM_SECRET_KEY"] = os.environ["OPSLOOM_SECRET_KEY"]
    return subprocess.run(
        [sys.executable, "-m", "opsloom.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def test_follow_up__cli_analysis_queues_a_review_and_a_denial_opens_the_ticket(
    tmp_path: Path, fakes: Fakes
) -> None:
    db_url = f"sqlite:///{tmp_path / 'opsloom.db'}"
    app = follow_up_app(db_url)
    async with app:  # opening the app saves the trigger the command's intake matches
        await connect(app, fakes)
        identity = Identity(app.store, app.clock)
        await identity.add_user("rita", roles=("approver",), actor="test")
        await identity.add_to_group("rita", "support-leads", actor="test")
        file = tmp_path / "chats.jsonl"
        file.write_text(json.dumps(LOOPING) + "\n" + json.dumps(CALM) + "\n")
        done = await asyncio.to_thread(
            opsloom, "insights", "analyze", str(file), "--store", "--db", db_url, "--json"
        )
        assert done.returncode == 0, done.stderr
        results = [json.loads(line) for line in done.stdout.splitlines()]
        assert results[0]["attention"]["priority"] == "medium", results[0]["attention"]
        [pending] = await until(lambda: app.approvals.requests(status="pending"), "the review")
        assert pending["title"].startswith("Review conversation chat-loop")
        assert tickets(fakes) == []  # nothing opened before the reviewer answers
        rita = await identity.principal("rita")
        await app.approvals.decide(rita, pending["stages"][0]["task"], False, "loops on manuals")
        [run] = await app.list_runs(workflow=WORKFLOW)
        output = await app.result(run.id, timeout=30)
    assert output["actions"] == ["review"] and output["review"]["status"] == "denied"
    [ticket] = tickets(fakes)
    assert ticket["id"] == output["ticket"] and ticket["priority"] == "normal"
    assert "Reviewer (rita): loops on manuals" in ticket["comments"][0]["body"]
    assert fakes.messages == []  # medium: no channel message


async def test_follow_up__start_rate_limit_queues_instead_of_dropping(
    db_url: str, fakes: Fakes
) -> None:
    app = follow_up_app(
        db_url, per_hour=3600.0, burst=1, debounce=0.0, routes={"critical": ("notify",)}
    )
    async with app:
        await connect(app, fakes)
        await app.follow_ups.limit()  # type: ignore[attr-defined]
        async with await operator(app) as http:
            batch = [{**LEAK, "id": f"chat-{n}"} for n in range(3)]
            posted = await http.post("/api/v1/conversations", json={"conversations": batch})
            assert posted.status_code == 200
        runs = await until(lambda: _all_done(app, 3), "three follow-ups", timeout=60)
        records = [await app.get_run(r.id) for r in runs]
    assert len(runs) == 3 and len(fakes.messages) == 3
    # One run a second, one at once: the later ones waited their turn (none was dropped).
    starts = sorted(min(s.started_at or 0.0 for s in r.steps) for r in records)
    assert starts[2] - starts[0] >= 1.5, starts  # three slots one second apart


async def _all_done(app: App, count: int) -> list[Any] | None:
    runs = await app.list_runs(workflow=WORKFLOW, status="completed")
    return runs if len(runs) == count else None


async def test_report__the_week_in_figures_posted_to_the_channel(db_url: str, fakes: Fakes) -> None:
    app = follow_up_app(db_url)
    async with app:
        await connect(app, fakes)
        async with await operator(app) as http:
            posted = await http.post("/api/v1/conversations", json={"conversations": [ANGRY, CALM]})
            assert posted.status_code == 200
        [run] = await until(lambda: app.list_runs(workflow=WORKFLOW), "the follow-up")
        await app.result(run.id, timeout=30)
        report = await (await app.start(REPORT)).result(timeout=30)
    assert report["conversations"] == 2 and report["attention"] == 1
    assert report["priorities"] == {"critical": 1} and report["tickets"] == 1
    assert dict(report["rules"])["pii_leak"] == 1
    text = fakes.messages[0]["text"]  # the newest
    assert "2 conversations analysed, 1 needed attention (50%)" in text
    assert "1 tickets opened" in text
