"""CPU per webhook inside the API: ASGI requests straight into ``create_api``, no HTTP, no sockets.

    .venv/bin/python bench/intake_cpu.py                  # 3,000 Alertmanager posts, 32 at once
    .venv/bin/python bench/intake_cpu.py --trigger        # each alert also starts a run
    .venv/bin/python bench/ab.py --base main --rounds 3 --keys cpu_us_per_request \
        -- bench/intake_cpu.py

``bench/webhooks.py`` measures the whole server over loopback, where the HTTP server's own
work and the machine's load weigh on every figure. This one isolates what opsloom's API does
per request: an App on a fresh SQLite file (``FULL``, its worker on), the Alertmanager hook
configured, and ``--requests`` notifications (one new alert each) sent as ASGI calls by
``--concurrency`` tasks, after as many for warming up. Prints one JSON line: CPU microseconds
per request of the whole process (its writer thread included) and the statuses.

``--trigger``: a trigger on firing alerts (dedup key, an input expression) starts a run per
alert, so the figure includes the triggers' part of the intake; the worker is off then, so
only the intake is measured (the runs stay queued).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from typing import Any

import uvloop

from opsloom import App, Context
from opsloom.api import create_api
from opsloom.api.routes.hooks import HookReceiver
from opsloom.model.trigger import Trigger
from opsloom.settings import Settings
from opsloom.triggers.sources import load_hooks_config

TOKEN = "bench-alertmanager-credential"
PATH = "/hooks/alertmanager"


def notification(fingerprint: str) -> bytes:
    labels = {"alertname": "BenchDiskFull", "instance": "node-1:9100", "job": "node"}
    alert = {
        "status": "firing",
        "labels": {**labels, "service": "checkout", "severity": "critical"},
        "annotations": {"summary": "Disk almost full", "description": "92% used on /var"},
        "startsAt": "2024-05-06T14:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=disk",
        "fingerprint": fingerprint,
    }
    group = {"version": "4", "status": "firing", "receiver": "opsloom", "groupKey": "{}"}
    body = {**group, "externalURL": "http://am", "truncatedAlerts": 0, "alerts": [alert]}
    return json.dumps({**body, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}})


async def measure(requests: int, concurrency: int, trigger: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="opsloom-intake-") as tmp:
        if trigger:
            app = App(f"sqlite:///{tmp}/intake.db", worker=None)

            @app.workflow(name="bench-alert")
            async def bench_alert(ctx: Context, alert: dict[str, Any]) -> None:
                return None

        else:
            app = App(f"sqlite:///{tmp}/intake.db")
        async with app:
            if trigger:  # saved by hand: an App saves its triggers only with its worker
                version = app.registry.workflow("bench-alert").version
                rule = Trigger(
                    id="code:bench-alert",
                    workflow="bench-alert",
                    version=version,
                    filters=[{"type": "io.opsloom.alert.firing.v1"}],
                    input="{fingerprint: .subject, service: .data.labels.service}",
                )
                await app.store.save_trigger(rule, time.time())
            api = create_api(app, Settings(api_token=None))
            hooks = load_hooks_config(environ={"OPSLOOM_HOOKS_ALERTMANAGER_TOKEN": TOKEN})
            api.state.hooks = HookReceiver(hooks)
            statuses: list[int] = []

            async def post(number: int) -> None:
                data = notification(f"{number:016x}").encode()
                headers = [
                    (b"host", b"bench"),
                    (b"authorization", f"Bearer {TOKEN}".encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ]
                scope = {
                    "type": "http",
                    "asgi": {"version": "3.0"},
                    "http_version": "1.1",
                    "method": "POST",
                    "scheme": "http",
                    "path": PATH,
                    "raw_path": PATH.encode(),
                    "query_string": b"",
                    "root_path": "",
                    "headers": headers,
                    "client": ("127.0.0.1", 1),
                    "server": ("127.0.0.1", 80),
                }
                sent = asyncio.Event()

                async def receive() -> dict[str, Any]:
                    if not sent.is_set():
                        sent.set()
                        return {"type": "http.request", "body": data, "more_body": False}
                    await asyncio.Event().wait()  # no disconnect: the client waits
                    raise AssertionError("unreachable")

                async def send(message: dict[str, Any]) -> None:
                    if message["type"] == "http.response.start":
                        statuses.append(message["status"])

                await api(scope, receive, send)

            async def sender(first: int, offset: int) -> None:
                for number in range(first + offset, first + requests, concurrency):
                    await post(number)

            await asyncio.gather(*(sender(0, k) for k in range(concurrency)))  # warm-up
            statuses.clear()
            batches, ops = app.store.writer_stats  # type: ignore[attr-defined]
            # How long the writer held its transactions (the write lock, which processes
            # sharing the file take in turns), from BEGIN to the end of COMMIT.
            held: list[float] = []
            observer = app.store.observer  # type: ignore[attr-defined]
            told = observer.store_committed

            def committed(size: int, seconds: float) -> None:
                held.append(seconds)
                told(size, seconds)

            observer.store_committed = committed
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(sender(requests, k) for k in range(concurrency)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            after = app.store.writer_stats  # type: ignore[attr-defined]
            batches, ops = after[0] - batches, after[1] - ops
        with sqlite3.connect(f"{tmp}/intake.db") as db:
            runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    return {
        "trigger": trigger,
        "requests": len(statuses),
        "runs_started": runs,
        "answers_2xx": sum(1 for s in statuses if 200 <= s < 300),
        "cpu_us_per_request": round(1e6 * cpu / max(1, len(statuses)), 1),
        "requests_per_cpu_second": round(len(statuses) / cpu, 1) if cpu else None,
        "wall_seconds": round(wall, 2),
        "commits": batches,
        "write_held_us_per_request": round(1e6 * sum(held) / max(1, len(statuses)), 1),
        "writes_per_commit": round(ops / max(1, batches), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--trigger", action="store_true", help="each alert starts a run")
    options = parser.parse_args()
    figures = uvloop.run(measure(options.requests, options.concurrency, options.trigger))
    sys.stdout.write(json.dumps({"benchmark": "intake_cpu", **figures}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
