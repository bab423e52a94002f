"""Live pages over server-sent events: one render per view and tick, a clean end on shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from webkit import ENV_TOKEN, sign_in

from opsloom import App
from opsloom.api.server import listen, serve, url_of
from opsloom.web.live import Hub, Message


async def take(stream: AsyncIterator[bytes], count: int) -> list[bytes]:
    """The next ``count`` event payloads of a hub stream (comments skipped)."""
    found: list[bytes] = []
    async for chunk in stream:
        if not chunk.startswith(b":"):
            found.append(chunk)
            if len(found) == count:
                break
    return found


async def test_hub__subscribers_of_one_view_share_each_render() -> None:
    hub = Hub(tick=0.01)
    calls = 0

    async def render() -> list[Message]:
        nonlocal calls
        calls += 1
        return [("runs", f"<p>{calls}</p>")]

    streams = [hub.stream("runs", render) for _ in range(10)]
    seen = await asyncio.gather(*(take(s, 3) for s in streams))
    # Ten subscribers took three changes each; rendering once per client would be 30 renders.
    assert calls < 10, calls
    assert hub.renders == calls
    assert all(s[-1].startswith(b"event: runs\ndata: <p>") for s in seen)
    for stream in streams:
        await stream.aclose()
    await asyncio.sleep(0.05)
    assert hub.topics == 0  # the view's task ended with its last subscriber


async def test_hub__an_unchanged_view_sends_nothing_new_and_close_ends_streams() -> None:
    hub = Hub(tick=0.01, heartbeat=0.05)
    calls = 0

    async def render() -> list[Message]:
        nonlocal calls
        calls += 1
        return [("run", "same\nlines")]

    stream = hub.stream(("run", "r1"), render)
    [first] = await take(stream, 1)
    assert first == b"event: run\ndata: same\ndata: lines\n\n"
    while calls < 5:  # renders go on; nothing is sent, only keep-alive comments
        chunk = await stream.__anext__()
        assert chunk.startswith(b":"), chunk
    hub.close()
    rest = [chunk async for chunk in stream]
    assert all(chunk.startswith(b":") for chunk in rest)
    await hub.wait_closed()
    assert hub.topics == 0
    assert [chunk async for chunk in hub.stream("x", render)] == []  # closed: ends at once


async def test_hub__a_stream_ends_after_max_age_and_a_new_one_gets_the_state_at_once() -> None:
    hub = Hub(tick=0.01, heartbeat=0.02, max_age=0.1)

    async def render() -> list[Message]:
        return [("runs", "state")]

    other = hub.stream("runs", render)  # keeps the view watched between the two below
    await take(other, 1)
    first = [chunk async for chunk in hub.stream("runs", render)]  # ends by itself
    assert b"event: runs\ndata: state\n\n" in first
    again = hub.stream("runs", render)
    assert await take(again, 1) == [b"event: runs\ndata: state\n\n"]
    await again.aclose()
    await other.aclose()
    hub.close()


async def events_of(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` pairs of a server-sent event stream."""
    name, data = "", []
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif line == "" and name:
            yield name, "\n".join(data)
            name, data = "", []


async def test_live_runs__a_new_run_shows_up_and_shutdown_ends_the_stream(
    app: App, api: FastAPI
) -> None:
    sock = listen("127.0.0.1", 0)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(api, sock, stop))
    async with httpx.AsyncClient(base_url=url_of(sock), timeout=10) as client:
        await sign_in(client, ENV_TOKEN)
        async with client.stream("GET", "/live/runs?workflow=echo") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = events_of(response)
            name, first = await anext(events)
            assert name == "runs" and "No run matches." in first
            handle = await app.start("echo", "hello", run_id="live/with-slash")
            await handle.result(timeout=10)
            name, html = await anext(events)
            while "completed" not in html.split("<tbody>", 1)[1]:
                name, html = await anext(events)
            assert 'href="/runs/live/with-slash"' in html
            began = time.monotonic()
            stop.set()
            await asyncio.wait_for(serving, 10)
            remaining = [e async for e in events]
    # The stream ended at once, not after the server's five-second grace period.
    assert time.monotonic() - began < 3
    assert remaining == []


async def test_live_run__sends_the_run_then_ended(app: App, api: FastAPI) -> None:
    sock = listen("127.0.0.1", 0)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(api, sock, stop))
    try:
        handle = await app.start("family", 1, run_id="tree/root")
        await handle.result(timeout=10)
        async with httpx.AsyncClient(base_url=url_of(sock), timeout=10) as client:
            await sign_in(client, ENV_TOKEN)
            missing = await client.get("/live/runs/no/such/run")
            assert missing.status_code == 404
            async with httpx.AsyncClient(base_url=url_of(sock), timeout=10) as stranger:
                refused = await stranger.get("/live/runs/tree/root")
                assert refused.status_code == 401  # not a redirect to a page
            async with client.stream("GET", "/live/runs/tree/root") as response:
                got = [e async for e in _first(events_of(response), 2)]
            assert [name for name, _ in got] == ["run", "ended"]
            assert got[1][1] == "completed"
            assert "Runs tree" in got[0][1]
    finally:
        stop.set()
        await serving


async def _first(events: AsyncIterator[tuple[str, str]], n: int) -> AsyncIterator[tuple[str, str]]:
    for _ in range(n):
        yield await anext(events)
