"""Webhook intake under load: ``opsloom up`` on SQLite fed Alertmanager notifications.

    .venv/bin/python bench/webhooks.py                      # both variants, 30 s each
    .venv/bin/python bench/webhooks.py --seconds 10 --concurrency 32 --variant events
    .venv/bin/python bench/webhooks.py --profile            # also cProfile the server

Each variant starts ``opsloom up`` (embedded SQLite in a fresh temporary folder, worker on) as
a subprocess and drives it from another process, ``bench/webhook_load.py``, over loopback:

- ``events``: every notification carries one firing alert with a new fingerprint, so each
  accepted alert is one new stored event;
- ``runs``: the same, with a deployed document whose ``schedule.on`` takes every firing alert,
  so each event also starts a run (one ``set`` task).

Figures: accepted events/s (whole run, and the slowest and median whole second), latency
p50/p90/p99 of the 2xx answers, 429/503 answers, events stored versus acknowledged (``lost``
counts acknowledged ids that are not in the store), and for ``runs`` the event-to-run-start
latency (the run's ``started_at`` minus the event's ``received_at``, both written by the
server) and how long the worker needed to start every run. Where the time goes: CPU seconds
of the server (per thread) and of the load generator over the load, and with ``--profile`` the
own time of the server's event-loop thread by part (HTTP stack, FastAPI, opsloom's store and
triggers, startup…) from cProfile, which slows the server down: profiled throughput is not
comparable. Prints a table per variant, then one JSON line per variant.

Targets (2-core machine, SQLite): >= 3,000 accepted events/s sustained with p99 <= 50 ms,
0 lost; event-to-run-start p50 <= 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-alertmanager-credential"
SOURCE = "/hooks/alertmanager"
WORKFLOW = "bench/alert-intake"
TARGETS = {"accepted_per_s": 3000.0, "latency_p99_ms": 50.0, "event_to_start_p50_ms": 20.0}

DOCUMENT = """\
document:
  dsl: '1.0.3'
  namespace: bench
  name: alert-intake
  version: '1.0.0'
schedule:
  on:
    one:
      with:
        type: io.opsloom.alert.firing.v1
do:
  - note:
      set:
        fingerprint: ${ .subject }
        service: ${ .data.labels.service }
"""


def log(message: str) -> None:
    print(f"[webhooks {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (``None`` when empty)."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


class Server:
    """``opsloom up`` as a subprocess, optionally under cProfile."""

    def __init__(
        self, folder: Path, db: str, log_level: str, profile: Path | None, api_processes: int
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOM_")}
        env["OPSLOOM_HOOKS_ALERTMANAGER_TOKEN"] = TOKEN
        env["OPSLOOM_LOG_LEVEL"] = log_level
        argv = [sys.executable]
        if profile is not None:
            argv += ["-m", "cProfile", "-o", str(profile)]
        argv += ["-m", "opsloom.cli.main", "up", "--db", db, "--host", "127.0.0.1", "--port", "0"]
        if api_processes > 1:
            argv += ["--api-processes", str(api_processes)]
        self.log_path = folder / "server.log"
        with self.log_path.open("wb") as out:
            # From the repository root, as `make run` does: the bundled examples load too.
            self.process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        self.url = self._wait_listening(180)
        self.ps = psutil.Process(self.process.pid)

    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"opsloom up exited:\n{self.tail()}")
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith("opsloom listening on "):
                    return line.split()[3]
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"opsloom up did not listen within {timeout:.0f} s:\n{self.tail()}")

    def cpu(self) -> tuple[float, dict[tuple[int, int], float]]:
        """CPU seconds of the server and its API processes, and per thread (pid, thread id)."""
        total = 0.0
        threads: dict[tuple[int, int], float] = {}
        for process in [self.ps, *self.ps.children(recursive=True)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
                for t in process.threads():
                    threads[(process.pid, t.id)] = t.user_time + t.system_time
            except psutil.NoSuchProcess:
                continue
        return total, threads

    def scheduled(self) -> tuple[float, float]:
        """Seconds the server's threads ran and waited runnable for a core (``schedstat``).

        The second figure is time a request could have been served had a core been free: on
        a shared machine it says whether the server waits for the CPU or for something else
        (the disk, the load generator). Zeros where the kernel does not keep the counters.
        """
        ran = waited = 0
        for process in [self.ps, *self.ps.children(recursive=True)]:
            for task in Path(f"/proc/{process.pid}/task").glob("*/schedstat"):
                try:
                    fields = task.read_text().split()
                except OSError:
                    continue
                ran += int(fields[0])
                waited += int(fields[1])
        return ran / 1e9, waited / 1e9

    def tail(self, lines: int = 20) -> str:
        """The server's last output lines, without its access log."""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join([line for line in text if "uvicorn.access" not in line][-lines:])

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def deploy(db: str, folder: Path) -> None:
    document = folder / "alert-intake.yaml"
    document.write_text(DOCUMENT)
    done = subprocess.run(
        [sys.executable, "-m", "opsloom.cli.main", "deploy", str(document), "--db", db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"deploy failed: {done.stderr}")


def load(url: str, seconds: float, concurrency: int, ids: Path) -> dict[str, Any]:
    """Run the load generator in its own process; its JSON figures."""
    argv = [sys.executable, str(ROOT / "bench" / "webhook_load.py")]
    argv += ["--url", f"{url}/hooks/alertmanager", "--token", TOKEN]
    argv += ["--seconds", str(seconds), "--concurrency", str(concurrency), "--ids", str(ids)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=False)
    if done.returncode != 0:
        raise SystemExit(f"load generator failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def store(db_path: Path) -> sqlite3.Connection:
    """A read-only connection to the server's SQLite file (WAL: readers do not block it)."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    connection.execute("PRAGMA busy_timeout = 30000")
    return connection


def started_runs(db_path: Path) -> int:
    with store(db_path) as connection:
        row = connection.execute(
            "SELECT count(*) FROM runs WHERE workflow = ? AND started_at IS NOT NULL", (WORKFLOW,)
        ).fetchone()
    return int(row[0])


def drain(db_path: Path, wanted: int, seconds: float) -> float | None:
    """Seconds until ``wanted`` runs have started (None if not within ``seconds``)."""
    begin = time.monotonic()
    while time.monotonic() - begin < seconds:
        if started_runs(db_path) >= wanted:
            return time.monotonic() - begin
        time.sleep(0.2)
    return None


def stored_figures(db_path: Path, acknowledged: set[str], runs: bool) -> dict[str, Any]:
    """Events stored vs acknowledged; for ``runs``, the event-to-run-start latencies."""
    with store(db_path) as connection:
        stored = {
            row[0]
            for row in connection.execute("SELECT id FROM events WHERE source = ?", (SOURCE,))
        }
        out: dict[str, Any] = {
            "stored_events": len(stored),
            "lost": len(acknowledged - stored),
        }
        if not runs:
            return out
        rows = connection.execute(
            "SELECT r.started_at - e.received_at, r.status FROM runs r "
            "JOIN events e ON e.source = r.event_source AND e.id = r.event_id "
            "WHERE r.workflow = ?",
            (WORKFLOW,),
        ).fetchall()
    delays = sorted(row[0] for row in rows if row[0] is not None)
    out.update(
        runs=len(rows),
        runs_completed=sum(1 for row in rows if row[1] == "completed"),
        runs_not_started=sum(1 for row in rows if row[0] is None),
        event_to_start_p50_ms=ms(percentile(delays, 50)),
        event_to_start_p99_ms=ms(percentile(delays, 99)),
        event_to_start_max_ms=ms(delays[-1] if delays else None),
    )
    return out


#: Where a profiled function's code lives -> the part of the server it belongs to.
PARTS = (
    ("/opsloom/store/", "opsloom store (SQL, group-commit writer)"),
    ("/opsloom/triggers/", "opsloom triggers (verify, normalise, match)"),
    # CloudEvents, filters and triggers are pure types in model/, still part of intake.
    ("/opsloom/model/cloudevent", "opsloom triggers (verify, normalise, match)"),
    ("/opsloom/model/matching", "opsloom triggers (verify, normalise, match)"),
    ("/opsloom/model/trigger", "opsloom triggers (verify, normalise, match)"),
    ("/opsloom/api/", "opsloom api (hook route)"),
    ("/opsloom/dsl/", "opsloom dsl (document interpreter)"),
    ("/opsloom/engine/", "opsloom engine and worker (runs)"),
    ("/opsloom/worker/", "opsloom engine and worker (runs)"),
    ("/opsloom/", "opsloom other"),
    ("/fastapi/", "fastapi (dependencies, routing)"),
    ("/starlette/", "starlette (routing, responses)"),
    ("/uvicorn/", "uvicorn + h11 (HTTP/1.1)"),
    ("/h11/", "uvicorn + h11 (HTTP/1.1)"),
    ("/anyio/", "anyio (thread-pool hops)"),
    ("/asyncio/", "asyncio event loop"),
    ("/pydantic", "pydantic"),
    ("/ruamel/", "startup (documents, schemas)"),
    ("/jsonschema", "startup (documents, schemas)"),
    ("/importlib", "startup (imports)"),
    ("<frozen", "startup (imports)"),
    ("/logging/", "logging (one access-log line per request)"),
    ("/threading.py", "thread hand-offs (locks, queues)"),
    ("/queue.py", "thread hand-offs (locks, queues)"),
    ("/python3.11/", "standard library, other"),
)


def part_of(file: str, name: str) -> str:
    if name == "<method 'poll' of 'select.epoll' objects>":
        return "idle (waiting in epoll)"
    for marker, part in PARTS:
        if marker in file:
            return part
    return "other"


def where_time_goes(profile: Path) -> dict[str, float]:
    """Own time of the profiled thread by part, C functions charged to their callers."""
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    parts: dict[str, float] = {}
    for (file, _line, name), (_cc, _nc, own, _cum, callers) in stats.items():
        if file != "~" or part_of(file, name).startswith("idle"):
            part = part_of(file, name)
            parts[part] = parts.get(part, 0.0) + own
            continue
        # A C function (socket send, sqlite3 execute, json): split its time among its callers.
        total = sum(c[2] for c in callers.values()) or 1.0
        for (caller_file, _l, caller_name), caller in callers.items():
            part = part_of(caller_file, caller_name)
            parts[part] = parts.get(part, 0.0) + own * caller[2] / total
    return {k: round(v, 2) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])}


def run_variant(variant: str, options: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="opsloom-webhooks-") as tmp:
        folder = Path(tmp)
        db_path = folder / "bench.db"
        db = f"sqlite:///{db_path}"
        runs = variant == "runs"
        if runs:
            deploy(db, folder)
        profile = folder / "server.prof" if options.profile else None
        server = Server(folder, db, options.log_level, profile, options.api_processes)
        figures: dict[str, Any] = {"variant": variant, "profiled": bool(options.profile)}
        figures["api_processes"] = options.api_processes
        # The machine may be shared: a load average well above 0 before the run means the
        # figures are taken with other work competing for the two cores.
        figures["loadavg_before"] = round(os.getloadavg()[0], 2)
        try:
            log(f"{variant}: server on {server.url}; {options.seconds:.0f} s of load")
            cpu_before, threads_before = server.cpu()
            ran_before, waited_before = server.scheduled()
            ids = folder / "acknowledged.txt"
            figures.update(load(server.url, options.seconds, options.concurrency, ids))
            cpu_after, threads_after = server.cpu()
            ran_after, waited_after = server.scheduled()
            # Runnable but not running: the share of the load the server spent queued for a
            # core (0.5: it waited as long as it ran).
            figures["server_runqueue_wait_s"] = round(waited_after - waited_before, 2)
            figures["server_ran_s"] = round(ran_after - ran_before, 2)
            busy = cpu_after - cpu_before
            figures["server_cpu_seconds"] = round(busy, 2)
            figures["server_cores_used"] = round(busy / figures["seconds"], 2)
            figures["server_thread_cpu_seconds"] = sorted(
                (round(t - threads_before.get(tid, 0.0), 2) for tid, t in threads_after.items()),
                reverse=True,
            )[:4]
            figures["load_cores_used"] = round(figures["load_cpu_seconds"] / figures["seconds"], 2)
            # CPU per event does not depend on how busy the rest of the machine is; the
            # event-loop thread's share bounds the rate: it cannot use more than one core.
            accepted = max(1, figures["accepted_events"])
            loop = figures["server_thread_cpu_seconds"][0] if threads_after else busy
            figures["server_cpu_ms_per_event"] = round(1000 * busy / accepted, 3)
            figures["loop_cpu_ms_per_event"] = round(1000 * loop / accepted, 3)
            figures["loop_bound_per_s"] = round(accepted / loop, 1) if loop else None
            acknowledged = set(ids.read_text().split())
            if runs:
                log(f"runs: waiting up to {options.drain:.0f} s for every run to start")
                took = drain(db_path, len(acknowledged), options.drain)
                figures["drain_seconds"] = None if took is None else round(took, 2)
        finally:
            code = server.stop()
        figures["server_exit"] = code
        figures.update(stored_figures(db_path, acknowledged, runs))
        if profile is not None and profile.exists():
            figures["profile_seconds_by_part"] = where_time_goes(profile)
            if options.profile_out:
                shutil.copyfile(profile, f"{options.profile_out}.{variant}.prof")
        return figures


def table(figures: dict[str, Any]) -> str:
    rows = [
        ("accepted events/s (whole run)", figures["accepted_per_s"], ">= 3000"),
        (
            "  slowest / median whole second",
            f"{figures['steady_min_per_s']} / {figures['steady_median_per_s']}",
            "",
        ),
        (
            "2xx latency p50 / p90 / p99 ms",
            f"{figures['latency_p50_ms']} / "
            f"{figures['latency_p90_ms']} / {figures['latency_p99_ms']}",
            "p99 <= 50",
        ),
        (
            "answers 2xx / 429 / 503 / transport errors",
            f"{figures['answers_2xx']} / "
            f"{figures['answers_429']} / {figures['answers_503']} / {figures['transport_errors']}",
            "",
        ),
        (
            "acknowledged / stored / lost",
            f"{figures['accepted_events']} / {figures['stored_events']} / {figures['lost']}",
            "lost = 0",
        ),
        (
            "server threads ran / waited for a core, s",
            f"{figures.get('server_ran_s')} / {figures.get('server_runqueue_wait_s')}",
            "",
        ),
        (
            "server CPU cores used (threads, s)",
            f"{figures['server_cores_used']} {figures['server_thread_cpu_seconds']}",
            "",
        ),
        (
            "server CPU ms per event (event-loop thread)",
            f"{figures['server_cpu_ms_per_event']} ({figures['loop_cpu_ms_per_event']})",
            "",
        ),
        ("events/s one free core allows the loop", figures["loop_bound_per_s"], ""),
        ("load generator CPU cores used", figures["load_cores_used"], ""),
        ("machine load average before the run", figures["loadavg_before"], ""),
    ]
    if figures["variant"] == "runs":
        rows += [
            (
                "runs / completed / not started",
                f"{figures['runs']} / {figures['runs_completed']} / {figures['runs_not_started']}",
                "",
            ),
            (
                "event-to-run-start p50 / p99 ms",
                f"{figures['event_to_start_p50_ms']} / {figures['event_to_start_p99_ms']}",
                "p50 <= 20",
            ),
            ("seconds after the load until all runs started", figures.get("drain_seconds"), ""),
        ]
    width = max(len(r[0]) for r in rows)
    title = (
        f"{figures['variant']}: {figures['seconds']} s, {figures['concurrency']} connections, "
        f"{figures.get('api_processes', 1)} API processes"
    )
    lines = [title + (" (server under cProfile)" if figures["profiled"] else "")]
    lines += [f"  {name:<{width}}  {value!s:<28} {target}" for name, value, target in rows]
    parts = figures.get("profile_seconds_by_part", {})
    if parts:
        lines.append("  where the event-loop thread's time went (cProfile, whole process life):")
    busy = sum(v for k, v in parts.items() if not k.startswith("idle")) or 1.0
    for part, seconds in parts.items():
        share = "" if part.startswith("idle") else f"{100 * seconds / busy:5.1f}%"
        lines.append(f"    {seconds:>7.2f} s {share:>6}  {part}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="load duration per variant")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections")
    parser.add_argument("--variant", choices=["events", "runs", "both"], default="both")
    parser.add_argument("--drain", type=float, default=120.0, help="runs: wait at most N s")
    parser.add_argument("--log-level", default="INFO", help="the server's OPSLOOM_LOG_LEVEL")
    parser.add_argument(
        "--api-processes", type=int, default=1, help="opsloom up --api-processes N (default 1)"
    )
    parser.add_argument("--profile", action="store_true", help="run the server under cProfile")
    parser.add_argument("--profile-out", help="--profile: keep the dump as PREFIX.<variant>.prof")
    options = parser.parse_args()
    variants = ["events", "runs"] if options.variant == "both" else [options.variant]
    results = [run_variant(variant, options) for variant in variants]
    for figures in results:
        print(table(figures))
    for figures in results:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
