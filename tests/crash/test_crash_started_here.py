"""SIGKILL of a process that started runs and was executing them itself.

Such a run is created already leased to the starting process's worker, in the transaction that
creates it, and its last step's record and its completion share one commit. Neither shortcut
may lose or repeat anything: a run whose starter dies is recovered from its history like any
other, its recorded steps never run again, and a run never completes without its last step.
"""

from __future__ import annotations

import signal

import pytest
from crashlab import Lab, WorkerProcess

from opsloom import App

pytestmark = [pytest.mark.crash, pytest.mark.timeout(90)]

RUNS = [f"here-{i}" for i in range(3)]


async def kill_starter_then_recover(
    lab: Lab, workflow: str, held_seq: int
) -> tuple[WorkerProcess, WorkerProcess]:
    """Start RUNS in a starter, kill it while step ``held_seq`` of each is in flight, check
    that only the steps before it are durable, then let a worker finish them all."""
    starter = lab.spawn_starter(workflow, lab.input(gate=str(lab.gate)), RUNS)
    await lab.wait_until(
        lambda: set(lab.count("start", seq=held_seq, pid=starter.pid)) == set(RUNS),
        timeout=45,
        what=f"step {held_seq} of every run in flight in the starter",
        alive=[starter],
    )
    # Created already leased: the run started when it was created, never queued.
    rows = lab.query("SELECT id, created_at, started_at FROM runs ORDER BY id")
    assert [(run_id, started == created) for run_id, created, started in rows] == [
        (run_id, True) for run_id in RUNS
    ]
    starter.send(signal.SIGKILL)
    assert await starter.exited(timeout=10) == -signal.SIGKILL
    # The start and the steps before are durable; nothing of the step in flight, and no
    # completion without it.
    assert {key: entry["status"] for key, entry in lab.steps().items()} == {
        (run_id, seq): "completed" for run_id in RUNS for seq in range(1, held_seq)
    }
    assert lab.statuses() == {run_id: "running" for run_id in RUNS}

    lab.open_gate()
    # The starter's 2 s lease must lapse for the recovery; the recovering worker's own lease is
    # long, so that a heartbeat late on a loaded machine never hands its runs to itself again.
    second = lab.spawn(lease=15, concurrency=8)
    await lab.wait_until(
        lambda: lab.completed(RUNS), timeout=45, what="every run to complete", alive=[second]
    )
    assert lab.query("SELECT count(*) FROM jobs") == [(0,)]
    return starter, second


@pytest.mark.parametrize(
    ("workflow", "held_seq", "last_seq"),
    [
        # Killed mid-chain: the runs were created leased to the starter, never queued.
        ("three_steps", 2, 3),
        # Killed during the last step, whose record shares its commit with the completion.
        ("mark_then_hold", 2, 2),
    ],
)
async def test_sigkill_of_the_starter__runs_recover_and_recorded_steps_never_run_again(
    lab: Lab, client: App, workflow: str, held_seq: int, last_seq: int
) -> None:
    starter, second = await kill_starter_then_recover(lab, workflow, held_seq)
    steps = lab.steps()
    bodies = lab.bodies_by_step()
    # Steps recorded before the kill ran once, the one in flight ran again, the rest ran after.
    runner = {
        seq: [starter.pid] if seq < held_seq else [second.pid] for seq in range(1, 1 + last_seq)
    }
    runner[held_seq] = [starter.pid, second.pid]
    for run_id in RUNS:
        starts = {seq: [body.pid for body in bodies[(run_id, seq)]] for seq in runner}
        assert starts == runner, run_id
        for seq in runner:
            # The recorded result is the one execution that finished.
            [finished] = [body for body in bodies[(run_id, seq)] if body.ended is not None]
            assert steps[(run_id, seq)]["output"] == {"pid": finished.pid, "nonce": finished.nonce}
        run = await client.get_run(run_id)
        assert (run.status, run.output) == (
            "completed",
            {"pids": [pids[-1] for pids in runner.values()]},
        )
        assert [(step.seq, step.status) for step in run.steps] == [
            (seq, "completed") for seq in runner
        ]
        assert run.recovered >= 1
