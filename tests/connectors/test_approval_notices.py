"""Approvals reach people: Slack (spec fake), e-mail (a real SMTP peer) and Teams, end to end.

One approval is driven through the messages themselves: the stage's Slack channel gets a
message with buttons, each person an e-mail with their own one-time links; a question asked
from Slack reaches the requester, the answer and the decision (from an e-mail link, or a
button) update the Slack message in place, and the run moves on.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from smtp_peer import Inbox, smtp
from vendors import slack_fake, teams_fake

from opsloom import App, Context, FakeClock, RunStatus, WorkerOptions
from opsloom.api import create_api
from opsloom.api.routes.approvals import ApprovalChannels
from opsloom.approvals.approval import approval
from opsloom.approvals.notice import load_notices
from opsloom.approvals.slack import slack_signature
from opsloom.approvals.spec import ApprovalRequest, Approvers, Stage
from opsloom.connectors.testing import FakeResponse, FakeVendor
from opsloom.errors import ConfigurationError
from opsloom.identity.access import Identity
from opsloom.settings import Settings
from opsloom.store.approval import notices_run

__all__ = ["smtp"]  # the fixture, from the peer's module

SLACK_SECRET = "slack-signing-secret"
LINK_SECRET = "link-secret"
CHANNEL = "C0APPROVALS"
PEOPLE = {
    "rita": ("rita@acme.test", None, ()),
    "alice": ("alice@acme.test", "UALICE", ()),
    "bob": (None, "UBOB", ("leads",)),
    "carol": (None, "UCAROL", ("leads",)),
    "mona": ("mona@acme.test", None, ("managers",)),
}


@pytest.fixture
def teams() -> Iterator[FakeVendor]:
    with teams_fake() as vendor:
        yield vendor
    assert vendor.problems == []


class Peers(NamedTuple):
    """The SMTP inbox, the Slack fake with the messages it holds, the Teams fake, the app."""

    inbox: Inbox
    slack: FakeVendor
    slack_messages: list[dict[str, Any]]
    teams: FakeVendor
    app: App
    port: int = 0


@pytest.fixture
def peers(
    db_url: str, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int], teams: FakeVendor
) -> Iterator[Peers]:
    """An unopened app that tells approvers through the peers (see :func:`connect`)."""
    inbox, port = smtp
    messages: list[dict[str, Any]] = []
    with slack_fake(messages) as slack:
        yield Peers(inbox, slack, messages, teams, build(db_url, clock, tmp_path), port)
    assert slack.problems == []


def notices_file(tmp_path: Path) -> Path:
    path = tmp_path / "notices.yaml"
    path.write_text(
        "public_url: http://opsloom.test/\n"
        "defaults:\n"
        "  - email: ops-mail\n"
        "groups:\n"
        "  leads:\n"
        f"    - {{slack: ops-slack, channel: {CHANNEL}}}\n"
        "    - {teams: ops-teams}\n"
    )
    return path


def build(db_url: str, clock: FakeClock, tmp_path: Path) -> App:
    settings = Settings(
        approval_notices_file=notices_file(tmp_path),
        approval_link_secret=LINK_SECRET,
        slack_signing_secret=SLACK_SECRET,
    )
    options = WorkerOptions(poll_seconds=0.05, reap_seconds=0.1, grace_seconds=5)
    app = App(db_url, clock=clock, worker=options, settings=settings)

    @app.workflow(name="restart")
    async def restart(ctx: Context) -> dict[str, Any]:
        request = ApprovalRequest(
            title="Restart payments-db",
            requester="rita",
            subject={"service": "payments-db"},
            risk="high",
            stages=(
                Stage(
                    "lead",
                    users=("alice",),
                    groups=("leads",),
                    sla=3600,
                    escalate_to=(Approvers(groups=("managers",)),),
                ),
            ),
        )
        return (await approval(ctx, request)).to_dict()

    return app


async def connect(app: App, peers: Peers) -> None:
    """People, their groups and the connections to the peers."""
    slack, teams, port = peers.slack, peers.teams, peers.port
    identity = Identity(app.store, app.clock)
    for user, (mail, slack_id, groups) in PEOPLE.items():
        await identity.add_user(
            user, roles=("approver",), email=mail, slack_id=slack_id, actor="test"
        )
        for group in groups:
            await identity.add_to_group(user, group, actor="test")
    add = app.connections.add_connection
    await add("ops-slack", "slack", {"token": "xoxb-1-secret", "api_url": f"{slack.url}/api"})
    await add(
        "ops-mail", "email", {"host": "127.0.0.1", "port": port, "from_address": "ops@acme.test"}
    )
    hook = f"{teams.url}/workflows/abc/triggers/manual/paths/invoke?sig=secret"
    await add("ops-teams", "teams", {"webhook_url": hook})


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        done = check()
        if not isinstance(done, bool):
            done = await done
        if done:
            return
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def browser(app: App) -> httpx.AsyncClient:
    api = create_api(app, app.settings)
    api.state.approval_channels = ApprovalChannels(SLACK_SECRET, LINK_SECRET)
    transport = httpx.ASGITransport(app=api)
    return httpx.AsyncClient(transport=transport, base_url="http://opsloom.test")


async def click(
    client: httpx.AsyncClient, clock: FakeClock, action: dict[str, Any], user: str
) -> httpx.Response:
    """Post a Slack interaction callback signed as Slack signs it."""
    payload = {"type": "block_actions", "user": {"id": user}, "actions": [action]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(clock.now()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(SLACK_SECRET, ts, body),
    }
    return await client.post("/hooks/slack/interactions", content=body, headers=headers)


def elements(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def buttons(message: dict[str, Any]) -> list[str]:
    return [e.get("action_id", "") for e in elements(message)]


def mails_to(inbox: Inbox, address: str) -> list[Any]:
    return [m for envelope, m in inbox.messages if address in envelope.rcpt_tos]


def text_of(mail: Any) -> str:
    part = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    return str(part.get_payload(decode=True).decode())


async def test_notices__slack_email_and_teams_end_to_end(peers: Peers, clock: FakeClock) -> None:
    inbox, _slack, slack_messages, teams, app, _ = peers
    async with app, browser(app) as client:
        await connect(app, peers)
        handle = await app.start("restart")
        # Told: the group's channel (buttons), alice by mail (her links), the Teams channel.
        await until(lambda: bool(slack_messages) and bool(mails_to(inbox, "alice@acme.test")))
        await until(lambda: any(r.path.startswith("/workflows/") for r in teams.requests))
        [message] = slack_messages
        assert message["channel"] == CHANNEL
        assert buttons(message) == ["approve", "deny", "open"]
        task = next(
            e["value"]
            for b in message["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == "approve"
        )
        assert mails_to(inbox, "rita@acme.test") == []  # the requester decides nothing
        card = teams.last().json["attachments"][0]["content"]
        assert card["actions"][0]["url"].startswith("http://opsloom.test/approvals/")

        # bob asks from Slack: rita is told, and the message waits without its buttons.
        ask = {
            "type": "plain_text_input",
            "action_id": "ask",
            "block_id": f"ask:{task}",
            "value": "Which replica first?",
        }
        asked = await click(client, clock, ask, "UBOB")
        assert asked.status_code == 200 and "Asked" in asked.json()["text"]
        await until(lambda: bool(mails_to(inbox, "rita@acme.test")))
        assert "Which replica first?" in text_of(mails_to(inbox, "rita@acme.test")[0])
        await until(lambda: buttons(slack_messages[0]) == ["open"])
        assert "Paused until rita answers" in json.dumps(slack_messages[0]["blocks"])

        # rita answers: the buttons are back, with the question and its answer.
        rita = await Identity(app.store, clock).principal("rita")
        await app.approvals.answer(rita, task.rpartition(".")[0], "replica 2")
        await until(lambda: buttons(slack_messages[0]) == ["approve", "deny", "open"])
        assert "replica 2" in json.dumps(slack_messages[0]["blocks"])

        # alice decides from her e-mail: the page confirms, the form decides.
        link = re.search(r"Approve: (\S+)", text_of(mails_to(inbox, "alice@acme.test")[0]))
        assert link is not None
        path = urlsplit(link.group(1)).path
        page = await client.get(path)
        assert page.status_code == 200 and "Approve this request?" in page.text
        used = await client.post(path, content=b"comment=go+ahead")
        assert used.status_code == 200
        result = await handle.result(timeout=15)
        assert result["approved"] is True and result["decided_by"] == "alice"

        # The message is updated in place: no buttons, who approved; Teams hears the end.
        await until(
            lambda: (
                buttons(slack_messages[0]) == ["open"]
                and "Approved by alice" in json.dumps(slack_messages[0]["blocks"])
            )
        )
        notices = await app.result(notices_run(result["request_id"]), timeout=15)
        ends = [r for r in teams.requests if "Approved by alice" in json.dumps(r.json or {})]
    assert len(slack_messages) == 1  # one message, updated; never posted twice
    assert len(ends) == 1
    assert notices["failed"] == 0
    assert len(mails_to(inbox, "alice@acme.test")) == 1


async def test_notices__the_approve_button_decides_and_the_message_says_so(
    peers: Peers, clock: FakeClock
) -> None:
    _, slack, slack_messages, _teams, app, _ = peers
    async with app, browser(app) as client:
        await connect(app, peers)
        handle = await app.start("restart")
        await until(lambda: bool(slack_messages))
        [approve] = [e for e in elements(slack_messages[0]) if e.get("action_id") == "approve"]
        own = await click(client, clock, approve, "URITA")  # not linked to an approver: refused
        assert "not linked" in own.json()["text"]
        clicked = await click(client, clock, approve, "UCAROL")
        assert clicked.json()["text"].startswith("Approved")
        result = await handle.result(timeout=15)
        await until(lambda: "Approved by carol" in json.dumps(slack_messages[0]["blocks"]))
    assert result["decided_by"] == "carol" and buttons(slack_messages[0]) == ["open"]
    assert [r.path for r in slack.requests].count("/api/chat.postMessage") == 1


async def test_notices__escalation_tells_the_next_rung_and_stale_buttons_are_refused(
    peers: Peers, clock: FakeClock
) -> None:
    inbox, _slack, slack_messages, _teams, app, _ = peers
    async with app, browser(app) as client:
        await connect(app, peers)
        handle = await app.start("restart")
        await until(lambda: bool(slack_messages))
        # Nobody decides within the SLA: the managers' rung is told (mona, by mail) and the
        # leads' message says the stage moved on.
        clock.advance(3601)
        await until(lambda: bool(mails_to(inbox, "mona@acme.test")))
        await until(
            lambda: "Escalated to group managers" in json.dumps(slack_messages[0]["blocks"])
        )
        assert buttons(slack_messages[0]) == ["open"]
        link = re.search(r"Approve: (\S+)", text_of(mails_to(inbox, "mona@acme.test")[0]))
        assert link is not None
        # A button of the earlier rung (an old copy of the message) is refused, and says so.
        task = (await app.approvals.requests())[0]["stages"][0]["task"]
        stale = {"action_id": "approve", "value": task}
        refused = await click(client, clock, stale, "UBOB")
        assert "Not recorded" in refused.json()["text"]
        page = urlsplit(link.group(1)).path
        assert (await client.post(page, content=b"comment=ok")).status_code == 200
        result = await handle.result(timeout=15)
        await until(lambda: "Approved by mona" in json.dumps(slack_messages[0]["blocks"]))
    assert result["decided_by"] == "mona" and result["stages"][0]["escalations"] == 1


async def test_notices__a_dead_slack_holds_up_nothing_and_a_retry_posts_once(
    peers: Peers, clock: FakeClock
) -> None:
    inbox, slack, slack_messages, _teams, app, _ = peers
    async with app, browser(app) as client:
        await connect(app, peers)
        down = FakeResponse(503, {"ok": False, "error": "service_unavailable"})
        slack.fail_next(*[down] * 3)
        handle = await app.start("restart")
        await until(lambda: bool(mails_to(inbox, "alice@acme.test")))
        # Slack is down, yet alice decides from her mail and the run moves on at once.
        link = re.search(r"Approve: (\S+)", text_of(mails_to(inbox, "alice@acme.test")[0]))
        assert link is not None
        assert (await client.post(urlsplit(link.group(1)).path)).status_code == 200
        result = await handle.result(timeout=15)
        assert result["approved"] is True
        run = await app.get_run(notices_run(result["request_id"]))
        assert run.status is not RunStatus.COMPLETED and slack_messages == []
        # Slack comes back: the retries (durable timers) post the message, already decided.
        for _ in range(6):
            clock.advance(60)
            await asyncio.sleep(0.2)
            if slack_messages:
                break
        notices = await app.result(run.id, timeout=15)
    [message] = slack_messages
    assert "Approved by alice" in json.dumps(message["blocks"]) and buttons(message) == ["open"]
    assert notices["failed"] == 0


async def test_notices__a_post_whose_answer_was_lost_is_not_posted_again(
    db_url: str, clock: FakeClock, tmp_path: Path, smtp: tuple[Inbox, int], teams: FakeVendor
) -> None:
    inbox, port = smtp
    app = build(db_url, clock, tmp_path)
    slack_messages: list[dict[str, Any]] = []
    # Slack posts the message but the answer says it failed: the retry finds it by its marker.
    with slack_fake(slack_messages, lose_answers=1) as slack:
        async with app:
            await connect(app, Peers(inbox, slack, slack_messages, teams, app, port))
            await app.start("restart")
            await until(lambda: bool(slack_messages))
            for _ in range(5):
                clock.advance(5)
                await asyncio.sleep(0.1)
            history = [r for r in slack.requests if r.path == "/api/conversations.history"]
            assert history, "the retry looked for the message first"
            request = (await app.approvals.requests())[0]
            run = await app.get_run(notices_run(request["id"]))
            posts = [s for s in run.steps if s.name == "approval.notice.slack_post"]
            assert posts and posts[0].attempts == 2
        assert slack.problems == []
    assert len(slack_messages) == 1


def test_notices_file__errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "notices.yaml"
    path.write_text("public_url: http://x\ngroups:\n  leads:\n    - {email: ops-mail}\n")
    with pytest.raises(ConfigurationError, match=r"notices.yaml.*groups.*one-time links"):
        load_notices(path)
    path.write_text("public_url: http://x\ndefaults:\n  - {slack: a, email: b}\n")
    with pytest.raises(ConfigurationError, match=r"defaults\.0.*exactly one"):
        load_notices(path)
    path.write_text("defaults: []\n")
    with pytest.raises(ConfigurationError, match="public_url"):
        load_notices(path)
