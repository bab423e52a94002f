"""Lease expiry and fencing: a worker that lost its lease cannot write into the run's history.

A worker can lose a lease without dying: the process is stopped (SIGSTOP, a VM pause, a long GC)
or its heartbeats stall. Another claim then owns the run with a new token; when the old
execution wakes up and finishes its step, the store must reject its write, so the history holds
only the new owner's results.
"""

from __future__ import annotations

import signal

import pytest
from crashlab import Lab, process_state

from opsloom import App

pytestmark = [pytest.mark.crash, pytest.mark.timeout(60)]


async def test_lease__stopped_worker__late_step_result_is_rejected(lab: Lab, client: App) -> None:
    run_id = "fenced"
    stale = lab.spawn(lease=2)
    await client.start("three_steps", lab.input(gate=str(lab.gate)), run_id=run_id)
    await lab.wait_until(
        lambda: lab.count("start", seq=2, pid=stale.pid)[run_id] == 1,
        timeout=20,
        what="step 2 in flight",
        alive=[stale],
    )
    old_owner = lab.job_owner(run_id)
    assert old_owner is not None and old_owner[0] is not None

    stale.send(signal.SIGSTOP)
    await lab.wait_until(
        lambda: process_state(stale.pid) == "T", timeout=5, what="the worker to stop"
    )
    # The stopped worker's lease runs out (backdated instead of waiting for it).
    assert lab.execute("UPDATE jobs SET lease_expires_at = 0 WHERE run_id = ?", (run_id,)) == 1

    fresh = lab.spawn(lease=2)
    await lab.wait_until(
        lambda: lab.count("start", seq=2, pid=fresh.pid)[run_id] == 1,
        timeout=20,
        what="the new worker to take the run",
        alive=[fresh],
    )
    new_owner = lab.job_owner(run_id)
    assert new_owner is not None
    assert new_owner[0] != old_owner[0] and new_owner[1] > old_owner[1]

    # The stale worker resumes and finishes its step 2 while the new owner's step 2 is in
    # flight. Stopping it gracefully afterwards flushes every write it queued.
    lab.open_gate(pid=stale.pid)
    stale.send(signal.SIGCONT)
    await lab.wait_until(
        lambda: lab.count("end", seq=2, pid=stale.pid)[run_id] == 1,
        timeout=10,
        what="the stale step body to finish",
        alive=[stale],
    )
    stale.send(signal.SIGTERM)
    assert await stale.exited(timeout=15) == 0

    steps = lab.steps()
    assert (run_id, 2) not in steps, f"the stale worker's result was recorded: {steps}"
    assert (run_id, 3) not in steps
    assert lab.job_owner(run_id) == new_owner, "the stale worker released the new owner's lease"
    assert lab.statuses()[run_id] == "running"

    lab.open_gate(pid=fresh.pid)
    await lab.wait_until(
        lambda: lab.completed([run_id]), timeout=20, what="the run to complete", alive=[fresh]
    )
    run = await client.get_run(run_id)
    fresh_step2 = [b for b in lab.bodies_by_step()[(run_id, 2)] if b.pid == fresh.pid]
    assert [(s.seq, s.status) for s in run.steps] == [
        (1, "completed"),
        (2, "completed"),
        (3, "completed"),
    ]
    assert run.steps[1].output == {"pid": fresh.pid, "nonce": fresh_step2[0].nonce}
    assert run.output == {"pids": [stale.pid, fresh.pid, fresh.pid]}
    assert run.recovered == 1
    assert lab.count("start", seq=3) == {run_id: 1}
    assert lab.count("start", seq=3, pid=stale.pid) == {}


async def test_lease__backdated_on_live_worker__old_execution_is_fenced(
    lab: Lab, client: App
) -> None:
    # A long lease: heartbeats come every 10 s, so nothing renews the lease we backdate and the
    # worker's own reaper takes the run back while its first execution is still in step 2.
    run_id = "backdated"
    worker = lab.spawn(lease=30)
    await client.start("three_steps", lab.input(gate=str(lab.gate)), run_id=run_id)
    await lab.wait_until(
        lambda: lab.count("start", seq=2)[run_id] == 1,
        timeout=20,
        what="step 2 in flight",
        alive=[worker],
    )
    owner, token = lab.job_owner(run_id) or (None, 0)
    assert lab.execute("UPDATE jobs SET lease_expires_at = 0 WHERE run_id = ?", (run_id,)) == 1

    # Reaped and claimed again (by the same worker, the only one): a second step-2 body starts.
    await lab.wait_until(
        lambda: lab.count("start", seq=2)[run_id] == 2,
        timeout=20,
        what="the run to be claimed again",
        alive=[worker],
    )
    assert lab.job_owner(run_id) == (owner, token + 1)
    old, new = lab.bodies_by_step()[(run_id, 2)]

    # The old execution finishes first: its write is queued before the new one's and must be
    # rejected, not recorded.
    lab.open_gate(nonce=old.nonce)
    await lab.wait_until(
        lambda: lab.count("end", seq=2)[run_id] == 1,
        timeout=10,
        what="the old step body to finish",
        alive=[worker],
    )
    lab.open_gate(nonce=new.nonce)
    await lab.wait_until(
        lambda: lab.completed([run_id]), timeout=20, what="the run to complete", alive=[worker]
    )
    worker.send(signal.SIGTERM)
    assert await worker.exited(timeout=15) == 0

    run = await client.get_run(run_id)
    assert [(s.seq, s.status) for s in run.steps] == [
        (1, "completed"),
        (2, "completed"),
        (3, "completed"),
    ]
    assert run.steps[1].output == {"pid": worker.pid, "nonce": new.nonce}, (
        "the execution that had lost its lease wrote step 2"
    )
    assert run.recovered == 1
    assert lab.count("start", seq=1) == {run_id: 1}
    assert lab.count("start", seq=3) == {run_id: 1}
