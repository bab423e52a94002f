"""E-mail against a real SMTP server (aiosmtpd) and the generic HTTP connector's signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
from smtp_peer import Inbox, free_port, smtp

from opsloom import App, Context
from opsloom.connectors.builtin import email, webhook
from opsloom.connectors.testing import FakeRequest, FakeResponse, FakeVendor
from opsloom.errors import ConnectorPermanentError, ConnectorRetryableError

__all__ = ["smtp"]  # the fixture, from the peer's module


async def test_email__text_and_html_with_the_step_key_as_message_id(
    fresh: App, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp

    @fresh.workflow(name="mail")
    async def mail(ctx: Context) -> dict[str, Any]:
        return await ctx.step(
            email.send_email,
            connection="smtp",
            to=["oncall@acme.test"],
            cc=["lead@acme.test"],
            subject="db-1 disk full",
            text="Disk at 98%.",
            html="<p>Disk at <b>98%</b>.</p>",
        )

    async with fresh:
        await fresh.connections.add_connection(
            "smtp", "email", {"host": "127.0.0.1", "port": port, "from_address": "ops@acme.test"}
        )
        handle = await fresh.start("mail")
        out = await handle.result(timeout=10)
    [(envelope, message)] = inbox.messages
    assert sorted(envelope.rcpt_tos) == ["lead@acme.test", "oncall@acme.test"]
    assert message["Subject"] == "db-1 disk full" and message["From"] == "ops@acme.test"
    assert message["Message-ID"] == out["message_id"] == f"<{handle.run_id}.1@opsloom>"
    parts = {p.get_content_type(): p.get_payload(decode=True) for p in message.walk()}
    assert parts["text/plain"].strip() == b"Disk at 98%."
    assert b"<b>98%</b>" in parts["text/html"]


async def test_email__unknown_recipient_is_permanent_dead_server_retryable(
    ops: App, smtp: tuple[Inbox, int]
) -> None:
    _, port = smtp
    settings = {"host": "127.0.0.1", "port": port, "from_address": "ops@acme.test", "timeout": 5}
    await ops.connections.add_connection("smtp", "email", settings)
    message = {"to": ["nobody@acme.test"], "subject": "x", "text": "x"}
    with pytest.raises(ConnectorPermanentError, match=r"nobody@acme\.test"):
        await ops.connections.call(email.send_email, "smtp", message)
    await ops.connections.add_connection("dead", "email", {**settings, "port": free_port()})
    with pytest.raises(ConnectorRetryableError):
        await ops.connections.call(email.send_email, "dead", {**message, "to": ["a@acme.test"]})


SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


async def test_webhook__standard_webhooks_signature_and_idempotency_key(ops: App) -> None:
    def receive(request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, {"received": request.json})

    with FakeVendor(None, {("POST", "/hooks/deploy"): receive}) as fake:
        await ops.connections.add_connection(
            "hook",
            "webhook",
            {"url": fake.url, "signing_secret": SECRET, "headers": {"X-Team": "ops"}},
        )
        out = await ops.connections.call(
            webhook.send,
            "hook",
            {"path": "/hooks/deploy", "body": {"service": "api"}},
            idempotency_key="run-1:4",
        )
        sent = fake.last()
    assert out == {"status": 200, "body": {"received": {"service": "api"}}}
    headers = sent.headers
    assert headers["webhook-id"] == headers["idempotency-key"] == "run-1:4"
    assert headers["x-team"] == "ops"
    signed = f"run-1:4.{headers['webhook-timestamp']}.".encode() + sent.body
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert SECRET not in str(out)
