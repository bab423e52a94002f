"""Run analytics over a large history: how long each report takes, on SQLite or PostgreSQL.

Builds a store as the release before the rollups left it (schema 13), fills it with ``--runs``
finished runs (three steps each, 10 workflows, 5 % failed, spread evenly over the last
``--days`` days) straight into its tables, opens it with the current opsloom — which upgrades it
and rolls the history up once (``upgrade_seconds``) — then times every report of
:mod:`opsloom.analytics.report` ``--repeat`` times for a one-hour and a seven-day window, and
prints one JSON line per report and window with p50/p95 in milliseconds next to the 100 ms p95
target. Figures, not a test::

    .venv/bin/python bench/analytics.py                 # 1,000,000 runs on SQLite
    .venv/bin/python bench/analytics.py --runs 100000   # a quick look
    .venv/bin/python bench/analytics.py --db postgresql://127.0.0.1/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import resource
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from pg import drop_schema, libpq_url, with_schema
from psycopg import sql

from opsloom.analytics.report import REPORTS, report
from opsloom.codec import encode
from opsloom.store import open_store
from opsloom.store.dialects.sqlite import APPLICATION_ID
from opsloom.store.migration import migrations
from opsloom.store.rollup import ROLLUP_VERSION

#: The schema version before rollups: the store is built at it and upgraded by opening it.
BEFORE_ROLLUPS = ROLLUP_VERSION - 1
RUN_COLUMNS = (
    "id, workflow, version, status, error, created_at, started_at, updated_at, completed_at"
)
STEP_COLUMNS = (
    "run_id, seq, kind, name, status, output, error, attempts, wake_at, started_at, completed_at"
)

TARGET_P95_MS = 100.0
WINDOWS = {"1h": 3600.0, "7d": 7 * 86400.0}


def history(runs: int, days: float, now: float) -> Iterator[tuple[list[tuple], list[tuple]]]:
    """Finished runs and their steps, in chunks of 50,000 runs."""
    rng = random.Random(7)
    error = encode({"type": "TimeoutError", "message": "timeout after 30s talking to 'db'"})
    step_error = encode({"type": "TimeoutError", "message": "timeout after 30s"})
    span = days * 86400
    run_rows: list[tuple] = []
    step_rows: list[tuple] = []
    for i in range(runs):
        created = now - span + span * i / runs
        workflow = f"wf{i % 10}"
        failed = rng.random() < 0.05
        started = created + rng.random() * 0.05
        t = started
        for seq, name in enumerate(("fetch", "decide", "act"), start=1):
            took = rng.expovariate(1 / (0.02 * seq))
            last_failed = failed and seq == 3
            step_rows.append(
                (
                    f"r{i}",
                    seq,
                    "step",
                    name,
                    "failed" if last_failed else "completed",
                    None,
                    step_error if last_failed else None,
                    2 if rng.random() < 0.03 else 1,
                    None,
                    t,
                    t + took,
                )
            )
            t += took
        status = "failed" if failed else "completed"
        run_rows.append(
            (f"r{i}", workflow, "1", status, error if failed else None, created, started, t, t)
        )
        if len(run_rows) >= 50_000:
            yield run_rows, step_rows
            run_rows, step_rows = [], []
    if run_rows:
        yield run_rows, step_rows


def fill_sqlite(path: Path, runs: int, days: float, now: float) -> None:
    """A schema-13 SQLite store holding the history."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    for migration in migrations("sqlite")[:BEFORE_ROLLUPS]:
        conn.executescript(f"BEGIN; {migration.sql}; COMMIT;")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {BEFORE_ROLLUPS}")
    conn.execute("BEGIN")
    for run_rows, step_rows in history(runs, days, now):
        conn.executemany(
            f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 9)})", run_rows
        )
        conn.executemany(
            f"INSERT INTO steps ({STEP_COLUMNS}) VALUES ({', '.join('?' * 11)})", step_rows
        )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def fill_postgres(url: str, schema: str, runs: int, days: float, now: float) -> None:
    """A schema-13 PostgreSQL store (in ``schema``) holding the history, copied in."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        with conn.transaction():
            conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (BEFORE_ROLLUPS,))
            for migration in migrations("postgres")[:BEFORE_ROLLUPS]:
                conn.execute(migration.sql.encode())
        with conn.cursor() as cur:
            for run_rows, step_rows in history(runs, days, now):
                with cur.copy(f"COPY runs ({RUN_COLUMNS}) FROM STDIN") as copy:
                    for row in run_rows:
                        copy.write_row(row)
                with cur.copy(f"COPY steps ({STEP_COLUMNS}) FROM STDIN") as copy:
                    for row in step_rows:
                        copy.write_row(row)
        conn.execute("ANALYZE")


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


async def measure(url: str, now: float, repeat: int) -> list[dict[str, object]]:
    store = open_store(url)
    await store.open()
    lines: list[dict[str, object]] = []
    try:
        for window_name, window in WINDOWS.items():
            for what in REPORTS:
                times, cpu = [], []
                for _ in range(repeat + 1):
                    t0, c0 = time.perf_counter(), time.process_time()
                    await report(store, what, now, window, 3600.0)
                    times.append((time.perf_counter() - t0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)
                # The first call may summarise what no report asked for before (once).
                first = times.pop(0)
                cpu.pop(0)
                p95 = nearest_rank(times, 95)
                lines.append(
                    {
                        "report": what,
                        "window": window_name,
                        "first_ms": round(first, 1),
                        "p50_ms": round(nearest_rank(times, 50), 1),
                        "p95_ms": round(p95, 1),
                        "target_p95_ms": TARGET_P95_MS,
                        "met": p95 <= TARGET_P95_MS,
                        # This process's CPU (SQLite runs in it; PostgreSQL's server does
                        # not): on a loaded machine, wall-clock tails are mostly waiting.
                        "cpu_p50_ms": round(nearest_rank(cpu, 50), 1),
                        "cpu_p95_ms": round(nearest_rank(cpu, 95), 1),
                        "load_1m": round(os.getloadavg()[0], 1),
                    }
                )
    finally:
        await store.close()
    return lines


async def upgrade(url: str) -> float:
    """Open the store (which migrates it and rolls its history up); the seconds it took."""
    t0 = time.perf_counter()
    store = open_store(url)
    await store.open()
    await store.close()
    return time.perf_counter() - t0


def _upgrade_here(url: str, answer: Any) -> None:
    answer.put(asyncio.run(upgrade(url)))


def upgrade_apart(url: str) -> tuple[float, float]:
    """:func:`upgrade` in a fresh process: (seconds, that process's peak resident MB), so the
    backfill's memory is not mixed with the history this process built."""
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    child = context.Process(target=_upgrade_here, args=(url, answer))
    child.start()
    seconds = answer.get()
    child.join()
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, peak_kb / 1024


def bench(url: str, fill: Callable[[], None], args: argparse.Namespace, now: float) -> None:
    dialect = url.split(":", 1)[0]
    t0 = time.perf_counter()
    fill()
    filled = time.perf_counter() - t0
    upgraded, peak_mb = upgrade_apart(url)
    head = {"store": dialect, "runs": args.runs, "days": args.days}
    timed = {"fill_seconds": round(filled, 1), "upgrade_seconds": round(upgraded, 1)}
    print(json.dumps({**head, **timed, "upgrade_peak_rss_mb": round(peak_mb, 1)}), flush=True)
    for line in asyncio.run(measure(url, now, args.repeat)):
        print(json.dumps({**head, **line}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="finished runs (1,000,000)")
    parser.add_argument("--days", type=float, default=30.0, help="days they span (30)")
    parser.add_argument("--repeat", type=int, default=20, help="timings per report (20)")
    parser.add_argument("--db", default="sqlite", help="sqlite (default) or a PostgreSQL URL")
    args = parser.parse_args()
    now = time.time()
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory(prefix="opsloom-analytics-") as folder:
            path = Path(folder) / "analytics.db"
            bench(
                f"sqlite:///{path}",
                lambda: fill_sqlite(path, args.runs, args.days, now),
                args,
                now,
            )
        return
    schema = f"bench_analytics_{os.getpid()}"
    try:
        bench(
            with_schema(args.db, schema),
            lambda: fill_postgres(args.db, schema, args.runs, args.days, now),
            args,
            now,
        )
    finally:
        drop_schema(args.db, schema)


if __name__ == "__main__":
    main()
