#!/usr/bin/env python3
"""DBOS peer for the opsloom benchmark: workloads W1-W4 on DBOS (SQLite or PostgreSQL).

Runs only with the interpreter of ``bench/.venv-dbos`` (see ``run_dbos.sh``); DBOS is never
a dependency of opsloom itself.

    python bench/peers/dbos_workloads.py --workload W1 [--dir TMPDIR] [--scale 1.0]
        [--system-database-url postgresql://user@host:5432/fresh_db]

Each invocation uses a fresh SQLite system database file inside ``--dir`` (or the PostgreSQL
database given, which must be fresh: the caller creates and drops it) and prints exactly one
JSON line on stdout when it finishes; everything else (DBOS's own logging included) goes to
stderr. A watchdog bounds every run: when the hard cap is reached the figures gathered so far are
printed with ``"timed_out": true`` and the process exits.

W4 runs its workers as child processes of this same script (``--role worker``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
from dbos import DBOS, DBOSConfig, SetWorkflowID

APP_NAME = "opsloom-bench"
HARD_CAP_S = 290.0  # whole-run cap: just under the ~5 minutes the harness allows

W1_WORKFLOWS = 2_000
W1_LATENCY_RUNS = 200
W2_WORKFLOWS = 100
W2_FANOUT = 20
W3_BASE = 100_000
# DBOS on SQLite cannot park and release 100k waiters within ~3 minutes on this machine
# (every park, send, receive and completion is its own committed transaction, and the SQLite
# notification poller issues one query per waiter per second). This default scale is the
# largest round N measured to finish inside that budget on the reference 2-core box.
W3_DEFAULT_SCALE = 0.04
W3_TOPIC = "go"
W4_WORKFLOWS = 500
W4_SLOW_STEP_S = 2.0
W4_KILL_AFTER_S = 1.0
W4_QUEUE = "w4"


# --------------------------------------------------------------------------------------------
# Output and the hard cap
# --------------------------------------------------------------------------------------------


class Reporter:
    """Collects the figures of one run and prints them as one JSON line, exactly once.

    A daemon timer enforces the hard cap: it prints whatever has been gathered with
    ``timed_out: true``, kills registered child processes and ends the process, because a
    wedged DBOS thread pool could otherwise keep the interpreter alive forever.
    """

    def __init__(
        self,
        out_fd: int,
        base: dict[str, Any],
        cap_s: float,
        cleanup: Callable[[], None] = lambda: None,
    ) -> None:
        self._out_fd = out_fd
        self._cleanup = cleanup
        self._fields: dict[str, Any] = dict(base)
        self._lock = threading.Lock()
        self._emitted = False
        self._children: list[subprocess.Popen[bytes]] = []
        self._timer = threading.Timer(cap_s, self._on_cap)
        self._timer.daemon = True
        self._timer.start()

    def update(self, **fields: Any) -> None:
        with self._lock:
            self._fields.update(fields)

    def add_child(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._children.append(proc)

    def emit(self, timed_out: bool = False) -> None:
        with self._lock:
            if self._emitted:
                return
            self._emitted = True
            self._fields["timed_out"] = timed_out
            line = json.dumps(self._fields, sort_keys=False) + "\n"
        os.write(self._out_fd, line.encode())
        self._timer.cancel()

    def _on_cap(self) -> None:
        log("hard cap reached: reporting partial figures")
        with self._lock:
            children = list(self._children)
        for proc in children:
            if proc.poll() is None:
                proc.kill()
        self.emit(timed_out=True)
        self._cleanup()
        sys.stderr.flush()
        os._exit(0)


def log(msg: str) -> None:
    print(f"[dbos-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def take_stdout() -> int:
    """Reserve the real stdout for the JSON line and send everything else printed to stderr."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    return out_fd


def percentile_ms(samples_s: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of durations in seconds, returned in milliseconds."""
    ordered = sorted(samples_s)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return round(ordered[rank - 1] * 1000.0, 3)


def scaled(base: int, scale: float) -> int:
    return max(1, round(base * scale))


# --------------------------------------------------------------------------------------------
# DBOS setup
# --------------------------------------------------------------------------------------------


def fresh_db_path(directory: Path, tag: str) -> Path:
    path = directory / f"dbos-{tag}-{os.getpid()}-{time.time_ns()}.sqlite"
    if path.exists():
        raise SystemExit(f"refusing to reuse existing database file {path}")
    return path


def prepare_journal(db_path: Path, journal: str) -> None:
    """Optionally switch the (still empty) database file to WAL before DBOS opens it.

    DBOS 3.x opens its SQLite system database with sqlite's default rollback journal and sets
    only ``busy_timeout`` and ``foreign_keys`` per connection. ``journal_mode=WAL`` is a
    persistent property of the file, so setting it once here is honoured by every DBOS
    connection afterwards. The default run leaves DBOS exactly as shipped.
    """
    if journal == "default":
        return
    conn = sqlite3.connect(db_path)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    finally:
        conn.close()
    if str(mode).lower() != "wal":
        raise SystemExit(f"could not switch {db_path} to WAL (got {mode})")


class SystemDb:
    """DBOS's system database: a SQLite file (as shipped) or a PostgreSQL database.

    The benchmark reads it beside DBOS (parked, pending and checkpointed counts), so it knows
    where each kind keeps its tables: DBOS puts them in the schema ``dbos`` on PostgreSQL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite:")

    @classmethod
    def sqlite(cls, path: Path) -> SystemDb:
        # DBOS 3.x selects its SQLite system database purely from the URL scheme
        # (SystemDatabase.create picks the SQLite implementation for "sqlite..." URLs); an
        # absolute path gives the four-slash form sqlite:////abs/path.
        return cls(f"sqlite:///{path}")

    @property
    def path(self) -> Path:
        return Path(self.url.removeprefix("sqlite:///"))

    def table(self, name: str) -> str:
        return name if self.is_sqlite else f"dbos.{name}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one read query through a connection of our own.

        SQLite is not opened read-only: after a SIGKILL the file may carry a hot rollback
        journal, and SQLite must be able to roll it back before anyone can read.
        """
        if self.is_sqlite:
            conn = sqlite3.connect(self.path, timeout=30.0)
            try:
                return conn.execute(sql).fetchall()
            finally:
                conn.close()
        import psycopg  # a dependency of DBOS itself, for its PostgreSQL system database

        with psycopg.connect(self.url, autocommit=True) as pg_conn:
            return pg_conn.execute(sql.encode()).fetchall()


def dbos_config(db: SystemDb) -> DBOSConfig:
    return {
        "name": APP_NAME,
        "system_database_url": db.url,
        # Per-workflow INFO logs are not part of what is measured.
        "log_level": "WARNING",
    }


def launch_dbos(db: SystemDb) -> None:
    DBOS(config=dbos_config(db))
    DBOS.launch()


def shutdown_dbos() -> None:
    try:
        DBOS.destroy(workflow_completion_timeout_sec=0)
    except Exception as exc:  # shutting down must not hide the figures already printed
        log(f"DBOS.destroy failed: {exc!r}")


# --------------------------------------------------------------------------------------------
# Workflows. They are registered at import time, so the W4 workers (this same file) compute
# the same application version, which DBOS requires before it recovers a workflow.
# --------------------------------------------------------------------------------------------


@DBOS.step()
def chain_step(x: int) -> int:
    return x + 1


@DBOS.workflow()
def chain_workflow(x: int) -> int:
    return chain_step(chain_step(chain_step(x)))


@DBOS.step()
async def fanout_step(i: int) -> int:
    return i + 1


@DBOS.workflow()
async def fanout_workflow(width: int) -> int:
    # DBOS 3.x runs steps of an async workflow concurrently when they are created as tasks in
    # a deterministic order and gathered: each step takes its step ID when its task starts,
    # and tasks start in creation order.
    tasks = [asyncio.create_task(fanout_step(i)) for i in range(width)]
    return sum(await asyncio.gather(*tasks))


@DBOS.workflow()
async def waiting_workflow(timeout_s: float) -> Any:
    return await DBOS.recv_async(W3_TOPIC, timeout_seconds=timeout_s)


def append_step_line(log_path: str, step_no: int) -> None:
    # One write(2) on an O_APPEND descriptor: lines from concurrent threads and from the two
    # worker processes never interleave.
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{DBOS.workflow_id} {step_no}\n".encode())
    finally:
        os.close(fd)


@DBOS.step()
def crash_step(log_path: str, step_no: int, sleep_s: float) -> int:
    # Logged on entry, so a step that was killed mid-way and rerun shows up twice.
    append_step_line(log_path, step_no)
    if sleep_s > 0:
        time.sleep(sleep_s)
    return step_no


@DBOS.workflow()
def crash_workflow(log_path: str) -> int:
    crash_step(log_path, 1, 0.0)
    crash_step(log_path, 2, W4_SLOW_STEP_S)
    return crash_step(log_path, 3, 0.0)


# --------------------------------------------------------------------------------------------
# W1: chain
# --------------------------------------------------------------------------------------------


def run_w1(rep: Reporter, db: SystemDb, scale: float) -> None:
    launch_dbos(db)
    n = scaled(W1_WORKFLOWS, scale)
    # Start method: DBOS.start_workflow on a sync workflow (one executor thread per workflow).
    # Measured on this machine at n=2000 against the alternatives DBOS offers: start_workflow
    # ~41 wf/s, Queue.enqueue (polling 1 s) ~40 wf/s, start_workflow_async on an async
    # workflow ~25 wf/s. All are bound by one SQLite commit per start/step/finish.
    rep.update(n=n, start_method="DBOS.start_workflow")
    log(f"W1: starting {n} chain workflows")
    t0 = time.perf_counter()
    handles = [DBOS.start_workflow(chain_workflow, i) for i in range(n)]
    rep.update(started=n)
    for i, handle in enumerate(handles):
        result = handle.get_result()
        if result != i + 3:
            raise RuntimeError(f"W1 workflow {i} returned {result}")
        if (i + 1) % 200 == 0:
            rep.update(completed=i + 1)
    elapsed = time.perf_counter() - t0
    rep.update(
        completed=n,
        seconds=round(elapsed, 3),
        workflows_per_s=round(n / elapsed, 2),
        steps_per_s=round(3 * n / elapsed, 2),
    )
    log(f"W1: throughput phase took {elapsed:.2f}s")

    n_lat = scaled(W1_LATENCY_RUNS, scale)
    latencies: list[float] = []
    for i in range(n_lat):
        t = time.perf_counter()
        result = DBOS.start_workflow(chain_workflow, i).get_result()
        latencies.append(time.perf_counter() - t)
        if result != i + 3:
            raise RuntimeError(f"W1 latency workflow {i} returned {result}")
        rep.update(
            latency_n=len(latencies),
            latency_p50_ms=percentile_ms(latencies, 50),
            latency_p99_ms=percentile_ms(latencies, 99),
        )
    log("W1: latency phase done")
    rep.emit()
    shutdown_dbos()


# --------------------------------------------------------------------------------------------
# W2: fan-out
# --------------------------------------------------------------------------------------------


async def w2_main(rep: Reporter, n: int) -> None:
    log(f"W2: starting {n} workflows x {W2_FANOUT} parallel steps")
    t0 = time.perf_counter()
    handles = await asyncio.gather(
        *(DBOS.start_workflow_async(fanout_workflow, W2_FANOUT) for _ in range(n))
    )
    results = await asyncio.gather(*(h.get_result() for h in handles))
    elapsed = time.perf_counter() - t0
    expected = W2_FANOUT * (W2_FANOUT + 1) // 2
    bad = [r for r in results if r != expected]
    if bad:
        raise RuntimeError(f"W2: {len(bad)} workflows returned a wrong sum")
    rep.update(
        seconds=round(elapsed, 3),
        workflows_per_s=round(n / elapsed, 2),
        steps_per_s=round(n * W2_FANOUT / elapsed, 2),
    )


def run_w2(rep: Reporter, db: SystemDb, scale: float) -> None:
    launch_dbos(db)
    n = scaled(W2_WORKFLOWS, scale)
    rep.update(n=n, fanout=W2_FANOUT, fanout_method="asyncio.gather of async steps")
    asyncio.run(w2_main(rep, n))
    rep.emit()
    shutdown_dbos()


# --------------------------------------------------------------------------------------------
# W3: many parked waiters
# --------------------------------------------------------------------------------------------


class RssSampler:
    """Samples this process's RSS (and thread count) on a background thread, keeping peaks."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self._proc = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak_bytes = 0
        self.peak_threads = 0
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, self._proc.memory_info().rss)
        self.peak_threads = max(self.peak_threads, self._proc.num_threads())

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / (1024 * 1024), 1)


def count_parked(db: SystemDb) -> int:
    """Workflows whose recv has finished its setup.

    recv records its durable timeout as a "DBOS.sleep" operation before it starts waiting,
    so counting those rows in the system database tells how many runs are really parked,
    not merely started.
    """
    table = db.table("operation_outputs")
    return int(db.query(f"SELECT count(*) FROM {table} WHERE function_name = 'DBOS.sleep'")[0][0])


async def w3_main(rep: Reporter, db: SystemDb, n: int, start_concurrency: int) -> None:
    rss = RssSampler()
    rep.update(peak_rss_mb=rss.peak_mb)
    recv_timeout_s = 3600.0  # far beyond the hard cap: nobody may time out of recv
    log(f"W3: parking {n} workflows in DBOS.recv_async")
    t0 = time.perf_counter()
    gate = asyncio.Semaphore(start_concurrency)

    started = 0

    async def start_one(i: int) -> Any:
        nonlocal started
        async with gate:
            with SetWorkflowID(f"w3-{i:06d}"):
                handle = await DBOS.start_workflow_async(waiting_workflow, recv_timeout_s)
        started += 1
        if started % 500 == 0:
            rep.update(started=started, peak_rss_mb=rss.peak_mb)
        return handle

    # Starts are bounded only to keep a hundred thousand simultaneous thread hand-offs from
    # spawning as many executor threads; the workflows themselves all run concurrently.
    handles = await asyncio.gather(*(start_one(i) for i in range(n)))
    t_started = time.perf_counter() - t0
    rep.update(started=n, start_seconds=round(t_started, 3))
    log(f"W3: all {n} started after {t_started:.1f}s; waiting until parked")
    parked = 0
    while parked < n:
        parked = await asyncio.to_thread(count_parked, db)
        rep.update(parked=parked, peak_rss_mb=rss.peak_mb)
        if parked < n:
            await asyncio.sleep(0.25)
    park_s = time.perf_counter() - t0
    rep.update(park_seconds=round(park_s, 3), peak_rss_mb=rss.peak_mb)
    log(f"W3: all parked after {park_s:.1f}s; signalling")

    done = 0

    def on_done(_: Any) -> None:
        nonlocal done
        done += 1

    results = [asyncio.ensure_future(h.get_result()) for h in handles]
    for fut in results:
        fut.add_done_callback(on_done)
    t1 = time.perf_counter()
    for i, handle in enumerate(handles):
        await DBOS.send_async(handle.get_workflow_id(), i, W3_TOPIC)
        if (i + 1) % 500 == 0:
            rep.update(signalled=i + 1, completed=done, peak_rss_mb=rss.peak_mb)
    rep.update(signalled=n, send_seconds=round(time.perf_counter() - t1, 3))
    log(f"W3: all signalled after {time.perf_counter() - t1:.1f}s; waiting for completion")
    pending = set(results)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=1.0)
        rep.update(completed=done, peak_rss_mb=rss.peak_mb)
    elapsed = time.perf_counter() - t1
    rss.stop()
    wrong = sum(1 for i, fut in enumerate(results) if fut.result() != i)
    if wrong:
        raise RuntimeError(f"W3: {wrong} workflows received the wrong message")
    rep.update(
        completed=n,
        seconds_to_all_complete=round(elapsed, 3),
        peak_rss_mb=rss.peak_mb,
        peak_threads=rss.peak_threads,
    )


def run_w3(rep: Reporter, db: SystemDb, scale: float) -> None:
    launch_dbos(db)
    n = scaled(W3_BASE, scale)
    rep.update(n=n, signal_method="DBOS.send_async, one message per run")
    asyncio.run(w3_main(rep, db, n, start_concurrency=64))
    rep.emit()
    shutdown_dbos()


# --------------------------------------------------------------------------------------------
# W4: crash and recovery
# --------------------------------------------------------------------------------------------


def read_line(proc: subprocess.Popen[bytes], deadline: float) -> str | None:
    """One line from a child's stdout, or None once the deadline passes or the child exits."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if not ready:
            continue
        chunk = os.read(fd, 1)  # byte-wise: nothing is left stranded in a Python buffer
        if not chunk:
            return None
        if chunk == b"\n":
            return buf.decode()
        buf += chunk
    return None


def spawn_worker(
    rep: Reporter, phase: str, db: SystemDb, log_path: Path, n: int
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--role",
        "worker",
        "--phase",
        phase,
        "--db",
        db.url,
        "--step-log",
        str(log_path),
        "--n",
        str(n),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr)
    rep.add_child(proc)
    return proc


def status_counts(db: SystemDb) -> dict[str, int]:
    """Workflow states straight from the system database (no DBOS process is running)."""
    table = db.table("workflow_status")
    rows = db.query(f"SELECT status, count(*) FROM {table} GROUP BY status")
    return {str(state): int(count) for state, count in rows}


def step_log_counts(log_path: Path) -> collections.Counter[tuple[str, int]]:
    counts: collections.Counter[tuple[str, int]] = collections.Counter()
    if not log_path.exists():
        return counts
    for line in log_path.read_text().splitlines():
        wf, step = line.split()
        counts[(wf, int(step))] += 1
    return counts


def wait_for_steps(proc: subprocess.Popen[bytes], log_path: Path, deadline: float) -> bool:
    """True once the step log has its first line, False if the worker died or time ran out."""
    while time.monotonic() < deadline:
        if log_path.exists() and log_path.stat().st_size > 0:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def checkpointed_steps(db: SystemDb) -> set[tuple[str, int]]:
    """(workflow, step number) pairs whose step output DBOS had committed.

    crash_workflow records nothing but its three steps, so function IDs 1..3 are steps 1..3.
    """
    rows = db.query(
        f"SELECT workflow_uuid, function_id FROM {db.table('operation_outputs')}"
        " WHERE workflow_uuid LIKE 'w4-%' AND error IS NULL"
    )
    return {(str(wf), int(fid)) for wf, fid in rows}


def run_w4(rep: Reporter, db: SystemDb, scale: float, work_dir: Path, cap_s: float) -> None:
    """Same protocol as opsloom's W4: all runs are recorded first by a process that runs none of
    them, a worker process picks them up, and it is SIGKILLed 1 s after its first step began.

    DBOS's equivalent of "recorded but not yet taken by a worker" is a workflow enqueued on a
    DBOS queue by a process that does not listen to that queue.
    """
    n = scaled(W4_WORKFLOWS, scale)
    log_path = work_dir / f"w4-steps-{os.getpid()}.log"
    rep.update(n=n, kill_after_s=W4_KILL_AFTER_S, start_method=f"queue '{W4_QUEUE}'")
    deadline = time.monotonic() + cap_s

    recorder = spawn_worker(rep, "record", db, log_path, n)
    if read_line(recorder, deadline) != "recorded" or recorder.wait() != 0:
        raise RuntimeError("W4: the recording process failed")
    log(f"W4: {n} runs enqueued; starting the first worker")

    first = spawn_worker(rep, "start", db, log_path, n)
    if not wait_for_steps(first, log_path, deadline):
        first.kill()
        raise RuntimeError("W4: the first worker never ran a step")
    time.sleep(W4_KILL_AFTER_S)
    first.send_signal(signal.SIGKILL)
    first.wait()
    states = status_counts(db)
    done_at_kill = checkpointed_steps(db)
    rep.update(
        completed_before_kill=states.get("SUCCESS", 0),
        pending_at_kill=states.get("PENDING", 0),
        enqueued_at_kill=states.get("ENQUEUED", 0),
        step_bodies_started_before_kill=sum(step_log_counts(log_path).values()),
    )
    log(f"W4: worker killed; workflow states in the system database: {states}")

    t_restart = time.perf_counter()
    second = spawn_worker(rep, "recover", db, log_path, n)
    line = read_line(second, deadline)
    recovery_s = time.perf_counter() - t_restart
    if line is None:
        second.kill()
        raise RuntimeError("W4: recovery worker reported nothing")
    status = json.loads(line)
    second.wait()

    counts = step_log_counts(log_path)
    twice = [key for key, count in counts.items() if count > 1]
    workflows = {wf for (wf, _) in counts}
    rep.update(
        missing=n - int(status["success"]),
        steps_run_twice=len(twice),
        completed_steps_rerun=sum(1 for key in twice if key in done_at_kill),
        step_executions=sum(counts.values()),
        steps_never_run=sum(1 for wf in workflows for s in (1, 2, 3) if (wf, s) not in counts)
        + 3 * (n - len(workflows)),
        recovery_seconds=round(recovery_s, 3),
    )
    rep.emit(timed_out=bool(status["timed_out"]))


def worker_main(args: argparse.Namespace) -> None:
    """Child processes of W4.

    record:  enqueue the runs on the W4 queue without listening to it, then exit.
    start:   a worker that dequeues and runs them; it waits to be SIGKILLed.
    recover: a new worker; DBOS recovers this executor's pending runs at launch (and its queue
             thread takes any still enqueued). It reports once no run is pending.
    """
    out_fd = take_stdout()
    db = SystemDb(args.db)
    deadline = time.monotonic() + HARD_CAP_S
    if args.phase == "record":
        DBOS(config=dbos_config(db))
        DBOS.listen_queues([])  # must precede launch: this process runs none of the runs
        DBOS.launch()
        queue = DBOS.register_queue(W4_QUEUE)
        for i in range(args.n):
            with SetWorkflowID(f"w4-{i:04d}"):
                queue.enqueue(crash_workflow, args.step_log)
        os.write(out_fd, b"recorded\n")
        shutdown_dbos()
        os._exit(0)

    if args.phase == "start":
        launch_dbos(db)
        while time.monotonic() < deadline:  # never exits on its own before the parent's kill
            time.sleep(0.5)
        os._exit(3)

    t0 = time.perf_counter()
    launch_dbos(db)
    timed_out = True
    while time.monotonic() < deadline:
        # Only the unfinished runs are listed while polling, to keep the poll itself light.
        pending = DBOS.list_workflows(
            status=["PENDING", "ENQUEUED"],
            workflow_id_prefix="w4-",
            load_input=False,
            load_output=False,
        )
        if not pending:
            timed_out = False
            break
        time.sleep(0.1)
    success = len(
        DBOS.list_workflows(
            status="SUCCESS", workflow_id_prefix="w4-", load_input=False, load_output=False
        )
    )
    report = {
        "success": success,
        "timed_out": timed_out,
        "worker_seconds": round(time.perf_counter() - t0, 3),
    }
    os.write(out_fd, (json.dumps(report) + "\n").encode())
    shutdown_dbos()
    os._exit(0)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workload", choices=["W1", "W2", "W3", "W4"])
    p.add_argument(
        "--dir",
        help="directory for the SQLite files (default: a fresh temp dir, removed afterwards)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=None,
        help=f"workload size factor (default 1.0; W3 defaults to {W3_DEFAULT_SCALE})",
    )
    p.add_argument(
        "--cap-seconds",
        type=float,
        default=HARD_CAP_S,
        help="hard cap on the whole run; the figures gathered so far are then reported with "
        "timed_out=true (default %(default)s)",
    )
    p.add_argument(
        "--sqlite-journal",
        choices=["default", "wal"],
        default="default",
        help="'default' leaves DBOS as shipped (rollback journal); 'wal' switches "
        "the fresh file to WAL first",
    )
    p.add_argument(
        "--system-database-url",
        help="a fresh PostgreSQL database for DBOS's system tables, e.g. "
        "postgresql://postgres@127.0.0.1:5432/dbos_bench (default: a SQLite file in --dir)",
    )
    # Internal: W4 worker processes.
    p.add_argument("--role", choices=["bench", "worker"], default="bench", help=argparse.SUPPRESS)
    p.add_argument("--phase", choices=["record", "start", "recover"], help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    p.add_argument("--step-log", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "bench" and args.workload is None:
        p.error("--workload is required")
    return args


def main() -> None:
    args = parse_args()
    if args.role == "worker":
        worker_main(args)
        return

    out_fd = take_stdout()
    scale = (
        args.scale
        if args.scale is not None
        else (W3_DEFAULT_SCALE if args.workload == "W3" else 1.0)
    )
    own_dir = args.dir is None
    work_dir = Path(tempfile.mkdtemp(prefix="dbos-bench-")) if own_dir else Path(args.dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    work_dir = work_dir.resolve()
    if args.system_database_url:
        db = SystemDb(args.system_database_url)
    else:
        db = SystemDb.sqlite(fresh_db_path(work_dir, args.workload.lower()))
        prepare_journal(db.path, args.sqlite_journal)

    def cleanup() -> None:
        if own_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    rep = Reporter(
        out_fd,
        {
            "engine": "dbos",
            "workload": args.workload,
            "dbos_version": dbos_version(),
            "system_database": "sqlite" if db.is_sqlite else "postgresql",
            "sqlite_journal": args.sqlite_journal if db.is_sqlite else None,
            "scale": scale,
        },
        args.cap_seconds,
        cleanup,
    )
    try:
        if args.workload == "W1":
            run_w1(rep, db, scale)
        elif args.workload == "W2":
            run_w2(rep, db, scale)
        elif args.workload == "W3":
            run_w3(rep, db, scale)
        else:
            run_w4(rep, db, scale, work_dir, args.cap_seconds)
    except Exception as exc:
        log(f"{args.workload} failed: {exc!r}")
        rep.update(error=repr(exc))
        rep.emit()
        cleanup()
        sys.stderr.flush()
        os._exit(1)
    cleanup()


def dbos_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dbos")
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
