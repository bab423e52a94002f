"""Worker processes for the benchmark: ``opsloom worker --app flows:app`` subprocesses.

W4 (both stores) and every PostgreSQL workload run their workers this way, the way a user runs
them: the command line loads ``app`` from ``flows.py`` (this folder is the working directory)
and gives it the database URL and worker options.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil
from measure import Figures

HERE = Path(__file__).resolve().parent


def worker_command(url: str, concurrency: int | None, lease_seconds: float | None) -> list[str]:
    script = Path(sys.executable).with_name("opsloom")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "opsloom.cli.main"]
    command = [*head, "worker", "--app", "flows:app", "--db", url, "--grace", "5"]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    if lease_seconds is not None:
        command += ["--lease", f"{lease_seconds:g}"]
    return command


def spawn_worker(
    fig: Figures,
    url: str,
    log_file: Path,
    *,
    concurrency: int | None = None,
    lease_seconds: float | None = None,
    synchronous: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start one ``opsloom worker``; its output goes to ``log_file``; the watchdog may kill it."""
    env = dict(os.environ)
    if synchronous is not None:
        env["OPSLOOM_SQLITE_SYNCHRONOUS"] = synchronous
    with log_file.open("ab") as err:
        proc = subprocess.Popen(
            worker_command(url, concurrency, lease_seconds),
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    fig.add_child(proc)
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the worker drains and releases its leases), SIGKILL if it takes over 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(path: Path, size: int = 600) -> str:
    """The end of a log file, for an error message (the folder is removed afterwards)."""
    if not path.exists():
        return f"{path.name} is empty"
    return path.read_bytes()[-size:].decode(errors="replace")


def step_lines(log_path: Path) -> collections.Counter[tuple[str, int]]:
    """How often each (run, step) body started, from the lines ``flows.logged_step`` appends."""
    counts: collections.Counter[tuple[str, int]] = collections.Counter()
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            run_id, number, *_ = line.split()
            counts[(run_id, int(number))] += 1
    return counts


def first_step_pid(log_path: Path) -> int | None:
    """The process that ran the first logged step body (lines end with the worker's pid)."""
    if not log_path.exists():
        return None
    for line in log_path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            return int(parts[2])
    return None


def store_port(url: str) -> int:
    return urlparse(url).port or 5432


def connected(proc: subprocess.Popen[bytes], port: int, wanted: int) -> bool:
    """Whether the process holds ``wanted`` established TCP connections to ``port``."""
    try:
        conns = psutil.Process(proc.pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    open_ = [c for c in conns if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED"]
    return len(open_) >= wanted


async def until_connected(
    procs: list[subprocess.Popen[bytes]], url: str, log_file: Path, seconds: float = 60
) -> None:
    """Wait until every worker has opened its store: a pool connection and its writer's.

    The worker starts claiming right after its store is open, so this is the moment it can
    take work (a warm-up round of runs follows, to be sure).
    """
    port = store_port(url)
    deadline = time.monotonic() + seconds
    while not all(connected(proc, port, 2) for proc in procs):
        dead = [proc for proc in procs if proc.poll() is not None]
        if dead or time.monotonic() > deadline:
            for proc in procs:
                proc.kill()
            why = "exited" if dead else f"did not connect within {seconds:g}s"
            raise RuntimeError(f"a worker {why}: {tail(log_file)}")
        await asyncio.sleep(0.05)
