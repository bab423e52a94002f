"""``opsloom up --api-processes N``: several processes answer the API of one store."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from test_cli import FLOWS, clean_env, listening, wait_until

from opsloom import App, Context, RunStatus, WorkerOptions
from opsloom.cli.apiprocess import hear_wakes, relay_wakes

TOKEN = "api-processes-test-token"


@dataclass
class Up:
    process: subprocess.Popen[bytes]
    url: str
    db_path: Path
    stderr: Path

    def helpers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()


def _up(tmp_path: Path, **settings: str) -> Iterator[Up]:
    """``opsloom up --api-processes 3`` with ``settings`` in its environment."""
    (tmp_path / "flows.py").write_text(FLOWS)
    db_path = tmp_path / "up.db"
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    argv = [sys.executable, "-m", "opsloom.cli.main", "up", "--app", "flows:app"]
    argv += ["--db", f"sqlite:///{db_path}", "--port", "0", "--api-processes", "3"]
    env = clean_env(OPSLOOM_API_TOKEN=TOKEN, **settings)
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=err)

    try:
        url = wait_until(listening(process, stdout, stderr), "the listening line", timeout=90)
        yield Up(process, url, db_path, stderr)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    yield from _up(tmp_path)


@pytest.fixture
def up_rarely_polling(tmp_path: Path) -> Iterator[Up]:
    """Its worker looks for work nobody told it about only every 600 s."""
    yield from _up(tmp_path, OPSLOOM_WORKER_POLL_SECONDS="600")


def _event(event_id: str) -> bytes:
    return f'{{"specversion":"1.0","id":"{event_id}","source":"/tests/up","type":"t.x"}}'.encode()


async def _post_all(url: str, bodies_per_connection: list[list[bytes]]) -> list[dict[str, list]]:
    """Each list of bodies sent one after another on a connection of its own."""
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/cloudevents+json",
    }

    async def connection(bodies: list[bytes]) -> list[dict[str, list]]:
        answers = []
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            for body in bodies:
                response = await client.post("/api/v1/events", content=body)
                assert response.status_code == 202, response.text
                answers.append(response.json())
        return answers

    results = await asyncio.gather(*(connection(bodies) for bodies in bodies_per_connection))
    return [answer for answers in results for answer in answers]


def test_api_processes__share_the_store_lose_nothing_and_dedup_across_processes(up: Up) -> None:
    helpers = up.helpers()
    assert len(helpers) == 2
    # 32 connections, 10 new events each, and every connection also repeats one shared id.
    bodies = [[_event(f"c{c}-{n}") for n in range(10)] + [_event("shared")] for c in range(32)]
    answers = asyncio.run(_post_all(up.url, bodies))
    accepted = [i for answer in answers for i in answer["accepted"]]
    duplicates = [i for answer in answers for i in answer["duplicates"]]
    assert len(accepted) == 32 * 10 + 1
    assert accepted.count("shared") == 1 and duplicates == ["shared"] * 31

    # Every API process served some of the connections (the kernel spreads them).
    for helper in helpers:
        assert helper.cpu_times().user > 0

    # A run started through any process is executed by the one worker.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    run_ids = []
    for _ in range(6):
        with httpx.Client(base_url=up.url, headers=auth, timeout=30) as client:
            started = client.post("/api/v1/runs", json={"workflow": "chain", "input": 1})
            assert started.status_code == 201, started.text
            run_ids.append(started.json()["id"])

    def all_done() -> bool:
        with httpx.Client(base_url=up.url, headers=auth, timeout=30) as client:
            runs = [client.get(f"/api/v1/runs/{run_id}").json() for run_id in run_ids]
        return all(run["status"] == "completed" and run["output"] == 4 for run in runs)

    wait_until(all_done, "every run to complete")

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=60) == 0
    assert not any(helper.is_running() for helper in helpers)
    assert "Traceback" not in up.stderr.read_text()
    with sqlite3.connect(up.db_path) as db:
        stored = {row[0] for row in db.execute("SELECT id FROM events WHERE source = '/tests/up'")}
        holders = db.execute("SELECT count(DISTINCT owner) FROM singletons").fetchone()[0]
    assert stored == set(accepted)
    # The singletons (scheduler, reaper …) were only ever held by `opsloom up` itself.
    assert holders <= 1


def test_api_processes__end_when_opsloom_up_is_killed(up: Up) -> None:
    helpers = up.helpers()
    assert len(helpers) == 2
    up.process.kill()
    up.process.wait()
    _, alive = psutil.wait_procs(helpers, timeout=30)
    assert not alive


def test_api_processes__runs_started_through_any_process_start_without_waiting_for_the_poll(
    up_rarely_polling: Up,
) -> None:
    up = up_rarely_polling
    # The worker of `opsloom up` looks for work on its own only every 600 s: each run below
    # completes within the wait only because the process that started it told the worker.
    # One connection per run, so the kernel hands runs to all three processes.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for n in range(10):
        with httpx.Client(base_url=up.url, headers=auth, timeout=30) as client:
            started = client.post("/api/v1/runs", json={"workflow": "chain", "input": n})
            assert started.status_code == 201, started.text
            run_id = started.json()["id"]

        def done(run_id: str = run_id, n: int = n) -> bool:
            with httpx.Client(base_url=up.url, headers=auth, timeout=30) as client:
                run = client.get(f"/api/v1/runs/{run_id}").json()
            return run["status"] == "completed" and run["output"] == n + 3

        wait_until(done, f"run {n} to complete", timeout=90)
    assert all(helper.cpu_times().user > 0 for helper in up.helpers())


async def test_wake_relay__runs_an_api_process_starts_or_signals_do_not_wait_for_the_poll(
    tmp_path: Path,
) -> None:
    # `opsloom up` (worker, looking for work on its own only every 600 s) and an API process
    # on one SQLite file, joined by the relay pipe as `opsloom up --api-processes` joins them.
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    up = App(url, worker=WorkerOptions(poll_seconds=600, reap_seconds=None))
    api = App(url, worker=None)
    for app in (up, api):

        @app.workflow(name="double")
        async def double(ctx: Context, n: int) -> int:
            return 2 * n

        @app.workflow(name="approve")
        async def approve(ctx: Context) -> object:
            return await ctx.wait_for("approval")

    read_end, write_end = os.pipe()
    async with up, api:
        relay_wakes(api.store, write_end)
        deaf = hear_wakes(up.store, read_end)
        try:
            # The worker has looked for work and found none: it now waits for a wake-up.
            assert await (await up.start("double", 0)).result(timeout=60) == 0
            for n in range(1, 4):
                handle = await api.start("double", n)
                assert await up.result(handle.run_id, timeout=60) == 2 * n
            waiting = await api.start("approve")
            await wait_for_status(up, waiting.run_id, RunStatus.WAITING)
            await api.signal(waiting.run_id, "approval", {"approved": True})
            assert await up.result(waiting.run_id, timeout=60) == {"approved": True}
        finally:
            deaf()
            os.close(read_end)
            os.close(write_end)


async def wait_for_status(app: App, run_id: str, status: RunStatus) -> None:
    """Wait (60 s at most: a loaded machine) until the run has ``status``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while (await app.get_run(run_id)).status is not status:
        if loop.time() > deadline:
            raise AssertionError(f"run {run_id} did not reach {status}")
        await asyncio.sleep(0.02)
