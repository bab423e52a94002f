"""The crash-test harness: real ``opsloom worker`` processes sharing one store.

A :class:`Lab` owns a temporary folder with the step log written by the step bodies of
``flows.py`` and the gate folder that holds steps in flight, and a database: a SQLite file in
that folder, or a fresh schema of the test PostgreSQL. It starts workers with
``python -m opsloom.cli.main worker --app flows:app``, reads what their step bodies did from
the log, reads durable state straight from the database, and kills whatever it started when
the test ends (by pid, only its own processes). Workers on PostgreSQL connect with the lab's
own ``application_name``, so a test can find (and terminate) exactly their connections.

Nothing here sleeps to let time pass: :meth:`Lab.wait_until` polls a condition until a bounded
deadline and fails with the workers' output when the deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

from opsloom import App
from opsloom.codec import decode

HERE = Path(__file__).resolve().parent


def load_flows() -> ModuleType:
    """``flows.py`` under a private module name (other test folders may have a ``flows``)."""
    spec = importlib.util.spec_from_file_location("opsloom_crash_flows", HERE / "flows.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def client_app(url: str) -> App:
    """An App that starts, signals and inspects runs but runs none (``worker=None``)."""
    app: App = load_flows().register(App(url, worker=None))
    return app


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the step log: one event of one execution of one step body."""

    run_id: str
    seq: int
    event: str  # "start" or "end"
    pid: int
    at: float  # time.monotonic() in the worker
    nonce: str  # tells apart executions of the same step


@dataclass(frozen=True, slots=True)
class Body:
    """One execution of a step body: its start and, if it got that far, its end."""

    run_id: str
    seq: int
    pid: int
    nonce: str
    started: float
    ended: float | None


class WorkerProcess:
    """One ``opsloom worker`` subprocess and its combined stdout/stderr file."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], output: Path) -> None:
        self.name = name
        self.proc = proc
        self.output = output

    def __repr__(self) -> str:
        return f"WorkerProcess({self.name}, pid={self.pid})"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def text(self) -> str:
        try:
            return self.output.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    async def exited(self, timeout: float) -> int:
        """Wait (bounded) for the process to end; its exit code."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self} still running after {timeout}s\n{self.tail()}")
            await asyncio.sleep(0.02)
        return self.proc.returncode


class Lab:
    """A database, a step log, a gate folder, and the workers started on them."""

    def __init__(self, root: Path, postgres_url: str | None = None) -> None:
        self.root = root
        self.db_path = root / "opsloom.db"
        self.url = postgres_url or f"sqlite:///{self.db_path}"
        self.app_name = f"opsloom-lab-{uuid.uuid4().hex[:8]}"
        self.log = root / "steps.log"
        self.gate = root / "gate"
        self.gate.mkdir()
        self.workers: list[WorkerProcess] = []

    # --- processes ---------------------------------------------------------------------------

    def spawn(
        self,
        *,
        lease: float = 2.0,
        concurrency: int = 64,
        grace: float = 10.0,
        app: str = "flows:app",
    ) -> WorkerProcess:
        """Start ``opsloom worker --app flows:app`` (or ``app``) on the lab's database."""
        return self._popen(
            "worker",
            [
                "-m",
                "opsloom.cli.main",
                "worker",
                "--app",
                app,
                "--db",
                self.url,
                "--concurrency",
                str(concurrency),
                "--lease",
                str(lease),
                "--grace",
                str(grace),
            ],
        )

    def spawn_starter(
        self, workflow: str, data: Any, run_ids: Iterable[str], *, lease: float = 2.0
    ) -> WorkerProcess:
        """Start ``starter.py``: a process that starts runs and executes them itself."""
        argv = ["starter.py", self.url, str(lease), workflow, json.dumps(data), *run_ids]
        return self._popen("starter", argv)

    def _popen(self, kind: str, argv: list[str]) -> WorkerProcess:
        name = f"{kind}{len(self.workers) + 1}"
        output = self.root / f"{name}.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("OPSLOOM_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PGAPPNAME"] = self.app_name  # libpq names every connection of the worker
        with output.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, *argv],
                cwd=HERE,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(name, proc, output)
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        """SIGKILL every worker this lab started that is still running (stopped ones too)."""
        for worker in self.workers:
            if worker.alive():
                worker.send(signal.SIGKILL)
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL cannot be ignored
                worker.proc.wait(timeout=10)

    def diagnostics(self) -> str:
        parts = []
        for worker in self.workers:
            state = "running" if worker.alive() else f"exit {worker.returncode}"
            parts.append(f"--- {worker.name} pid {worker.pid} ({state}) ---\n{worker.tail()}")
        return "\n".join(parts)

    async def wait_until(
        self,
        condition: Callable[[], Any],
        *,
        timeout: float,
        what: str,
        alive: Iterable[WorkerProcess] = (),
    ) -> Any:
        """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds, or at once
        if one of the ``alive`` workers dies."""
        watched = list(alive)
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            for worker in watched:
                if not worker.alive():
                    raise AssertionError(
                        f"{worker} died while waiting for {what}\n{self.diagnostics()}"
                    )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}\n{self.diagnostics()}"
                )
            await asyncio.sleep(0.02)

    # --- gates and the step log ----------------------------------------------------------------

    def input(self, **extra: Any) -> dict[str, Any]:
        return {"log": str(self.log), **extra}

    def open_gate(self, *, pid: int | None = None, nonce: str | None = None) -> None:
        """Let held steps finish: one execution (``nonce``), one worker (``pid``) or all."""
        name = "open" if pid is None else f"open-{pid}"
        (self.gate / (name if nonce is None else f"open-{nonce}")).touch()

    def events(self) -> list[Event]:
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            run_id, seq, event, pid, at, nonce = line.split()
            out.append(Event(run_id, int(seq), event, int(pid), float(at), nonce))
        return out

    def bodies(self) -> list[Body]:
        """Every execution of every step body, in the order they started."""
        started: dict[str, Event] = {}
        ended: dict[str, Event] = {}
        for event in self.events():
            (started if event.event == "start" else ended)[event.nonce] = event
        out = []
        for nonce, first in started.items():
            last = ended.get(nonce)
            out.append(
                Body(
                    first.run_id,
                    first.seq,
                    first.pid,
                    nonce,
                    first.at,
                    None if last is None else last.at,
                )
            )
        return sorted(out, key=lambda body: body.started)

    def bodies_by_step(self) -> dict[tuple[str, int], list[Body]]:
        """Executions of each (run_id, seq), in the order they started."""
        out: dict[tuple[str, int], list[Body]] = {}
        for body in self.bodies():
            out.setdefault((body.run_id, body.seq), []).append(body)
        return out

    def count(self, event: str, *, seq: int | None = None, pid: int | None = None) -> Counter[str]:
        """How many ``event`` lines each run has (optionally for one step, one worker)."""
        return Counter(
            e.run_id
            for e in self.events()
            if e.event == event and (seq is None or e.seq == seq) and (pid is None or e.pid == pid)
        )

    # --- durable state, read straight from the database ---------------------------------------

    @property
    def postgres(self) -> bool:
        return self.url.startswith("postgresql:")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def _postgres(self) -> psycopg.Connection[Any]:
        from opsloom.store.dialects.postgres import postgres_target

        conninfo, schema = postgres_target(self.url)
        conn = psycopg.connect(conninfo, autocommit=True)
        conn.execute(f'SET search_path TO "{schema}"')
        return conn

    def checkpoint(self) -> None:
        """PostgreSQL's ``CHECKPOINT``: every dirty page written now."""
        with self._postgres() as pg:
            pg.execute("CHECKPOINT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query (``?`` placeholders, whatever the database)."""
        if self.postgres:
            with self._postgres() as pg:
                return pg.execute(sql.replace("?", "%s"), params).fetchall()
        conn = self._connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """One write in its own transaction (e.g. backdating a lease); rows changed."""
        if self.postgres:
            with self._postgres() as pg:
                return pg.execute(sql.replace("?", "%s"), params).rowcount
        conn = self._connect()
        try:
            return conn.execute(sql, params).rowcount
        finally:
            conn.close()

    def terminate_connections(self) -> int:
        """``pg_terminate_backend`` on every connection of this lab's workers; how many."""
        with self._postgres() as pg:
            row = pg.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (self.app_name,),
            ).fetchone()
        return 0 if row is None else int(row[0])

    def statuses(self) -> dict[str, str]:
        return {run_id: status for run_id, status in self.query("SELECT id, status FROM runs")}

    def completed(self, run_ids: Iterable[str]) -> bool:
        statuses = self.statuses()
        return all(statuses.get(run_id) == "completed" for run_id in run_ids)

    def steps(self) -> dict[tuple[str, int], dict[str, Any]]:
        """Every history entry by (run_id, seq)."""
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for (
            run_id,
            seq,
            kind,
            name,
            status,
            output,
            attempts,
            wake_at,
            started_at,
            completed_at,
        ) in self.query(
            "SELECT run_id, seq, kind, name, status, output, attempts, wake_at, "
            "started_at, completed_at FROM steps"
        ):
            out[(run_id, seq)] = {
                "kind": kind,
                "name": name,
                "status": status,
                "output": decode(output),
                "attempts": attempts,
                "wake_at": wake_at,
                "started_at": started_at,
                "completed_at": completed_at,
            }
        return out

    def owned_jobs(self) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT run_id, owner, token, lease_expires_at FROM jobs WHERE owner IS NOT NULL"
        )

    def job_owner(self, run_id: str) -> tuple[str | None, int] | None:
        rows = self.query("SELECT owner, token FROM jobs WHERE run_id = ?", (run_id,))
        return None if not rows else (rows[0][0], rows[0][1])


def process_state(pid: int) -> str:
    """The one-letter state of a process (``T`` when stopped), ``""`` if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def waits_for_lock(pid: int) -> bool:
    """Whether a thread of ``pid`` sleeps in SQLite's busy handler.

    An idle asyncio process waits in ``epoll_wait``; SQLite's busy handler, retrying a locked
    database, sleeps in ``nanosleep`` (on whichever thread opens the store).
    """
    try:
        threads = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return False
    for thread in threads:
        try:
            if (thread / "wchan").read_text().strip() in {"hrtimer_nanosleep", "do_nanosleep"}:
                return True
        except FileNotFoundError:
            continue
    return False
