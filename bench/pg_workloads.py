"""The workloads on PostgreSQL: worker processes execute, this process only starts and awaits.

``workloads.py --store postgresql://… --workers N`` calls these. Each workload gets a fresh
schema (dropped afterwards). The benchmark process opens its :class:`~opsloom.App` without a
worker (``worker=None``): it records runs, sends signals and awaits results, while N
``opsloom worker --app flows:app`` subprocesses (``workers.py``) claim and execute the runs.
Every throughput phase also measures where the CPU went (``pg.CpuSplit``).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import flows
import pg_count
from measure import Figures, RssSampler, WriterDelta, bounded, log, percentile_ms, rate
from measure import scaled as scaled_count
from pg import CpuSplit, PgStatusCounter, commit_probe_ms
from workers import first_step_pid, spawn_worker, step_lines, stop_worker, tail, until_connected

from opsloom import App

W1_WORKFLOWS = 2_000
W1_LATENCY_RUNS = 200
W2_WORKFLOWS = 100
W2_WIDTH = 20
W3_RUNS = 100_000
W3_CHUNK = 2_000
W4_RUNS = 500
#: The default lease: a restarted worker (or a live peer) must not wait for it.
W4_LEASE_SECONDS = 30.0
W4_KILL_AFTER_SECONDS = 1.0
W4_WORKERS = 2
PICKUP_SAMPLES = 200
#: Idle time before each pickup sample, plus a random part so that samples do not lock onto
#: the phase of the workers' poll loops.
PICKUP_IDLE_SECONDS = 1.0
PICKUP_JITTER_SECONDS = 0.25
WARM_UP_RUNS = 8  # per worker: the first runs pay for imports and pool connections


class Fleet:
    """N ``opsloom worker`` processes on one store, started together, stopped together."""

    def __init__(
        self,
        fig: Figures,
        url: str,
        work_dir: Path,
        count: int,
        *,
        concurrency: int | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.fig = fig
        self.url = url
        self.log_file = work_dir / "workers.log"
        self.count = count
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.procs: list[subprocess.Popen[bytes]] = []
        self.rss: list[RssSampler] = []

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    async def start(self) -> None:
        self.procs = [
            spawn_worker(
                self.fig,
                self.url,
                self.log_file,
                concurrency=self.concurrency,
                lease_seconds=self.lease_seconds,
            )
            for _ in range(self.count)
        ]
        await until_connected(self.procs, self.url, self.log_file)
        self.rss = [RssSampler(proc.pid) for proc in self.procs]

    def check(self) -> None:
        """Fail loudly when a worker died: its runs would only come back after its lease."""
        dead = [proc.pid for proc in self.procs if proc.poll() is not None]
        if dead:
            raise RuntimeError(f"worker processes {dead} exited: {tail(self.log_file)}")

    def peak_rss_mb(self) -> float | None:
        return max((sampler.peak_mb for sampler in self.rss), default=None)

    def stop(self) -> None:
        for sampler in self.rss:
            sampler.stop()
        for proc in self.procs:
            stop_worker(proc)


async def warm_up(app: App, fleet: Fleet) -> None:
    """A few runs through every worker, once the client hears the store's wake-ups (if any)."""
    listening = getattr(app.store, "wait_listening", None)
    if listening is not None:
        await listening()
    handles = await asyncio.gather(
        *(app.start("chain", i) for i in range(WARM_UP_RUNS * fleet.count))
    )
    await bounded(asyncio.gather(*(h.result() for h in handles)), 60, "warm-up")
    fleet.check()


async def begin(url: str, fleet: Fleet) -> CpuSplit:
    split = CpuSplit(url, fleet.pids)
    await asyncio.to_thread(split.start)
    return split


async def end(split: CpuSplit) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(split.stop)
    finally:
        split.close()


def describe(fig: Figures, fleet: Fleet) -> None:
    fig.update(
        workers=fleet.count,
        worker_concurrency=fleet.concurrency or "default (OPSLOOM_WORKER_CONCURRENCY or 256)",
        worker_processes="opsloom worker --app flows:app",
    )


# --- W1: chain -----------------------------------------------------------------------------


async def w1_chain(
    fig: Figures, url: str, schema: str, work_dir: Path, scale: float, workers: int
) -> None:
    n = scaled_count(W1_WORKFLOWS, scale)
    n_latency = scaled_count(W1_LATENCY_RUNS, scale)
    fig.update(n=n, steps_per_workflow=3, latency_n=n_latency)
    counts = work_dir / "pg-count"
    counts.mkdir(exist_ok=True)
    os.environ["BENCH_PG_COUNT"] = str(counts)  # the workers inherit it
    pg_count.install()
    fleet = Fleet(fig, url, work_dir, workers)
    describe(fig, fleet)
    client_rss = RssSampler()
    client = flows.build(url, worker=None)
    async with client:
        await fleet.start()
        try:
            await warm_up(client, fleet)
            split = await begin(url, fleet)
            writes = WriterDelta(client)
            read0, client0 = (
                await asyncio.to_thread(pg_count.ask, counts, fleet.pids),
                pg_count.snapshot(),
            )
            t0 = time.perf_counter()
            handles = await asyncio.gather(*(client.start("chain", i) for i in range(n)))
            started = time.perf_counter() - t0
            results = await bounded(
                asyncio.gather(*(h.result() for h in handles)), 120, "W1 throughput"
            )
            seconds = time.perf_counter() - t0
            read1, client1 = (
                await asyncio.to_thread(pg_count.ask, counts, fleet.pids),
                pg_count.snapshot(),
            )
            cpu = await end(split)
            fleet.check()
            wrong = sum(1 for i, result in enumerate(results) if result != i + 3)
            fig.update(sql=statement_figures(read0, read1, client0, client1, n))
            fig.update(
                start_seconds=round(started, 3),
                seconds=round(seconds, 3),
                workflows_per_s=rate(n, seconds),
                steps_per_s=rate(3 * n, seconds),
                wrong_results=wrong,
                pg_write_xacts_per_workflow=round(cpu["pg_write_xacts"] / n, 2),
                pg_wal_kb_per_workflow=round(cpu["pg_wal_mb"] * 1024 / n, 2),
                cpu={"throughput": cpu},
                **writes.figures(),
            )
            log(f"W1: {n} workflows in {seconds:.2f}s on {workers} worker(s)")
            probe = await asyncio.to_thread(commit_probe_ms, url, schema)
            fig.update(pg_commit_p50_ms=probe)

            latencies: list[float] = []
            deadline = time.monotonic() + 120
            for i in range(n_latency):
                t = time.perf_counter()
                handle = await client.start("chain", i)
                result = await bounded(handle.result(), 30, "W1 latency run")
                latencies.append(time.perf_counter() - t)
                wrong += result != i + 3
                if time.monotonic() > deadline:
                    log("W1: latency phase ran out of time")
                    fig.update(timed_out=True)
                    break
            read2, client2 = (
                await asyncio.to_thread(pg_count.ask, counts, fleet.pids),
                pg_count.snapshot(),
            )
            fig.update(
                latency_sql=statement_figures(read1, read2, client1, client2, len(latencies)),
                latency_n=len(latencies),
                latency_p50_ms=percentile_ms(latencies, 50),
                latency_p99_ms=percentile_ms(latencies, 99),
                latency_max_ms=round(max(latencies) * 1000, 3),
                wrong_results=wrong,
            )
        finally:
            fleet.stop()
            client_rss.stop()
    fig.update(peak_rss_mb=fleet.peak_rss_mb(), client_peak_rss_mb=client_rss.peak_mb)


def statement_figures(
    read0: dict[int, dict[str, int]],
    read1: dict[int, dict[str, int]],
    client0: dict[str, int],
    client1: dict[str, int],
    runs: int,
) -> dict[str, float]:
    """Statements and round trips per run between two readings: workers and the client."""
    out = pg_count.per_run(read0, read1, runs)
    for key in ("statements", "round_trips"):
        out[f"client_{key}_per_run"] = round((client1[key] - client0[key]) / runs, 2)
    return out


# --- W2: fan-out ---------------------------------------------------------------------------


async def w2_fanout(fig: Figures, url: str, work_dir: Path, scale: float, workers: int) -> None:
    n = scaled_count(W2_WORKFLOWS, scale)
    fig.update(n=n, width=W2_WIDTH)
    fleet = Fleet(fig, url, work_dir, workers)
    describe(fig, fleet)
    client = flows.build(url, worker=None)
    async with client:
        await fleet.start()
        try:
            await warm_up(client, fleet)
            split = await begin(url, fleet)
            writes = WriterDelta(client)
            t0 = time.perf_counter()
            handles = await asyncio.gather(*(client.start("fanout", W2_WIDTH) for _ in range(n)))
            results = await bounded(
                asyncio.gather(*(h.result() for h in handles)), 120, "W2 fan-out"
            )
            seconds = time.perf_counter() - t0
            cpu = await end(split)
            fleet.check()
            expected = W2_WIDTH * (W2_WIDTH + 1) // 2
            fig.update(
                seconds=round(seconds, 3),
                workflows_per_s=rate(n, seconds),
                steps_per_s=rate(n * W2_WIDTH, seconds),
                wrong_results=sum(1 for r in results if r != expected),
                cpu={"throughput": cpu},
                **writes.figures(),
            )
        finally:
            fleet.stop()
    fig.update(peak_rss_mb=fleet.peak_rss_mb())


# --- W3: many parked runs ------------------------------------------------------------------


async def w3_waiting(
    fig: Figures, url: str, schema: str, work_dir: Path, scale: float, workers: int
) -> None:
    n = scaled_count(W3_RUNS, scale)
    fig.update(n=n, rss_of="the largest worker process (client separately)")
    fleet = Fleet(fig, url, work_dir, workers)
    describe(fig, fleet)
    client_rss = RssSampler()
    client = flows.build(url, worker=None)
    counter = PgStatusCounter(url, schema, prefix="w3-")
    run_ids = [f"w3-{i:06d}" for i in range(n)]
    cpu: dict[str, Any] = {}
    try:
        async with client:
            await fleet.start()
            try:
                await warm_up(client, fleet)
                split = await begin(url, fleet)
                t0 = time.perf_counter()
                for start in range(0, n, W3_CHUNK):
                    await asyncio.gather(
                        *(
                            client.start("waiting", i, run_id=run_ids[i])
                            for i in range(start, min(n, start + W3_CHUNK))
                        )
                    )
                fig.update(start_seconds=round(time.perf_counter() - t0, 3))
                log(f"W3: {n} runs started after {time.perf_counter() - t0:.1f}s")
                parked = await counter.until(
                    "waiting", n, time.monotonic() + 600, "W3 parking", fig, "parked"
                )
                park_seconds = time.perf_counter() - t0
                cpu["park"] = await end(split)
                fig.update(
                    park_seconds=round(park_seconds, 3),
                    park_per_s=rate(n, park_seconds),
                    rss_parked_mb=fleet.peak_rss_mb(),
                    peak_rss_mb=fleet.peak_rss_mb(),
                    cpu=cpu,
                )
                if not parked:
                    fig.update(timed_out=True)
                    return
                fleet.check()
                log(f"W3: all parked after {park_seconds:.1f}s; signalling")

                split = await begin(url, fleet)
                t1 = time.perf_counter()
                for start in range(0, n, W3_CHUNK):
                    await asyncio.gather(
                        *(
                            client.signal(run_ids[i], "go", i)
                            for i in range(start, min(n, start + W3_CHUNK))
                        )
                    )
                fig.update(signal_seconds=round(time.perf_counter() - t1, 3))
                done = await counter.until(
                    "completed", n, time.monotonic() + 300, "W3 completion", fig, "completed"
                )
                seconds = time.perf_counter() - t1
                cpu["complete"] = await end(split)
                fig.update(
                    seconds_to_all_complete=round(seconds, 3),
                    complete_per_s=rate(n, seconds),
                    peak_rss_mb=fleet.peak_rss_mb(),
                    cpu=cpu,
                )
                if not done:
                    fig.update(timed_out=True)
                    return
                fleet.check()
                wrong = counter.query(
                    "SELECT count(*) FROM runs WHERE status = 'completed' AND id LIKE 'w3-%' "
                    "AND convert_from(output, 'UTF8') <> 'true'"
                )[0][0]
                fig.update(wrong_results=int(wrong))
                log(f"W3: all complete {seconds:.1f}s after signalling started")
            finally:
                fleet.stop()
    finally:
        counter.close()
        client_rss.stop()
        fig.update(peak_rss_mb=fleet.peak_rss_mb(), client_peak_rss_mb=client_rss.peak_mb)


# --- idle pickup latency -------------------------------------------------------------------


async def pickup_latency(
    fig: Figures, url: str, work_dir: Path, scale: float, workers: int
) -> None:
    """From ``app.start()`` returning to the step body starting in a worker, workers idle.

    Both ends read the wall clock (``time.time()``) of this machine: the step returns the
    moment it began, and this process subtracts the moment ``start`` returned.
    """
    n = scaled_count(PICKUP_SAMPLES, scale)
    fig.update(
        n=n,
        idle_seconds_between=f"{PICKUP_IDLE_SECONDS:g} + uniform(0, {PICKUP_JITTER_SECONDS:g})",
    )
    fleet = Fleet(fig, url, work_dir, workers)
    describe(fig, fleet)
    client = flows.build(url, worker=None)
    rng = random.Random(5)
    async with client:
        await fleet.start()
        try:
            await warm_up(client, fleet)
            pickups: list[float] = []
            from_call: list[float] = []
            calls: list[float] = []
            for i in range(n):
                await asyncio.sleep(PICKUP_IDLE_SECONDS + rng.uniform(0, PICKUP_JITTER_SECONDS))
                t_call = time.time()
                handle = await client.start("pickup")
                t_back = time.time()
                began = float(await bounded(handle.result(), 30, "pickup sample"))
                pickups.append(began - t_back)
                from_call.append(began - t_call)
                calls.append(t_back - t_call)
                if (i + 1) % 50 == 0:
                    log(f"pickup: {i + 1}/{n} samples, p50 {percentile_ms(pickups, 50):.1f} ms")
                    fig.update(
                        samples=len(pickups),
                        pickup_p50_ms=percentile_ms(pickups, 50),
                        pickup_p99_ms=percentile_ms(pickups, 99),
                    )
            fleet.check()
        finally:
            fleet.stop()
    fig.update(
        samples=len(pickups),
        pickup_p50_ms=percentile_ms(pickups, 50),
        pickup_p99_ms=percentile_ms(pickups, 99),
        pickup_min_ms=round(min(pickups) * 1000, 3),
        pickup_max_ms=round(max(pickups) * 1000, 3),
        pickup_mean_ms=round(sum(pickups) / len(pickups) * 1000, 3),
        pickup_from_call_p50_ms=percentile_ms(from_call, 50),
        start_call_p50_ms=percentile_ms(calls, 50),
    )


# --- W4: SIGKILL one of two workers --------------------------------------------------------


async def taken_over(counter: Any, held: int, since: float) -> float:
    """Seconds from ``since`` until ``held`` runs are marked recovered."""
    while counter.query("SELECT count(*) FROM runs WHERE recovered > 0")[0][0] < held:  # noqa: ASYNC110 - other processes write it
        await asyncio.sleep(0.05)
    return time.perf_counter() - since


async def w4_crash(
    fig: Figures, url: str, schema: str, work_dir: Path, scale: float, workers: int
) -> None:
    """Two workers share the runs; one is SIGKILLed, the other finishes everything.

    Each worker may hold half the runs, so both take a share. The victim is the worker that
    ran the first step body (its pid is on the step log line), killed one second later.
    """
    n = scaled_count(W4_RUNS, scale)
    count = max(W4_WORKERS, workers)
    steps_log = work_dir / "w4-steps.log"
    fig.update(
        n=n,
        lease_seconds=W4_LEASE_SECONDS,
        kill_after_s=W4_KILL_AFTER_SECONDS,
        target_recovery_seconds=1.0 + flows.CRASH_STEP_SECONDS,
    )
    fleet = Fleet(
        fig,
        url,
        work_dir,
        count,
        concurrency=math.ceil(n / count),
        lease_seconds=W4_LEASE_SECONDS,
    )
    describe(fig, fleet)
    client = flows.build(url, worker=None)
    counter = PgStatusCounter(url, schema, prefix="w4-")
    try:
        async with client:
            await fleet.start()
            try:
                await asyncio.gather(
                    *(client.start("crash", str(steps_log), run_id=f"w4-{i:04d}") for i in range(n))
                )
                log(f"W4: {n} runs recorded for {count} workers")
                deadline = time.monotonic() + 60
                while (victim_pid := first_step_pid(steps_log)) is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no worker ran a step: {tail(fleet.log_file)}")
                    await asyncio.sleep(0.005)
                await asyncio.sleep(W4_KILL_AFTER_SECONDS)
                victim = next(proc for proc in fleet.procs if proc.pid == victim_pid)
                victim.kill()
                victim.wait()
                t_kill = time.perf_counter()
                running_rows = counter.query("SELECT id FROM runs WHERE status = 'running'")
                running = {row[0] for row in running_rows}
                at_kill = await counter.counts()
                lines = step_lines(steps_log)
                victims_runs = {
                    line.split()[0]
                    for line in steps_log.read_text().splitlines()
                    if line.split()[2] == str(victim_pid)
                }
                done_at_kill = {
                    (run_id, seq)
                    for run_id, seq in counter.query(
                        "SELECT run_id, seq FROM steps WHERE status = 'completed'"
                    )
                }
                fig.update(
                    in_flight_at_kill=len(victims_runs & running),
                    running_at_kill=at_kill.get("running", 0),
                    completed_before_kill=at_kill.get("completed", 0),
                    pending_at_kill=at_kill.get("pending", 0),
                    step_bodies_started_before_kill=sum(lines.values()),
                )
                log(f"W4: worker {victim_pid} killed; runs by status {at_kill}")
                held = len(victims_runs & running)
                takeover = asyncio.create_task(taken_over(counter, held, t_kill))
                try:
                    done = await counter.until(
                        "completed", n, time.monotonic() + W4_LEASE_SECONDS + 60, "W4 recovery"
                    )
                    recovery = time.perf_counter() - t_kill
                finally:
                    takeover.cancel()
                if takeover.done() and not takeover.cancelled():
                    # From the kill until the survivor had requeued every run of the victim:
                    # what detecting the dead worker costs, before its runs wait for a slot.
                    fig.update(takeover_seconds=round(takeover.result(), 3))
                final = await counter.counts()
                recovered = counter.query("SELECT count(*) FROM runs WHERE recovered = 1")[0][0]
            finally:
                fleet.stop()
    finally:
        counter.close()
    counts = step_lines(steps_log)
    twice = [key for key, c in counts.items() if c > 1]
    fig.update(
        runs_missing=n - final.get("completed", 0),
        runs_failed=final.get("failed", 0),
        runs_recovered=int(recovered),
        step_bodies_run_twice=len(twice),
        completed_steps_rerun=sum(1 for key in twice if key in done_at_kill),
        step_executions=sum(counts.values()),
        recovery_seconds=round(recovery, 3) if done else None,
    )
    if not done:
        fig.update(timed_out=True)
    log(f"W4: all complete {recovery:.2f}s after the kill" if done else "W4: incomplete")
