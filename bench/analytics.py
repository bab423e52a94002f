"""Run analytics over a large history: how long each report takes on SQLite.

Fills a fresh SQLite store with ``--runs`` finished runs (three steps each, 10 workflows, 5 %
failed, spread evenly over the last ``--days`` days) straight into its tables, then times every
report of :mod:`opsloom.analytics.report` ``--repeat`` times for a one-hour and a seven-day
window, and prints one JSON line per report and window with p50/p95 in milliseconds next to the
100 ms p95 target. Figures, not a test::

    .venv/bin/python bench/analytics.py                 # 1,000,000 runs
    .venv/bin/python bench/analytics.py --runs 100000   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from opsloom.analytics.report import REPORTS, report
from opsloom.codec import encode
from opsloom.store import open_store

TARGET_P95_MS = 100.0
WINDOWS = {"1h": 3600.0, "7d": 7 * 86400.0}


def fill(path: Path, runs: int, days: float, now: float) -> None:
    """Insert ``runs`` finished runs and their steps in one transaction."""
    rng = random.Random(7)
    error = encode({"type": "TimeoutError", "message": "timeout after 30s talking to 'db'"})
    step_error = encode({"type": "TimeoutError", "message": "timeout after 30s"})
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    span = days * 86400
    run_rows = []
    step_rows = []
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
        run_rows.append(
            (
                f"r{i}",
                workflow,
                "1",
                "failed" if failed else "completed",
                error if failed else None,
                created,
                started,
                t,
                t,
            )
        )
        if len(run_rows) >= 50_000:
            _flush(conn, run_rows, step_rows)
    _flush(conn, run_rows, step_rows)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def _flush(conn: sqlite3.Connection, run_rows: list[tuple], step_rows: list[tuple]) -> None:
    conn.executemany(
        "INSERT INTO runs (id, workflow, version, status, error, created_at, started_at, "
        "updated_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        run_rows,
    )
    conn.executemany(
        "INSERT INTO steps (run_id, seq, kind, name, status, output, error, attempts, wake_at, "
        "started_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        step_rows,
    )
    run_rows.clear()
    step_rows.clear()


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
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    await report(store, what, now, window, 3600.0)
                    times.append((time.perf_counter() - t0) * 1000)
                p95 = nearest_rank(times, 95)
                lines.append(
                    {
                        "report": what,
                        "window": window_name,
                        "p50_ms": round(nearest_rank(times, 50), 1),
                        "p95_ms": round(p95, 1),
                        "target_p95_ms": TARGET_P95_MS,
                        "met": p95 <= TARGET_P95_MS,
                    }
                )
    finally:
        await store.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="finished runs (1,000,000)")
    parser.add_argument("--days", type=float, default=30.0, help="days they span (30)")
    parser.add_argument("--repeat", type=int, default=20, help="timings per report (20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsloom-analytics-") as folder:
        path = Path(folder) / "analytics.db"
        url = f"sqlite:///{path}"
        now = time.time()

        async def migrate() -> None:
            store = open_store(url)
            await store.open()
            await store.close()

        asyncio.run(migrate())
        t0 = time.perf_counter()
        fill(path, args.runs, args.days, now)
        filled = time.perf_counter() - t0
        print(json.dumps({"runs": args.runs, "days": args.days, "fill_seconds": round(filled, 1)}))
        for line in asyncio.run(measure(url, now, args.repeat)):
            print(json.dumps({"runs": args.runs, **line}), flush=True)


if __name__ == "__main__":
    main()
