"""Run pages and the events page: trees of runs, starting and received events, ids with '/'."""

from __future__ import annotations

import asyncio
import re

from fastapi import FastAPI
from webkit import ACK, ALERT, ENV_TOKEN, browser, sign_in

from opsloom import App
from opsloom.model import RunStatus
from opsloom.store import RunFilter
from opsloom.web.page import run_url


async def settled(app: App, run_id: str, status: RunStatus) -> None:
    for _ in range(500):
        run = await app.store.get_run(run_id)
        if run is not None and run.status is status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} did not reach {status}")


def tree_of(html: str) -> str:
    return html.split('<nav aria-label="Runs tree">', 1)[1].split("</nav>", 1)[0]


async def test_run_page__shows_the_whole_tree_of_runs(app: App, api: FastAPI) -> None:
    root = await app.start("family", 2, run_id="fam/root")
    assert await root.result(timeout=30) == 6
    children = await app.store.list_runs(RunFilter(parent_id="fam/root"))
    grandchildren = await app.store.list_runs(RunFilter(parent_id=children[0].id))
    assert len(children) == 2 and len(grandchildren) == 2
    async with browser(api) as client:
        await sign_in(client, ENV_TOKEN)
        page = await client.get("/runs/fam/root")
        assert page.status_code == 200
        tree = tree_of(page.text)
        assert tree.count("<li") == 7  # the run and its six descendants, nested
        assert tree.count("<ul>") == 3  # the root's children, then each child's own
        for run in (*children, *grandchildren):
            assert f'href="/runs/{run.id}"' in tree
        below = tree_of((await client.get(f"/runs/{grandchildren[0].id}")).text)
        ancestors = below.split('<ul class="tree">', 1)[0]
        assert ancestors.index("fam/root") < ancestors.index(children[0].id)


async def test_events__a_run_shows_its_starting_event_and_what_it_received(
    app: App, api: FastAPI
) -> None:
    await app.emit(
        {"specversion": "1.0", "type": ALERT, "source": "am/prod", "id": "a-1", "subject": "db"}
    )
    [run] = await app.store.list_runs(RunFilter(workflow="incident"))
    await settled(app, run.id, RunStatus.WAITING)
    async with browser(api) as client:
        await sign_in(client, ENV_TOKEN)
        waiting = (await client.get(run_url(run.id))).text
        assert "Waiting for events matching" in waiting, (run.id, waiting[-600:])
        await app.emit(
            {
                "specversion": "1.0",
                "type": ACK,
                "source": "people",
                "id": "ack-1",
                "data": {"by": "ann"},
            }
        )
        assert (await app.result(run.id, timeout=30))["data"] == {"by": "ann"}
        page = (await client.get(run_url(run.id))).text
        started = page.split("<h2>Started by event</h2>", 1)[1].split("<h2>", 1)[0]
        assert ALERT in started and "am/prod" in started and "a-1" in started
        received = page.split("<h2>Signals and events received</h2>", 1)[1].split("</table>")[0]
        assert ACK in received and "ack-1" in received
        events = (await client.get("/events")).text
        rows = {
            m[1]: m[0]
            for m in re.findall(
                r"(<tr><td>\d+</td>.*?<code>([\w-]+)</code></summary>.*?</tr>)", events, re.S
            )
        }
        alert_row, ack_row = rows["a-1"], rows["ack-1"]
        started_cell = alert_row.split('<td class="started">', 1)[1].split("</td>", 1)[0]
        # Trigger-made run ids hold '#': the links encode it.
        assert f'href="{run_url(run.id)}"' in started_cell and "%23" in run_url(run.id)
        assert "incident" in started_cell
        assert "—" in alert_row.split('<td class="woke">', 1)[1]
        assert f'href="{run_url(run.id)}"' in ack_row.split('<td class="woke">', 1)[1]
        assert "—" in ack_row.split('<td class="started">', 1)[1].split("</td>", 1)[0]


async def test_run_id_with_slashes__its_pages_and_actions_work(app: App, api: FastAPI) -> None:
    done = await app.start("echo", {"n": 1}, run_id="team/a/b")
    await done.result(timeout=10)
    open_run = await app.start("incident", {}, run_id="team/a/waits")
    await settled(app, open_run.run_id, RunStatus.WAITING)
    async with browser(api) as client:
        csrf = await sign_in(client, ENV_TOKEN)
        page = await client.get("/runs/team/a/b")
        assert page.status_code == 200
        assert "<code>team/a/b</code>" in page.text
        listing = (await client.get("/runs?q=team/a")).text
        assert 'href="/runs/team/a/b"' in listing and 'href="/runs/team/a/waits"' in listing
        missing = await client.get("/runs/team/a/b/steps/99")
        assert missing.status_code == 404 and "no step 99" in missing.text
        assert (await client.get("/runs/team/a")).status_code == 404
        # A completed run cannot be retried: the run was found under its full id.
        refused = await client.post("/runs/team/a/b/retry", data={"csrf": csrf})
        assert refused.status_code == 409
        cancelled = await client.post("/runs/team/a/waits/cancel", data={"csrf": csrf})
        assert cancelled.status_code == 303
        assert cancelled.headers["location"].startswith("/runs/team/a/waits?notice=")
        await settled(app, "team/a/waits", RunStatus.CANCELLED)
        odd = await app.start("echo", 2, run_id="odd?id#%")
        await odd.result(timeout=10)
        assert 'href="/runs/odd%3Fid%23%25"' in (await client.get("/runs?q=odd")).text
        assert (await client.get("/runs/odd%3Fid%23%25")).status_code == 200
