"""Approvals over HTTP: inbox, decisions from two clients at once, Slack callbacks, e-mail links."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI

from opsloom import App, Context, FakeClock, RunStatus
from opsloom.api import create_api
from opsloom.api.routes import approvals as approval_routes
from opsloom.api.routes.approvals import ApprovalChannels
from opsloom.approvals.approval import approval
from opsloom.approvals.link import ApprovalLinks
from opsloom.approvals.service import Approvals
from opsloom.approvals.slack import SlackRequestError, slack_signature, verify_slack_request
from opsloom.approvals.spec import ApprovalRequest, Stage
from opsloom.identity.access import Identity
from opsloom.identity.audit import AuditLog
from opsloom.settings import Settings

SLACK_SECRET = "slack-signing-secret"
LINK_SECRET = "link-secret"
PEOPLE = {"rita": (), "alice": ("leads",), "bob": ("leads",), "carol": ("leads",), "vic": ()}


def api_for(app: App) -> FastAPI:
    api = create_api(app, Settings())
    paths = {getattr(route, "path", "") for route in api.routes}
    # Until the factory mounts the approval routers, mount them here the same way.
    if "/api/v1/approvals" not in paths:
        api.include_router(approval_routes.router, prefix="/api/v1")
    if "/hooks/slack/interactions" not in paths:
        api.include_router(approval_routes.public_router)
    api.state.approval_channels = ApprovalChannels(SLACK_SECRET, LINK_SECRET)
    return api


def client(api: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://opsloom.test", headers=headers
    )


async def people(app: App) -> dict[str, str]:
    """Users (approvers, except the viewer ``vic``) and a token for each."""
    identity = Identity(app.store, app.clock)
    tokens: dict[str, str] = {}
    for user, groups in PEOPLE.items():
        roles = ("viewer",) if user == "vic" else ("approver",)
        await identity.add_user(user, roles=roles, slack_id=f"U{user.upper()}", actor="test")
        for group in groups:
            await identity.add_to_group(user, group, actor="test")
        tokens[user] = await identity.create_token(user, name="test", actor="test")
    return tokens


def register(app: App, *stages: Stage) -> None:
    @app.workflow(name="change")
    async def change(ctx: Context) -> dict[str, Any]:
        request = ApprovalRequest(
            title="Rotate the TLS keys", requester="rita", subject={"n": 1}, stages=stages
        )
        return (await approval(ctx, request)).to_dict()


async def open_request(app: App, run_id: str) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        found = [s for s in await app.store.list_approvals(None, 10) if s.request.run_id == run_id]
        if found:
            return found[0].request.id
        assert loop.time() < deadline, "the run opened no request"
        await asyncio.sleep(0.005)


async def test_api__quorum_decided_by_two_clients_at_once(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    # Two Apps (two stores, two writer connections) on one database stand for two API
    # servers; their votes on one quorum stage land at the same moment.
    first, second = make_app(clock=clock), make_app(clock=clock, client=True)
    register(first, Stage("lead", groups=("leads",), mode=2))
    async with first, second:
        tokens = await people(first)
        handle = await first.start("change")
        request_id = await open_request(first, handle.run_id)
        api_one, api_two = api_for(first), api_for(second)
        url = f"/api/v1/approvals/{request_id}/tasks/0/decision"
        async with (
            client(api_one, tokens["alice"]) as alice,
            client(api_two, tokens["bob"]) as bob,
            client(api_two, tokens["alice"]) as alice_again,
        ):
            answers = await asyncio.gather(
                alice.post(url, json={"approve": True, "comment": "a"}),
                bob.post(url, json={"approve": True, "comment": "b"}),
                alice_again.post(url, json={"approve": True, "comment": "a2"}),
            )
        codes = sorted(a.status_code for a in answers)
        result = await handle.result(timeout=10)
        entries = await AuditLog(first.store, clock).entries()
    # Alice's two votes: one counted, one refused as a repeat; Bob's counted.
    assert codes == [200, 200, 409]
    assert [a.json()["code"] for a in answers if a.status_code == 409] == ["approval_conflict"]
    voters = sorted(v["voter"] for v in result["stages"][0]["votes"])
    assert result["approved"] is True
    assert voters == ["alice", "bob"]
    assert sum(1 for e in entries if e.action == "approval.approved") == 2


async def test_api__inbox_question_delegation_and_stats(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    register(app, Stage("lead", users=("alice",), sla=3600, on_sla="deny"))
    async with app:
        tokens = await people(app)
        handle = await app.start("change")
        request_id = await open_request(app, handle.run_id)
        api = api_for(app)
        base = f"/api/v1/approvals/{request_id}"
        async with (
            client(api, tokens["alice"]) as alice,
            client(api, tokens["rita"]) as rita,
            client(api, tokens["vic"]) as vic,
            client(api, tokens["carol"]) as carol,
            client(api) as nobody,
        ):
            assert (await nobody.get("/api/v1/approvals")).status_code == 401
            mine = (await alice.get("/api/v1/approvals", params={"mine": 1})).json()
            assert [t["task"] for t in mine] == [f"{request_id}.0"]
            assert (await carol.get("/api/v1/approvals", params={"mine": 1})).json() == []
            # A viewer lacks the role; an approver not assigned is refused by the request.
            denied = await vic.post(f"{base}/tasks/0/decision", json={"approve": True})
            assert denied.status_code == 403
            other = await carol.post(f"{base}/tasks/0/decision", json={"approve": True})
            assert other.status_code == 403 and other.json()["code"] == "approval_forbidden"
            asked = await alice.post(f"{base}/tasks/0/ask", json={"question": "Which keys?"})
            assert asked.json()["stages"][0]["status"] == "clarifying"
            clock.advance(600)
            answered = await rita.post(f"{base}/answer", json={"answer": "The edge ones."})
            assert answered.json()["stages"][0]["status"] == "open"
            moved = await alice.post(f"{base}/tasks/0/delegate", json={"to": "carol"})
            assert moved.json()["stages"][0]["delegations"] == {"carol": "alice"}
            clock.advance(1200)
            done = await carol.post(
                f"{base}/tasks/0/decision", json={"approve": False, "comment": "not today"}
            )
            assert done.json()["status"] == "denied"
            shown = (await vic.get(base)).json()
            stats = (await vic.get("/api/v1/approvals/stats")).json()
        result = await handle.result(timeout=10)
    assert shown["reason"] == "not today" and shown["clarifications"][0]["answer"]
    assert result == {**result, "approved": False, "reason": "not today", "decided_by": "carol"}
    assert stats == [
        {
            "stage": "lead",
            "stages": 1,
            "decided": 1,
            "p50_seconds": 1800.0,
            "p95_seconds": 1800.0,
            "within_sla": 1.0,  # 30 minutes, 10 of them paused, against an hour
            "escalations": 0,
        }
    ]


def test_slack__signature_matches_slacks_published_example() -> None:
    # The example of Slack's "Verifying requests from Slack" page.
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    timestamp = "1531420618"
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert slack_signature(secret, timestamp, body) == expected
    verify_slack_request(secret, timestamp, expected, body, now=1531420618 + 299)
    with pytest.raises(SlackRequestError, match="stale"):
        verify_slack_request(secret, timestamp, expected, body, now=1531420618 + 301)
    with pytest.raises(SlackRequestError, match="does not match"):
        verify_slack_request(secret, timestamp, expected, body + b"x", now=1531420618)


@pytest.mark.parametrize("timestamp", ["nan", "NaN", "inf", "-inf", "1.5e9", "1531420618.0", "٣"])
def test_slack_signature__a_timestamp_that_is_not_whole_seconds_is_refused(
    timestamp: str,
) -> None:
    # Signed correctly with that timestamp: only the freshness check can refuse it.
    secret, body = "secret", b"payload=%7B%7D"
    signature = slack_signature(secret, timestamp, body)
    with pytest.raises(SlackRequestError, match="whole epoch seconds"):
        verify_slack_request(secret, timestamp, signature, body, now=1531420618)


def _slack_body(slack_user: str, action: str, task: str) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": slack_user},
        "actions": [{"action_id": action, "value": task}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


async def test_slack__button_click_decides_as_the_mapped_user(
    make_app: Callable[..., App],
) -> None:
    # Slack's timestamps are real time: this test runs on the system clock.
    app = make_app()
    register(app, Stage("lead", groups=("leads",)))
    async with app:
        await people(app)
        handle = await app.start("change")
        request_id = await open_request(app, handle.run_id)
        body = _slack_body("UBOB", "approve", f"{request_id}.0")
        now = str(int(time.time()))
        async with client(api_for(app)) as slack:

            def headers(ts: str, signed: bytes = body) -> dict[str, str]:
                return {
                    "X-Slack-Request-Timestamp": ts,
                    "X-Slack-Signature": slack_signature(SLACK_SECRET, ts, signed),
                    "Content-Type": "application/x-www-form-urlencoded",
                }

            stale = str(int(time.time()) - 600)
            refused = await slack.post(
                "/hooks/slack/interactions", content=body, headers=headers(stale)
            )
            forged = await slack.post(
                "/hooks/slack/interactions",
                content=body,
                headers={**headers(now), "X-Slack-Signature": "v0=" + "0" * 64},
            )
            assert (refused.status_code, forged.status_code) == (401, 401)
            assert await app.store.status_of(handle.run_id) is not RunStatus.COMPLETED
            own = _slack_body("URITA", "approve", f"{request_id}.0")
            self_approval = await slack.post(
                "/hooks/slack/interactions", content=own, headers=headers(now, own)
            )
            assert "separation of duties" in self_approval.json()["text"]
            ok = await slack.post("/hooks/slack/interactions", content=body, headers=headers(now))
            assert ok.status_code == 200 and ok.json()["text"].startswith("Approved")
        result = await handle.result(timeout=10)
        entries = await AuditLog(app.store, app.clock).entries()
    assert result["approved"] is True and result["decided_by"] == "bob"
    assert [e.actor for e in entries if e.action == "approval.approved"] == ["slack as bob"]


async def test_links__get_confirms_post_decides_once_and_links_expire(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    register(app, Stage("lead", users=("alice", "bob"), mode="all"))
    async with app:
        await people(app)
        handle = await app.start("change")
        request_id = await open_request(app, handle.run_id)
        service = Approvals(
            app.store, clock, Identity(app.store, clock), AuditLog(app.store, clock)
        )
        links = ApprovalLinks(service, LINK_SECRET)
        token = await links.issue(f"{request_id}.0", "alice", approve=True, ttl=3600)
        late = await links.issue(f"{request_id}.0", "bob", approve=True, ttl=60)
        async with client(api_for(app)) as browser:
            page = await browser.get(f"/approvals/links/{token}")
            assert page.status_code == 200 and "Approve this request?" in page.text
            assert (await service.show(request_id))["stages"][0]["votes"] == []
            tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
            assert (await browser.post(f"/approvals/links/{tampered}")).status_code == 410
            used = await browser.post(f"/approvals/links/{token}", content=b"comment=fine")
            assert used.status_code == 200
            again = await browser.post(f"/approvals/links/{token}")
            assert again.status_code == 410
            clock.advance(61)
            expired = await browser.post(f"/approvals/links/{late}")
            assert expired.status_code == 410
        shown = await service.show(request_id)
    votes = shown["stages"][0]["votes"]
    assert [(v["voter"], v["comment"]) for v in votes] == [("alice", "fine")]
    assert shown["status"] == "pending"  # "all" still waits for bob


async def test_api__bodies_of_any_content_type_and_a_denial_without_reason_is_422(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    register(app, Stage("lead", users=("alice",)))
    async with app:
        tokens = await people(app)
        handle = await app.start("change")
        request_id = await open_request(app, handle.run_id)
        url = f"/api/v1/approvals/{request_id}/tasks/0/decision"
        async with client(api_for(app), tokens["alice"]) as alice:
            # curl -d sends JSON labelled as a form: it is read as JSON all the same.
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            unexplained = await alice.post(url, content=b'{"approve": false}', headers=form)
            denied = await alice.post(
                url, content=b'{"approve": false, "comment": "not now"}', headers=form
            )
        result = await handle.result(timeout=10)
    assert unexplained.status_code == 422, unexplained.text
    assert unexplained.json()["code"] == "invalid_approval"
    assert "needs a reason" in unexplained.json()["detail"]
    assert denied.status_code == 200, denied.text
    assert denied.json()["status"] == "denied"
    assert denied.json()["reason"] == "not now"
    assert result["approved"] is False
