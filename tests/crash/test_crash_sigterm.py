"""Graceful shutdown: on SIGTERM a worker lets running steps finish, starts none, and gives
its leases back, so another worker carries on at once without re-running recorded steps."""

from __future__ import annotations

import signal
import time

import pytest
from crashlab import Lab

from opsloom import App

pytestmark = [pytest.mark.crash, pytest.mark.timeout(60)]

GRACE = 10.0


async def test_sigterm__running_steps_finish_and_leases_are_released(lab: Lab, client: App) -> None:
    first = lab.spawn(lease=5, concurrency=4, grace=GRACE)
    runs = [f"slow-{i}" for i in range(6)]
    for run_id in runs:
        await client.start("three_steps", lab.input(seconds=1.0), run_id=run_id)
    # Concurrency 4: four runs are inside their one-second step 2, two were never claimed.
    await lab.wait_until(
        lambda: len(lab.count("start", seq=2, pid=first.pid)) == 4,
        timeout=20,
        what="four step-2 bodies in flight",
        alive=[first],
    )
    flying = set(lab.count("start", seq=2, pid=first.pid))

    asked = time.monotonic()
    first.send(signal.SIGTERM)
    assert await first.exited(timeout=GRACE + 5) == 0
    took = time.monotonic() - asked
    assert took < GRACE, f"the worker took {took:.1f}s to stop (grace {GRACE}s)"

    steps = lab.steps()
    bodies = lab.bodies_by_step()
    for run_id in flying:
        # The step that was running finished after SIGTERM and was recorded…
        (body,) = bodies[(run_id, 2)]
        assert body.ended is not None and body.ended > asked, body
        assert steps[(run_id, 2)]["status"] == "completed"
        assert steps[(run_id, 2)]["output"] == {"pid": first.pid, "nonce": body.nonce}
        # …and the next one did not start.
        assert (run_id, 3) not in steps
    assert not [e for e in lab.events() if e.event == "start" and e.at > asked], (
        "a step started after SIGTERM"
    )
    assert lab.owned_jobs() == [], "leases were not released"
    statuses = lab.statuses()
    assert all(statuses[run_id] in ("pending", "waiting") for run_id in runs), statuses

    second = lab.spawn(lease=5, concurrency=4, grace=GRACE)
    await lab.wait_until(
        lambda: lab.completed(runs), timeout=30, what="every run to complete", alive=[second]
    )
    for run_id in runs:
        run = await client.get_run(run_id)
        starts = {seq: [b.pid for b in lab.bodies_by_step()[(run_id, seq)]] for seq in (1, 2, 3)}
        if run_id in flying:
            assert starts == {1: [first.pid], 2: [first.pid], 3: [second.pid]}, run_id
            assert run.output == {"pids": [first.pid, first.pid, second.pid]}
        else:
            assert starts == {1: [second.pid], 2: [second.pid], 3: [second.pid]}, run_id
        # Released, not reaped: nothing was recovered.
        assert run.recovered == 0, run_id
    second.send(signal.SIGTERM)
    assert await second.exited(timeout=GRACE + 5) == 0


async def test_sigterm__step_longer_than_grace__is_cut_and_runs_again(
    lab: Lab, client: App
) -> None:
    grace = 1.0
    first = lab.spawn(lease=5, grace=grace)
    run_id = "stuck"
    await client.start("three_steps", lab.input(gate=str(lab.gate)), run_id=run_id)
    await lab.wait_until(
        lambda: lab.count("start", seq=2)[run_id] == 1,
        timeout=20,
        what="step 2 in flight",
        alive=[first],
    )

    asked = time.monotonic()
    first.send(signal.SIGTERM)
    assert await first.exited(timeout=grace + 10) == 0
    took = time.monotonic() - asked
    assert took < grace + 3, f"the worker took {took:.1f}s to stop (grace {grace}s)"
    assert (run_id, 2) not in lab.steps()
    assert lab.owned_jobs() == [], "the lease was not released"

    lab.open_gate()
    second = lab.spawn(lease=5)
    await lab.wait_until(
        lambda: lab.completed([run_id]), timeout=20, what="the run to complete", alive=[second]
    )
    starts = {seq: [b.pid for b in lab.bodies_by_step()[(run_id, seq)]] for seq in (1, 2, 3)}
    assert starts == {1: [first.pid], 2: [first.pid, second.pid], 3: [second.pid]}
    run = await client.get_run(run_id)
    assert run.output == {"pids": [first.pid, second.pid, second.pid]}
    assert run.recovered == 0
