"""Two ``opsloom worker`` processes on one SQLite file.

Leases make a run belong to one worker at a time: while leases are healthy, no two processes
ever execute the same run at once, and runs that park on timers may move between workers.
"""

from __future__ import annotations

import itertools
import signal
import sqlite3

import pytest
from crashlab import Lab, client_app, waits_for_lock

from opsloom import App

pytestmark = [pytest.mark.crash, pytest.mark.timeout(60)]


async def test_two_workers__many_runs__never_execute_one_run_at_once(lab: Lab, client: App) -> None:
    # Concurrency 4 each and a first step that holds: eight runs in flight means both workers
    # are busy before the rest is released, so both compete for the remaining work.
    workers = [lab.spawn(lease=5, concurrency=4) for _ in range(2)]
    runs = [f"relay-{i:02}" for i in range(60)]
    # Timers of a second park their runs (a shorter one is waited for by the worker that runs
    # the run, which keeps it), so that runs may change workers at each timer.
    for run_id in runs:
        await client.start(
            "relay", lab.input(gate=str(lab.gate), pause=1.0, seconds=0.01), run_id=run_id
        )

    def both_full() -> bool:
        starts = [e for e in lab.events() if e.event == "start" and e.seq == 1]
        return len(starts) == 8 and {e.pid for e in starts} == {w.pid for w in workers}

    await lab.wait_until(
        both_full, timeout=20, what="both workers at their concurrency", alive=workers
    )
    lab.open_gate()
    await lab.wait_until(
        lambda: lab.completed(runs), timeout=40, what="every run to complete", alive=workers
    )

    steps = lab.steps()
    bodies = lab.bodies_by_step()
    pids = {w.pid for w in workers}
    for run_id in runs:
        assert sorted(seq for (r, seq) in steps if r == run_id) == [1, 2, 3, 4, 5], run_id
        assert all(steps[(run_id, seq)]["status"] == "completed" for seq in range(1, 6))
        mine = sorted((b for b in lab.bodies() if b.run_id == run_id), key=lambda b: b.started)
        # Each step body ran once, in a worker of ours, and the run's bodies never overlap
        # (a run is sequential: an overlap means two owners at once).
        assert [b.seq for b in mine] == [1, 3, 5], (run_id, mine)
        assert all(b.pid in pids and b.ended is not None for b in mine), mine
        for before, after in itertools.pairwise(mine):
            assert before.ended is not None and before.ended <= after.started, (run_id, mine)
        for seq in (1, 3, 5):
            (body,) = bodies[(run_id, seq)]
            assert steps[(run_id, seq)]["output"] == {"pid": body.pid, "nonce": body.nonce}

    # Runs parked on their timers were picked up by either worker: runs did change hands.
    assert any(len({b.pid for b in lab.bodies() if b.run_id == run_id}) > 1 for run_id in runs)
    # No pair of bodies of one run in two processes overlaps in time, across all runs.
    everything = lab.bodies()
    for a in everything:
        for b in everything:
            if a.run_id == b.run_id and a.pid != b.pid and a.started < b.started:
                assert a.ended is not None and a.ended <= b.started, (a, b)
    assert lab.query("SELECT count(*) FROM jobs") == [(0,)]
    for worker in workers:
        worker.send(signal.SIGTERM)
    for worker in workers:
        assert await worker.exited(timeout=15) == 0


async def test_two_workers__fresh_database__both_start(lab: Lab) -> None:
    """Workers started together on a new file must not race each other's schema migration."""
    # The file as the first opsloom process leaves it just before migrating: empty, in WAL
    # mode. Holding its write lock lets both workers read schema version 0 and then queue on
    # the lock to migrate; once both are waiting for it, let them go.
    lock = sqlite3.connect(lab.db_path, isolation_level=None)
    try:
        assert lock.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
        lock.execute("BEGIN IMMEDIATE")
        workers = [lab.spawn(lease=5, concurrency=1) for _ in range(2)]
        await lab.wait_until(
            lambda: all(waits_for_lock(w.pid) for w in workers),
            timeout=20,
            what="both workers to wait for the write lock",
            alive=workers,
        )
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    await lab.wait_until(
        lambda: lab.query("PRAGMA user_version")[0][0] > 0,
        timeout=20,
        what="the schema",
        alive=workers,
    )
    client = client_app(lab.url)
    async with client:
        # With concurrency 1, two held runs need both workers.
        for run_id in ("a", "b"):
            await client.start("three_steps", lab.input(gate=str(lab.gate)), run_id=run_id)
        await lab.wait_until(
            lambda: {e.pid for e in lab.events() if e.seq == 2} == {w.pid for w in workers},
            timeout=20,
            what="each worker to run one of the runs",
            alive=workers,
        )
        lab.open_gate()
        await lab.wait_until(
            lambda: lab.completed(["a", "b"]),
            timeout=20,
            what="both runs to complete",
            alive=workers,
        )
