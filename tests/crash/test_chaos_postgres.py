"""Chaos on PostgreSQL: three worker processes, 2,000 runs of five steps, and things breaking.

Each scenario starts three ``opsloom worker`` processes on a fresh schema, starts 2,000 runs of
``five_marks`` (every step body appends ``start``/``end`` lines to the step log, so every
execution is counted) and breaks something while they run:

1. SIGKILL a random worker every 2 s and start a replacement;
2. ``pg_terminate_backend`` on every connection of the workers, twice;
3. restart PostgreSQL itself once.

Each ends with every run completed, every step recorded once, step bodies executed more than
once only when they were in flight at a disruption, and no job left behind. The counts are
printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from crashlab import Lab, WorkerProcess, client_app

from opsloom import App

pytestmark = [pytest.mark.crash, pytest.mark.slow, pytest.mark.timeout(420)]

RUNS = 2000
STEPS = 5
WORKERS = 3
LEASE = 2.0
CONCURRENCY = 16
STEP_SECONDS = 0.05
#: Every scenario must be over by then (it usually takes well under a minute).
DEADLINE = 240.0
#: A body that ended this long before a disruption had its result committed long before it.
COMMIT_SLACK = 5.0


@dataclass(frozen=True, slots=True)
class Disruption:
    kind: str
    at: float  # time.monotonic() when it began
    until: float  # ... and when it was over
    pid: int | None = None  # the worker killed, for SIGKILL


@pytest.fixture
def pg_lab(tmp_path: Path, postgres_schema_url: str) -> Iterator[Lab]:
    lab = Lab(tmp_path, postgres_schema_url)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
async def pg_client(pg_lab: Lab) -> AsyncIterator[App]:
    app = client_app(pg_lab.url)
    async with app:
        yield app


class Scenario:
    """Workers, the runs, the disruptions made, and the final checks."""

    def __init__(self, lab: Lab, client: App) -> None:
        self.lab = lab
        self.client = client
        self.workers: list[WorkerProcess] = []
        self.disruptions: list[Disruption] = []
        self.run_ids = [f"chaos-{i:04}" for i in range(RUNS)]
        self.began = 0.0

    def spawn(self) -> WorkerProcess:
        worker = self.lab.spawn(lease=LEASE, concurrency=CONCURRENCY, grace=2)
        self.workers.append(worker)
        return worker

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive()]

    def completed(self) -> int:
        try:
            rows = self.lab.query("SELECT count(*) FROM runs WHERE status = 'completed'")
        except Exception:  # PostgreSQL restarting: ask again later
            return -1
        return int(rows[0][0])

    async def run(self, disrupt: Callable[[int, float], Awaitable[None]]) -> None:
        """Start the workers and the runs; call ``disrupt(completed, elapsed)`` until done."""
        for _ in range(WORKERS):
            self.spawn()
        self.began = time.monotonic()
        inp = self.lab.input(seconds=STEP_SECONDS)
        for first in range(0, RUNS, 500):
            await asyncio.gather(
                *(
                    self.client.start("five_marks", inp, run_id=run_id)
                    for run_id in self.run_ids[first : first + 500]
                )
            )
        while True:
            done = self.completed()
            if done == RUNS:
                return
            elapsed = time.monotonic() - self.began
            if elapsed > DEADLINE:
                raise AssertionError(
                    f"only {done} of {RUNS} runs completed after {DEADLINE:.0f}s; "
                    f"open: {self._open_runs()}\n{self.lab.diagnostics()}"
                )
            if not self.alive():
                raise AssertionError(f"every worker died\n{self.lab.diagnostics()}")
            await disrupt(done, elapsed)
            await asyncio.sleep(0.1)

    def _open_runs(self) -> list[tuple[Any, ...]]:
        """The runs not completed, with their job, for the failure message."""
        return self.lab.query(
            "SELECT r.id, r.status, r.recovered, r.error, j.owner, j.token, j.available_at, "
            "j.lease_expires_at, j.nudged, j.blocked, "
            "(SELECT count(*) FROM steps s WHERE s.run_id = r.id) "
            "FROM runs r LEFT JOIN jobs j ON j.run_id = r.id WHERE r.status <> 'completed'"
        )

    def verify(self, name: str) -> dict[str, Any]:
        """The scenario's invariants; returns (and prints) its counts."""
        lab = self.lab
        statuses = lab.statuses()
        assert len(statuses) == RUNS
        not_done = {r: s for r, s in statuses.items() if s != "completed"}
        assert not not_done, f"runs not completed: {list(not_done.items())[:10]}"
        assert lab.query("SELECT count(*) FROM jobs")[0][0] == 0, "jobs left behind"

        steps = lab.steps()
        bodies = lab.bodies_by_step()
        reruns = 0
        for run_id in self.run_ids:
            seqs = sorted(seq for (r, seq) in steps if r == run_id)
            assert seqs == list(range(1, STEPS + 1)), (run_id, seqs)
            for seq in seqs:
                entry = steps[(run_id, seq)]
                assert entry["status"] == "completed", (run_id, seq, entry)
                executions = bodies.get((run_id, seq), [])
                recorded = entry["output"]["nonce"]
                # The recorded result is one execution that ran to its end.
                assert [b.nonce for b in executions if b.nonce == recorded and b.ended], (
                    f"{run_id}#{seq}: recorded result {recorded} matches no finished execution"
                )
                for body in executions:
                    if body.nonce == recorded:
                        continue
                    reruns += 1
                    assert self._in_flight_at_disruption(body), (
                        f"{run_id}#{seq} ran again (execution {body.nonce} in pid {body.pid}, "
                        f"started {body.started - self.began:.2f}s) without a disruption "
                        f"while it was in flight; disruptions: {self._describe()}"
                    )
        executions = sum(len(b) for b in bodies.values())
        recovered = lab.query("SELECT coalesce(sum(recovered), 0) FROM runs")[0][0]
        counts = {
            "scenario": name,
            "runs": RUNS,
            "completed": len(statuses),
            "steps_recorded": len(steps),
            "step_executions": executions,
            "re_executions": reruns,
            "disruptions": len(self.disruptions),
            "workers_started": len(self.workers),
            "runs_recovered": int(recovered),
            "seconds": round(time.monotonic() - self.began, 1),
        }
        print(f"\nchaos {name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
        return counts

    def _in_flight_at_disruption(self, body: Any) -> bool:
        for d in self.disruptions:
            if d.pid is not None and d.pid != body.pid:
                continue
            started_before = body.started <= d.until
            # An execution that finished long before had its result committed by then.
            unrecorded = body.ended is None or body.ended >= d.at - COMMIT_SLACK
            if started_before and unrecorded:
                return True
        return False

    def _describe(self) -> str:
        return ", ".join(
            f"{d.kind}@{d.at - self.began:.2f}s" + (f"(pid {d.pid})" if d.pid else "")
            for d in self.disruptions
        )


async def test_chaos__sigkill_a_worker_every_two_seconds(pg_lab: Lab, pg_client: App) -> None:
    scenario = Scenario(pg_lab, pg_client)
    rng = random.Random(7)
    last_kill = 0.0

    async def kill_one(done: int, elapsed: float) -> None:
        nonlocal last_kill
        if elapsed - last_kill < 2.0:
            return
        last_kill = elapsed
        victim = rng.choice(scenario.alive())
        at = time.monotonic()
        victim.send(signal.SIGKILL)
        await victim.exited(timeout=10)
        scenario.disruptions.append(Disruption("sigkill", at, time.monotonic(), victim.pid))
        scenario.spawn()

    await scenario.run(kill_one)
    counts = scenario.verify("sigkill")
    assert counts["disruptions"] >= 3, "the run ended before the chaos began: make it longer"


async def test_chaos__terminate_every_worker_connection_twice(pg_lab: Lab, pg_client: App) -> None:
    scenario = Scenario(pg_lab, pg_client)
    thresholds = [RUNS // 4, RUNS // 2]

    async def terminate(done: int, elapsed: float) -> None:
        if not thresholds or done < thresholds[0]:
            return
        thresholds.pop(0)
        at = time.monotonic()
        killed = pg_lab.terminate_connections()
        assert killed >= WORKERS, f"only {killed} worker connections found to terminate"
        scenario.disruptions.append(Disruption("terminate", at, time.monotonic()))

    await scenario.run(terminate)
    counts = scenario.verify("pg_terminate_backend")
    assert counts["disruptions"] == 2


def _cluster() -> tuple[str, str]:
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[-1], "main"


def _start_if_stopped() -> None:
    version, cluster = _cluster()
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster]
    if subprocess.run([*command, "status"], capture_output=True).returncode != 0:
        subprocess.run([*command, "start"], capture_output=True, timeout=300)


async def test_chaos__restart_postgresql_once(pg_lab: Lab, pg_client: App) -> None:
    scenario = Scenario(pg_lab, pg_client)
    restarted = False

    async def restart(done: int, elapsed: float) -> None:
        nonlocal restarted
        if restarted or done < RUNS // 3:
            return
        restarted = True
        version, cluster = _cluster()
        # Dirty pages written first: the restart's shutdown checkpoint then has little to do
        # (behind a long spread checkpoint it can take minutes on a busy disk).
        await asyncio.to_thread(pg_lab.checkpoint)
        at = time.monotonic()
        result = await asyncio.to_thread(
            subprocess.run,
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                version,
                cluster,
                "restart",
                "-m",
                "fast",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"restarting PostgreSQL failed: {result.stderr}"
        scenario.disruptions.append(Disruption("restart", at, time.monotonic()))

    try:
        await scenario.run(restart)
    finally:
        _start_if_stopped()  # a failed restart must not leave the rest of the suite without it
    counts = scenario.verify("postgresql_restart")
    assert counts["disruptions"] == 1
