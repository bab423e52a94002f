"""Recovery without waiting for a lease: worker slots.

A worker holds a slot (a file lock beside the SQLite database) that the kernel frees when the
process dies. A worker restarted after a SIGKILL takes the freed slot and resumes the dead
one's runs at launch; a worker still alive beside it finds the slot free and takes them over.
Both tests give the leases ten minutes: a run that waited for its lease would fail the test.
"""

from __future__ import annotations

import signal

import pytest
from crashlab import Lab

from opsloom import App

pytestmark = [pytest.mark.crash, pytest.mark.timeout(90)]

LEASE = 600.0


async def start_held(lab: Lab, client: App, count: int) -> list[str]:
    held = [f"held-{i:02}" for i in range(count)]
    for run_id in held:
        await client.start("three_steps", lab.input(gate=str(lab.gate)), run_id=run_id)
    return held


async def check_once(lab: Lab, client: App, held: list[str]) -> None:
    """Every run completed, each step recorded once, a finished body never run again."""
    bodies = lab.bodies_by_step()
    for run_id in held:
        run = await client.get_run(run_id)
        assert run.status == "completed", run_id
        assert [(s.seq, s.status) for s in run.steps] == [
            (1, "completed"),
            (2, "completed"),
            (3, "completed"),
        ]
        for seq in (1, 3):
            assert len(bodies[(run_id, seq)]) == 1, (run_id, seq, bodies[(run_id, seq)])
        assert run.recovered


async def test_restart__resumes_its_own_runs_at_launch(lab: Lab, client: App) -> None:
    first = lab.spawn(lease=LEASE, concurrency=8)
    held = await start_held(lab, client, 6)
    await lab.wait_until(
        lambda: len(lab.count("start", seq=2, pid=first.pid)) == 6,
        timeout=30,
        what="six step-2 bodies in flight",
        alive=[first],
    )
    first.send(signal.SIGKILL)
    assert await first.exited(timeout=10) == -signal.SIGKILL
    lab.open_gate()

    second = lab.spawn(lease=LEASE, concurrency=8)
    await lab.wait_until(
        lambda: lab.completed(held),
        timeout=45,
        what="the restarted worker to finish the runs (not after the 600 s lease)",
        alive=[second],
    )
    await check_once(lab, client, held)
    assert "resumed 6 runs" in second.text()


async def test_dead_peer__its_runs_are_taken_over_before_the_lease(lab: Lab, client: App) -> None:
    victim = lab.spawn(lease=LEASE, concurrency=8)
    held = await start_held(lab, client, 4)
    await lab.wait_until(
        lambda: len(lab.count("start", seq=2, pid=victim.pid)) == 4,
        timeout=30,
        what="four step-2 bodies in flight in the victim",
        alive=[victim],
    )
    survivor = lab.spawn(lease=LEASE, concurrency=8)
    await lab.wait_until(
        lambda: "holding worker slot worker-1" in survivor.text(),
        timeout=30,
        what="the survivor to hold the next slot",
        alive=[survivor],
    )
    victim.send(signal.SIGKILL)
    assert await victim.exited(timeout=10) == -signal.SIGKILL
    lab.open_gate()
    await lab.wait_until(
        lambda: lab.completed(held),
        timeout=45,
        what="the survivor to take over the dead worker's runs (not after the 600 s lease)",
        alive=[survivor],
    )
    await check_once(lab, client, held)
    bodies = lab.bodies_by_step()
    for run_id in held:
        # Step 2 was in flight in the victim, then ran again in the survivor.
        assert [b.pid for b in bodies[(run_id, 2)]] == [victim.pid, survivor.pid], run_id
