"""Measuring instruments shared by the workloads: the JSON reporter, RSS, group commit, status.

Nothing here knows a workload; ``workloads.py`` composes these into W1-W4.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil

from opsloom import App

T = TypeVar("T")


def log(message: str) -> None:
    print(f"[opsloom-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Figures:
    """The figures of one workload, printed once as one JSON line (on time or at the cap)."""

    def __init__(
        self,
        out_fd: int,
        base: dict[str, Any],
        cap_seconds: float,
        cleanup: Callable[[], None] = lambda: None,
    ) -> None:
        self._out_fd = out_fd
        self._cleanup = cleanup
        self._fields = dict(base)
        self._lock = threading.Lock()
        self._emitted = False
        self._children: list[subprocess.Popen[bytes]] = []
        self._timer = threading.Timer(cap_seconds, self._on_cap)
        self._timer.daemon = True
        self._timer.start()

    def update(self, **fields: Any) -> None:
        with self._lock:
            self._fields.update(fields)

    def add_child(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._children.append(proc)

    def emit(self, *, timed_out: bool = False) -> None:
        with self._lock:
            if self._emitted:
                return
            self._emitted = True
            self._fields["timed_out"] = timed_out or bool(self._fields.get("timed_out"))
            line = json.dumps(self._fields) + "\n"
        self._timer.cancel()
        os.write(self._out_fd, line.encode())

    def _on_cap(self) -> None:
        log("hard cap reached: printing the figures gathered so far")
        with self._lock:
            children = list(self._children)
        for proc in children:
            if proc.poll() is None:
                proc.kill()
        self.emit(timed_out=True)
        self._cleanup()
        sys.stderr.flush()
        os._exit(3)


def take_stdout() -> int:
    """Keep the real stdout for the JSON line; anything else printed goes to stderr."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    return out_fd


def percentile_ms(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of durations in seconds, in milliseconds."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1] * 1000, 3)


def scaled(base: int, scale: float) -> int:
    return max(1, round(base * scale))


def rate(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


class RssSampler:
    """Samples a process's resident memory on a thread and keeps the peak."""

    def __init__(self, pid: int | None = None, interval: float = 0.1) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self.current()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def current(self) -> int:
        return int(self._proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.peak = max(self.peak, self.current())
            except psutil.Error:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return mb(self.peak)


def mb(size: int) -> float:
    return round(size / 2**20, 1)


def commit_probe_ms(directory: Path, synchronous: str, n: int = 100) -> float:
    """The p50 of a one-row SQLite commit (WAL, this synchronous level) on this disk.

    Context for the latency figures: a run that commits k times one after another cannot
    finish faster than k times this.
    """
    path = directory / "commit-probe.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("CREATE TABLE probe (n INTEGER)")
        samples = []
        for i in range(n):
            t = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO probe VALUES (?)", (i,))
            conn.execute("COMMIT")
            samples.append(time.perf_counter() - t)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return percentile_ms(samples, 50)


class WriterDelta:
    """Group commit over one phase: how many writes each SQLite transaction carried, and how
    many transactions wrote (each of those waits for an fsync with ``FULL``)."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._start = self._stats()

    def _stats(self) -> tuple[int, int, int]:
        store = self._app.store
        stats = getattr(store, "writer_stats", None)
        batches, ops = stats if isinstance(stats, tuple) else (0, 0)
        return batches, ops, int(getattr(store, "durable_commits", 0))

    def figures(self) -> dict[str, Any]:
        batches, ops, durable = (
            now - then for now, then in zip(self._stats(), self._start, strict=True)
        )
        return {
            "commits": batches,
            "durable_commits": durable,
            "writes": ops,
            "ops_per_batch": round(ops / batches, 1) if batches else None,
        }


class StatusCounter:
    """Counts runs by status straight from the database file, beside the engine."""

    def __init__(self, db_path: Path) -> None:
        self._conn = sqlite3.connect(db_path, timeout=30.0, check_same_thread=False)

    def counts_now(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT status, count(*) FROM runs GROUP BY status")
        return {str(status): int(count) for status, count in rows}

    async def counts(self) -> dict[str, int]:
        return await asyncio.to_thread(self.counts_now)

    def count_now(self, status: str) -> int:
        # Only the matching entries of runs_status_idx are visited.
        row = self._conn.execute("SELECT count(*) FROM runs WHERE status = ?", (status,))
        return int(row.fetchone()[0])

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql).fetchall()

    async def until(
        self,
        status: str,
        n: int,
        deadline: float,
        what: str,
        figures: Figures | None = None,
        field: str = "",
    ) -> bool:
        """Poll until ``n`` runs have ``status``; False when ``deadline`` passes first."""
        last_log = time.monotonic()
        while True:
            count = await asyncio.to_thread(self.count_now, status)
            if figures is not None and field:
                figures.update(**{field: count})
            if count >= n:
                return True
            now = time.monotonic()
            if now >= deadline:
                log(f"{what}: gave up with {count}/{n} {status}")
                return False
            if now - last_log >= 5:
                log(f"{what}: {count}/{n} {status}")
                last_log = now
            await asyncio.sleep(0.05 if n <= 10_000 else 0.2)

    def close(self) -> None:
        self._conn.close()


async def bounded(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise TimeoutError(f"{what} did not finish within {seconds:g}s") from None
