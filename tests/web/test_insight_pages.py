"""The connections page (breakers, no secrets, roles) and the analytics dashboard."""

from __future__ import annotations

import re
import socket
from urllib.parse import unquote_plus

from fastapi import FastAPI
from webkit import ENV_TOKEN, browser, sign_in, token_of

from opsloom import App
from opsloom.store.connection import BreakerRecord

TOKEN = "ghp-web-secret-value"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connections__breaker_states_no_secret_and_a_check_for_operators(
    app: App, api: FastAPI
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    await app.connections.add_connection("gh", "github", {"token": TOKEN, "api_url": url})
    await app.connections.add_connection("gh-down", "github", {"token": TOKEN, "api_url": url})
    now = app.clock.now()
    await app.store.save_breaker(BreakerRecord("gh-down", "open", now, now + 30, 5, now))
    await app.connections.refresh()
    async with browser(api) as client:
        await sign_in(client, await token_of(app, "vic", "viewer"))
        page = (await client.get("/connections")).text
        assert TOKEN not in page
        rows = dict(re.findall(r"<tr>\s*<td><code>([\w-]+)</code></td>(.*?)</tr>", page, re.S))
        assert 'class="badge breaker-closed"' in rows["gh"]
        assert 'class="badge breaker-open"' in rows["gh-down"] and "5 failure(s)" in rows["gh-down"]
        assert "<code>token</code>" in rows["gh"]  # which secrets are set, never their values
        assert "<form" not in page.split("<main", 1)[1].split("</main>", 1)[0]
        assert "GitHub" in page.split("<h1>Connectors</h1>", 1)[1]
    async with browser(api) as client:
        csrf = await sign_in(client, await token_of(app, "olga", "operator"))
        page = (await client.get("/connections")).text
        assert 'action="/connections/gh/test"' in page
        checked = await client.post("/connections/gh/test", data={"csrf": csrf})
        assert checked.status_code == 303
        notice = unquote_plus(checked.headers["location"].split("notice=", 1)[1])
        assert notice.startswith("gh: the check failed") and TOKEN not in notice
        forged = await client.post("/connections/gh/test", data={"csrf": "forged"})
        assert forged.status_code == 403


async def test_analytics__success_rate_durations_and_workflows(app: App, api: FastAPI) -> None:
    for value in range(3):
        await (await app.start("echo", value)).result(timeout=10)
    await (await app.start("family", 1)).result(timeout=10)
    async with browser(api) as client:
        await sign_in(client, ENV_TOKEN)
        page = await client.get("/analytics?since=1h")
        assert page.status_code == 200
        kpis = page.text.split('<dl class="facts kpis">', 1)[1].split("</dl>", 1)[0]
        assert "<dt>Runs finished</dt><dd>6</dd>" in kpis  # three echoes, a family of three
        assert "100.0 %" in kpis
        workflows = page.text.split('<table class="per-workflow">', 1)[1].split("</table>", 1)[0]
        assert 'href="/runs?workflow=echo"' in workflows and "completed 3" in workflows
        assert 'href="/runs?workflow=family"' in workflows
        finished = re.findall(r'<rect class="finished"[^>]* height="([\d.]+)"', page.text)
        assert len(finished) == 12  # an hour in buckets of 5 minutes
        assert finished[-1] == "120.0" and set(finished[:-1]) == {"1.0"}  # all in the last
        fallback = await client.get("/analytics?since=forever")
        assert fallback.status_code == 200 and 'aria-current="page">last 24h' in fallback.text
