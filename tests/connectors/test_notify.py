"""The apprise-based notify connector against loopback targets of apprise's generic JSON and
form notifications (no network)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from saas_vendors import apprise_target

from opsloom import App
from opsloom.connectors.builtin import notify
from opsloom.connectors.testing import FakeVendor
from opsloom.errors import ConnectorRetryableError, InputError

TOKEN = "hook-token-0123456789"


@pytest.fixture
def target() -> Iterator[FakeVendor]:
    with apprise_target() as vendor:
        yield vendor
    assert vendor.problems == []


async def test_send__every_url_gets_the_message(ops: App, target: FakeVendor) -> None:
    port = target.port
    urls = (
        f"json://127.0.0.1:{port}/hooks/json?+X-Token={TOKEN}, form://127.0.0.1:{port}/hooks/form"
    )
    await ops.connections.add_connection("chat", "notify", {"urls": urls})
    out = await ops.connections.call(
        notify.send,
        "chat",
        {"title": "db-1", "body": "**disk** at 98%", "type": "failure", "format": "markdown"},
    )
    assert out == {
        "delivered": [
            f"JSON json://127.0.0.1:{port}/hooks/json",
            f"Form form://127.0.0.1:{port}/hooks/form",
        ],
        "failed": [],
    }
    sent = target.last("/hooks/json")
    assert sent.json["title"] == "db-1" and sent.json["type"] == "failure"
    assert sent.headers["x-token"] == TOKEN
    assert target.last("/hooks/form").form["message"]


async def test_send__partial_failure_is_reported_total_failure_retried(
    ops: App, target: FakeVendor
) -> None:
    good = f"json://127.0.0.1:{target.port}/hooks/json?+X-Token={TOKEN}"
    down = f"json://ops:{TOKEN}@127.0.0.1:{target.port}/hooks/down"
    await ops.connections.add_connection("some", "notify", {"urls": f"{good}\n{down}"})
    out = await ops.connections.call(notify.send, "some", {"body": "restarted"})
    assert len(out["delivered"]) == 1
    assert out["failed"] == [f"JSON json://ops:****@127.0.0.1:{target.port}/hooks/down"]
    await ops.connections.add_connection("none", "notify", {"urls": down})
    with pytest.raises(ConnectorRetryableError, match="no service took the message") as caught:
        await ops.connections.call(notify.send, "none", {"body": "restarted"})
    assert TOKEN not in str(caught.value)


async def test_settings__unknown_scheme_named_without_the_url(ops: App) -> None:
    with pytest.raises(InputError, match=r"URL 2 \(nosuch://…\)") as caught:
        await ops.connections.add_connection(
            "bad", "notify", {"urls": f"json://127.0.0.1/x nosuch://{TOKEN}"}
        )
    assert TOKEN not in str(caught.value)
    with pytest.raises(InputError, match="at least one"):
        await ops.connections.add_connection("empty", "notify", {"urls": " , "})
