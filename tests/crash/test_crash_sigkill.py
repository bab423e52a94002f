"""A worker killed with SIGKILL mid-step: the runs it held are recovered by another worker.

Contract (ARCHITECTURE §3): a step body runs at least once, its completion is recorded exactly
once; recorded steps never run again; a run whose worker vanished goes back to pending when its
lease expires and shows as recovered.
"""

from __future__ import annotations

import signal

import pytest
from crashlab import Lab

from opsloom import App

pytestmark = [pytest.mark.crash, pytest.mark.timeout(60)]


async def test_sigkill_mid_step__only_in_flight_steps_run_again(lab: Lab, client: App) -> None:
    first = lab.spawn(lease=2, concurrency=8)

    # Runs that end before the crash: the crash must not touch them.
    done = [f"done-{i}" for i in range(3)]
    for run_id in done:
        await client.start("three_steps", lab.input(), run_id=run_id)
    await lab.wait_until(
        lambda: lab.completed(done), timeout=20, what="the first runs", alive=[first]
    )

    # Twelve runs whose step 2 holds until the gate opens; with concurrency 8, eight are in
    # flight at the kill and four were never claimed.
    held = [f"held-{i:02}" for i in range(12)]
    for run_id in held:
        await client.start("three_steps", lab.input(gate=str(lab.gate)), run_id=run_id)

    def in_flight() -> set[str]:
        return {run_id for run_id in lab.count("start", seq=2, pid=first.pid) if run_id in held}

    await lab.wait_until(
        lambda: len(in_flight()) == 8,
        timeout=20,
        what="eight step-2 bodies in flight",
        alive=[first],
    )
    first.send(signal.SIGKILL)
    assert await first.exited(timeout=10) == -signal.SIGKILL
    flying = in_flight()
    never_claimed = set(held) - flying
    assert len(lab.owned_jobs()) == 8, "the dead worker's leases are still in the store"

    lab.open_gate()
    second = lab.spawn(lease=2, concurrency=8)
    await lab.wait_until(
        lambda: lab.completed(held),
        timeout=30,
        what="every run to complete after the restart",
        alive=[second],
    )

    steps = lab.steps()
    bodies = lab.bodies_by_step()
    for run_id in done + held:
        run = await client.get_run(run_id)
        assert run.status == "completed", run_id
        # One completed history entry per step, no more.
        assert [(s.seq, s.status) for s in run.steps] == [
            (1, "completed"),
            (2, "completed"),
            (3, "completed"),
        ], run_id
        for seq in (1, 2, 3):
            runs_of_step = bodies[(run_id, seq)]
            finished = [body for body in runs_of_step if body.ended is not None]
            # The recorded result is the one execution that finished: never overwritten.
            assert len(finished) == 1, (run_id, seq, runs_of_step)
            assert steps[(run_id, seq)]["output"] == {
                "pid": finished[0].pid,
                "nonce": finished[0].nonce,
            }, (run_id, seq)

        starts = {seq: [body.pid for body in bodies[(run_id, seq)]] for seq in (1, 2, 3)}
        if run_id in flying:
            assert starts == {1: [first.pid], 2: [first.pid, second.pid], 3: [second.pid]}, run_id
            assert run.recovered >= 1, run_id
            assert run.output == {"pids": [first.pid, second.pid, second.pid]}
        elif run_id in never_claimed:
            assert starts == {1: [second.pid], 2: [second.pid], 3: [second.pid]}, run_id
            assert run.recovered == 0, run_id
        else:
            assert starts == {1: [first.pid], 2: [first.pid], 3: [first.pid]}, run_id
            assert run.recovered == 0, run_id

    assert lab.query("SELECT count(*) FROM jobs") == [(0,)]
    second.send(signal.SIGTERM)
    assert await second.exited(timeout=15) == 0


async def test_sigkill_under_load__recorded_steps_never_run_again(lab: Lab, client: App) -> None:
    # The kill lands wherever the worker happens to be: in step bodies, between a body and its
    # group commit, inside a commit. What must hold does not depend on where it lands.
    first = lab.spawn(lease=2, concurrency=32)
    runs = [f"load-{i:03}" for i in range(120)]
    for run_id in runs:
        await client.start("three_steps", lab.input(seconds=0.02), run_id=run_id)
    await lab.wait_until(
        lambda: sum(lab.count("end").values()) >= 120,
        timeout=20,
        what="a third of the step bodies to finish",
        alive=[first],
    )
    first.send(signal.SIGKILL)
    assert await first.exited(timeout=10) == -signal.SIGKILL

    second = lab.spawn(lease=2, concurrency=32)
    await lab.wait_until(
        lambda: lab.completed(runs),
        timeout=30,
        what="every run to complete after the restart",
        alive=[second],
    )

    steps = lab.steps()
    bodies = lab.bodies_by_step()
    again = set()
    for run_id in runs:
        run = await client.get_run(run_id)
        assert [(s.seq, s.status) for s in run.steps] == [
            (1, "completed"),
            (2, "completed"),
            (3, "completed"),
        ], run_id
        recorded_end = 0.0
        for seq in (1, 2, 3):
            executions = bodies[(run_id, seq)]
            nonce = steps[(run_id, seq)]["output"]["nonce"]
            (recorded,) = [b for b in executions if b.nonce == nonce]
            assert recorded.ended is not None
            # A step starts only after the previous step's recorded execution ended.
            assert recorded.started >= recorded_end, (run_id, seq, executions)
            recorded_end = recorded.ended
            if len(executions) == 1:
                continue
            # Run again only if the killed worker ran it and its result was never recorded;
            # the one execution after the restart is the recorded one.
            again.add(run_id)
            assert len(executions) == 2, executions
            assert [b.pid for b in executions] == [first.pid, second.pid], executions
            assert recorded is executions[1], executions
        if run_id in again:
            assert run.recovered >= 1, run_id
    assert lab.query("SELECT count(*) FROM jobs") == [(0,)]


async def test_sigkill_during_gather__recorded_branch_is_kept(lab: Lab, client: App) -> None:
    first = lab.spawn(lease=2)
    runs = [f"fan-{i}" for i in range(4)]
    for run_id in runs:
        await client.start("fan_out", lab.input(gate=str(lab.gate)), run_id=run_id)

    def two_held_one_recorded() -> bool:
        steps = lab.steps()
        held = lab.count("start", pid=first.pid)
        return all(
            steps.get((run_id, 3), {}).get("status") == "completed" and held[run_id] == 3
            for run_id in runs
        )

    await lab.wait_until(
        two_held_one_recorded,
        timeout=20,
        what="branches 1 and 2 in flight and branch 3 recorded",
        alive=[first],
    )
    first.send(signal.SIGKILL)
    assert await first.exited(timeout=10) == -signal.SIGKILL

    lab.open_gate()
    second = lab.spawn(lease=2)
    await lab.wait_until(
        lambda: lab.completed(runs),
        timeout=30,
        what="every run to complete after the restart",
        alive=[second],
    )
    bodies = lab.bodies_by_step()
    for run_id in runs:
        run = await client.get_run(run_id)
        assert [(s.seq, s.status) for s in run.steps] == [
            (1, "completed"),
            (2, "completed"),
            (3, "completed"),
            (4, "completed"),
        ], run_id
        starts = {seq: [b.pid for b in bodies[(run_id, seq)]] for seq in (1, 2, 3, 4)}
        assert starts == {
            1: [first.pid, second.pid],
            2: [first.pid, second.pid],
            3: [first.pid],
            4: [second.pid],
        }, run_id
        assert run.output == {"pids": [second.pid, second.pid, first.pid, second.pid]}
        assert run.recovered >= 1
