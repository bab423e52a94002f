"""The benchmark workloads on opsloom, one per process, each on a fresh database.

    .venv/bin/python bench/workloads.py --workload W1 [--scale 1.0] [--synchronous FULL]
    .venv/bin/python bench/workloads.py --workload W1 --store postgresql://… --workers 2

``bench/run.py`` starts one such process per workload (so memory and imports of one workload
never leak into the next) and reads the single JSON line it prints on stdout; everything else
goes to stderr. Every workload bounds itself: phases give up at their own deadline, and a
watchdog thread prints the figures gathered so far with ``"timed_out": true`` and ends the
process if the whole workload runs past its hard cap.

On SQLite (the default), W1-W3 run an embedded worker inside this process (``async with
app``); W4 runs ``opsloom worker`` subprocesses and kills one of them with SIGKILL. With
``--store postgresql://…`` every workload runs in a fresh schema of that database, executed by
``--workers`` worker processes (``pg_workloads.py``), and ``PICKUP`` measures the idle pickup
latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import flows
import pg
import pg_workloads
import psutil
from measure import (
    Figures,
    RssSampler,
    StatusCounter,
    WriterDelta,
    bounded,
    commit_probe_ms,
    log,
    mb,
    percentile_ms,
    rate,
    scaled,
    take_stdout,
)
from workers import spawn_worker, step_lines, stop_worker, tail

HERE = Path(__file__).resolve().parent

W1_WORKFLOWS = 2_000
W1_LATENCY_RUNS = 200
W2_WORKFLOWS = 100
W2_WIDTH = 20
W3_RUNS = 100_000
W3_CHUNK = 2_000  # starts and signals are sent in gathered chunks of this size
W4_RUNS = 500
#: The default lease: a restarted worker (or a live peer) must not wait for it.
W4_LEASE_SECONDS = 30.0
W4_KILL_AFTER_SECONDS = 1.0

#: Whole-workload caps (seconds) enforced by the watchdog; phases have tighter deadlines.
HARD_CAP = {"W1": 300.0, "W2": 300.0, "W3": 1_200.0, "W4": 300.0, "PICKUP": 600.0}


# --- W1: chain -----------------------------------------------------------------------------


async def w1_chain(fig: Figures, url: str, db_path: Path, scale: float, synchronous: str) -> None:
    n = scaled(W1_WORKFLOWS, scale)
    n_latency = scaled(W1_LATENCY_RUNS, scale)
    rss = RssSampler()
    fig.update(n=n, steps_per_workflow=3, latency_n=n_latency)
    app = flows.build(url, synchronous=synchronous)
    async with app:
        writes = WriterDelta(app)
        t0 = time.perf_counter()
        handles = await asyncio.gather(*(app.start("chain", i) for i in range(n)))
        started = time.perf_counter() - t0
        results = await bounded(
            asyncio.gather(*(h.result() for h in handles)), 120, "W1 throughput"
        )
        seconds = time.perf_counter() - t0
        wrong = sum(1 for i, result in enumerate(results) if result != i + 3)
        fig.update(
            start_seconds=round(started, 3),
            seconds=round(seconds, 3),
            workflows_per_s=rate(n, seconds),
            steps_per_s=rate(3 * n, seconds),
            wrong_results=wrong,
            **writes.figures(),
        )
        log(f"W1: {n} workflows in {seconds:.2f}s")

        fig.update(sqlite_commit_p50_ms=commit_probe_ms(db_path.parent, synchronous))
        writes = WriterDelta(app)
        latencies: list[float] = []
        deadline = time.monotonic() + 120
        for i in range(n_latency):
            t = time.perf_counter()
            handle = await app.start("chain", i)
            result = await bounded(handle.result(), 30, "W1 latency run")
            latencies.append(time.perf_counter() - t)
            wrong += result != i + 3
            if time.monotonic() > deadline:
                log("W1: latency phase ran out of time")
                fig.update(timed_out=True)
                break
        latency_writes = writes.figures()
        fig.update(
            latency_n=len(latencies),
            latency_p50_ms=percentile_ms(latencies, 50),
            latency_p99_ms=percentile_ms(latencies, 99),
            latency_max_ms=round(max(latencies) * 1000, 3),
            commits_per_latency_run=round(latency_writes["commits"] / len(latencies), 2),
            durable_commits_per_latency_run=round(
                latency_writes["durable_commits"] / len(latencies), 2
            ),
            wrong_results=wrong,
        )
    rss.stop()
    fig.update(peak_rss_mb=rss.peak_mb)


# --- W2: fan-out ---------------------------------------------------------------------------


async def w2_fanout(fig: Figures, url: str, scale: float, synchronous: str) -> None:
    n = scaled(W2_WORKFLOWS, scale)
    rss = RssSampler()
    fig.update(n=n, width=W2_WIDTH)
    app = flows.build(url, synchronous=synchronous)
    async with app:
        writes = WriterDelta(app)
        t0 = time.perf_counter()
        handles = await asyncio.gather(*(app.start("fanout", W2_WIDTH) for _ in range(n)))
        results = await bounded(asyncio.gather(*(h.result() for h in handles)), 120, "W2 fan-out")
        seconds = time.perf_counter() - t0
        expected = W2_WIDTH * (W2_WIDTH + 1) // 2
        fig.update(
            seconds=round(seconds, 3),
            workflows_per_s=rate(n, seconds),
            steps_per_s=rate(n * W2_WIDTH, seconds),
            wrong_results=sum(1 for r in results if r != expected),
            **writes.figures(),
        )
    rss.stop()
    fig.update(peak_rss_mb=rss.peak_mb)


# --- W3: many parked runs ------------------------------------------------------------------


async def w3_waiting(fig: Figures, url: str, db_path: Path, scale: float, synchronous: str) -> None:
    n = scaled(W3_RUNS, scale)
    fig.update(n=n, rss_of="this benchmark process: client and embedded worker together")
    rss = RssSampler()
    app = flows.build(url, synchronous=synchronous)
    counter = StatusCounter(db_path)
    run_ids = [f"w3-{i:06d}" for i in range(n)]
    try:
        async with app:
            t0 = time.perf_counter()
            for start in range(0, n, W3_CHUNK):
                await asyncio.gather(
                    *(
                        app.start("waiting", i, run_id=run_ids[i])
                        for i in range(start, min(n, start + W3_CHUNK))
                    )
                )
            fig.update(start_seconds=round(time.perf_counter() - t0, 3))
            log(f"W3: {n} runs started after {time.perf_counter() - t0:.1f}s")
            parked = await counter.until(
                "waiting", n, time.monotonic() + 600, "W3 parking", fig, "parked"
            )
            park_seconds = time.perf_counter() - t0
            fig.update(
                park_seconds=round(park_seconds, 3),
                park_per_s=rate(n, park_seconds),
                rss_parked_mb=mb(rss.current()),
                peak_rss_mb=rss.peak_mb,
            )
            if not parked:
                fig.update(timed_out=True)
                return
            log(f"W3: all parked after {park_seconds:.1f}s; signalling")

            t1 = time.perf_counter()
            for start in range(0, n, W3_CHUNK):
                await asyncio.gather(
                    *(
                        app.signal(run_ids[i], "go", i)
                        for i in range(start, min(n, start + W3_CHUNK))
                    )
                )
            fig.update(signal_seconds=round(time.perf_counter() - t1, 3))
            done = await counter.until(
                "completed", n, time.monotonic() + 300, "W3 completion", fig, "completed"
            )
            seconds = time.perf_counter() - t1
            fig.update(
                seconds_to_all_complete=round(seconds, 3),
                complete_per_s=rate(n, seconds),
                peak_rss_mb=rss.peak_mb,
            )
            if not done:
                fig.update(timed_out=True)
                return
            wrong = counter.query(
                "SELECT count(*) FROM runs WHERE status = 'completed' "
                "AND CAST(output AS TEXT) <> 'true'"
            )[0][0]
            fig.update(wrong_results=int(wrong))
            log(f"W3: all complete {seconds:.1f}s after signalling started")
    finally:
        counter.close()
        rss.stop()
        fig.update(peak_rss_mb=rss.peak_mb)


# --- W4: SIGKILL and recovery --------------------------------------------------------------


#: What a worker logs once it holds its worker slot (before it claims anything).
SLOT_LINE = "holding worker slot"


def slot_lines(path: Path) -> int:
    return path.read_text(errors="replace").count(SLOT_LINE) if path.exists() else 0


async def line_seen(path: Path, before: int, since: float) -> float:
    """Seconds from ``since`` until ``path`` holds more slot lines than ``before``."""
    while slot_lines(path) <= before:  # noqa: ASYNC110 - another process writes the file
        await asyncio.sleep(0.01)
    return time.perf_counter() - since


async def w4_crash(
    fig: Figures, url: str, db_path: Path, work_dir: Path, scale: float, synchronous: str
) -> None:
    n = scaled(W4_RUNS, scale)
    steps_log = work_dir / "w4-steps.log"
    worker_log = work_dir / "w4-workers.log"
    fig.update(
        n=n,
        lease_seconds=W4_LEASE_SECONDS,
        kill_after_s=W4_KILL_AFTER_SECONDS,
        target_recovery_seconds=1.0 + flows.CRASH_STEP_SECONDS,
        workers="opsloom worker subprocesses (--app flows:app)",
    )
    client = flows.build(url, worker=None, synchronous=synchronous)
    async with client:
        await asyncio.gather(
            *(client.start("crash", str(steps_log), run_id=f"w4-{i:04d}") for i in range(n))
        )
    log(f"W4: {n} runs recorded; starting the first worker")

    first = spawn_worker(
        fig, url, worker_log, concurrency=n, lease_seconds=W4_LEASE_SECONDS, synchronous=synchronous
    )
    deadline = time.monotonic() + 60
    while not steps_log.exists() or steps_log.stat().st_size == 0:
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            raise RuntimeError(f"the first worker never ran a step: {tail(worker_log)}")
        await asyncio.sleep(0.005)
    await asyncio.sleep(W4_KILL_AFTER_SECONDS)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = step_lines(steps_log)
    counter = StatusCounter(db_path)
    try:
        at_kill = await counter.counts()
        # History position i is step i: the workflow records nothing but its three steps.
        done_at_kill = {
            (run_id, seq)
            for run_id, seq in counter.query(
                "SELECT run_id, seq FROM steps WHERE status = 'completed'"
            )
        }
        fig.update(
            in_flight_at_kill=at_kill.get("running", 0),
            completed_before_kill=at_kill.get("completed", 0),
            pending_at_kill=at_kill.get("pending", 0),
            step_bodies_started_before_kill=sum(killed_at.values()),
        )
        log(f"W4: worker killed; runs by status {at_kill}; starting the second worker")

        t_restart = time.perf_counter()
        slots_before = slot_lines(worker_log)
        second = spawn_worker(
            fig,
            url,
            worker_log,
            concurrency=n,
            lease_seconds=W4_LEASE_SECONDS,
            synchronous=synchronous,
        )
        ready = asyncio.create_task(line_seen(worker_log, slots_before, t_restart))
        try:
            done = await counter.until(
                "completed", n, time.monotonic() + W4_LEASE_SECONDS + 60, "W4 recovery"
            )
            recovery = time.perf_counter() - t_restart
        finally:
            stop_worker(second)
            ready.cancel()
        # Starting Python and importing opsloom takes seconds on a busy machine: the time
        # from the worker holding its slot to the end is what recovery itself costs.
        started = ready.result() if ready.done() and not ready.cancelled() else None
        if started is not None:
            fig.update(
                restart_ready_seconds=round(started, 3),
                recovery_after_ready_seconds=round(recovery - started, 3),
            )
        final = await counter.counts()
    finally:
        counter.close()
    counts = step_lines(steps_log)
    twice = [key for key, count in counts.items() if count > 1]
    fig.update(
        runs_missing=n - final.get("completed", 0),
        runs_failed=final.get("failed", 0),
        step_bodies_run_twice=len(twice),
        completed_steps_rerun=sum(1 for key in twice if key in done_at_kill),
        step_executions=sum(counts.values()),
        recovery_seconds=round(recovery, 3) if done else None,
    )
    if not done:
        fig.update(timed_out=True)
    log(f"W4: all complete {recovery:.2f}s after the restart" if done else "W4: incomplete")


# --- entry point -----------------------------------------------------------------------------


def opsloom_version() -> str | None:
    try:
        return version("opsloom")
    except PackageNotFoundError:
        return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workload", required=True, type=str.upper, choices=["W1", "W2", "W3", "W4", "PICKUP"]
    )
    parser.add_argument("--scale", type=float, default=1.0, help="size factor (default 1.0)")
    parser.add_argument(
        "--synchronous",
        default="FULL",
        choices=["FULL", "NORMAL"],
        type=str.upper,
        help="SQLite synchronous level (default FULL)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help="where to put the database (default: a fresh temporary folder, removed afterwards)",
    )
    parser.add_argument(
        "--store",
        help="postgresql://… to run on PostgreSQL in a fresh schema (default: SQLite in --dir)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes on PostgreSQL (default 1)"
    )
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.store and not pg.is_postgres(args.store):
        parser.error("--store must be a postgresql:// URL (SQLite is the default)")
    if args.workload == "PICKUP" and not args.store:
        parser.error("PICKUP measures worker processes on PostgreSQL: pass --store")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    out_fd = take_stdout()
    own_dir = args.dir is None
    work_dir = Path(
        tempfile.mkdtemp(prefix=f"opsloom-bench-{args.workload.lower()}-") if own_dir else args.dir
    ).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {
        "engine": "opsloom",
        "workload": args.workload,
        "scale": args.scale,
        "opsloom_version": opsloom_version(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if args.store:
        schema = f"bench_{args.workload.lower()}_{os.getpid()}"
        url = pg.with_schema(args.store, schema)
        base.update(store="postgresql", schema=schema, **pg.server_facts(args.store))
    else:
        db_path = work_dir / f"{args.workload.lower()}.db"
        if db_path.exists():
            raise SystemExit(f"refusing to reuse {db_path}: the benchmark needs a fresh database")
        url = f"sqlite:///{db_path}"
        base.update(store="sqlite", synchronous=args.synchronous)

    def cleanup() -> None:
        if args.store:
            try:
                pg.drop_schema(args.store, schema)
            except Exception as exc:  # the figures matter more than a leftover schema
                log(f"could not drop schema {schema}: {exc!r}")
        if own_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    fig = Figures(out_fd, base, HARD_CAP[args.workload], cleanup)
    workloads: dict[str, Callable[[], Awaitable[None]]]
    if args.store:
        n = args.workers
        workloads = {
            "W1": lambda: pg_workloads.w1_chain(fig, url, schema, work_dir, args.scale, n),
            "W2": lambda: pg_workloads.w2_fanout(fig, url, work_dir, args.scale, n),
            "W3": lambda: pg_workloads.w3_waiting(fig, url, schema, work_dir, args.scale, n),
            "W4": lambda: pg_workloads.w4_crash(fig, url, schema, work_dir, args.scale, n),
            "PICKUP": lambda: pg_workloads.pickup_latency(fig, url, work_dir, args.scale, n),
        }
    else:
        workloads = {
            "W1": lambda: w1_chain(fig, url, db_path, args.scale, args.synchronous),
            "W2": lambda: w2_fanout(fig, url, args.scale, args.synchronous),
            "W3": lambda: w3_waiting(fig, url, db_path, args.scale, args.synchronous),
            "W4": lambda: w4_crash(fig, url, db_path, work_dir, args.scale, args.synchronous),
        }
    cpu = psutil.Process().cpu_times()
    status = 0
    try:
        asyncio.run(workloads[args.workload]())
    except Exception as exc:
        log(f"{args.workload} failed: {exc!r}")
        fig.update(error=f"{type(exc).__name__}: {exc}")
        status = 1
    after = psutil.Process().cpu_times()
    fig.update(cpu_seconds=round(after.user + after.system - cpu.user - cpu.system, 2))
    fig.emit()
    cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
