"""SIGKILL while runs are parked on signals and timers: waiting lives in the store, not in a
process, so signals sent while no worker runs are delivered and timers fire after a restart."""

from __future__ import annotations

import signal
import time

import pytest
from crashlab import Lab

from opsloom import App

pytestmark = [pytest.mark.crash, pytest.mark.timeout(60)]


async def test_sigkill_while_parked__signals_and_timers_survive(lab: Lab, client: App) -> None:
    first = lab.spawn(lease=2)
    waiting = [f"signal-{i:02}" for i in range(20)]
    # Half the timers fall due while no worker runs, half after the restart; none before the
    # kill (parking forty runs takes well under two seconds).
    timers = {f"timer-{i:02}": 2.0 if i % 2 else 4.0 for i in range(20)}
    for run_id in waiting:
        await client.start("parked", lab.input(mode="signal"), run_id=run_id)
    for run_id, seconds in timers.items():
        await client.start("parked", lab.input(mode="timer", seconds=seconds), run_id=run_id)
    runs = waiting + list(timers)

    def all_parked() -> bool:
        statuses = lab.statuses()
        steps = lab.steps()
        return (
            all(statuses.get(run_id) == "waiting" for run_id in runs)
            and all(steps.get((run_id, 2), {}).get("status") == "waiting" for run_id in runs)
            and not lab.owned_jobs()
        )

    await lab.wait_until(all_parked, timeout=20, what="every run to park", alive=[first])
    first.send(signal.SIGKILL)
    assert await first.exited(timeout=10) == -signal.SIGKILL

    # No worker is running: the signals can only be stored.
    for i, run_id in enumerate(waiting):
        await client.signal(run_id, "go", {"n": i})
    assert lab.query("SELECT count(*) FROM signals WHERE consumed_seq IS NULL") == [(20,)]
    steps = lab.steps()
    short_due = max(steps[(run_id, 2)]["wake_at"] for run_id, s in timers.items() if s < 3)
    await lab.wait_until(
        lambda: time.time() > short_due, timeout=10, what="the short timers to fall due"
    )

    second = lab.spawn(lease=2)
    await lab.wait_until(
        lambda: lab.completed(runs), timeout=30, what="every run to complete", alive=[second]
    )

    steps = lab.steps()
    for i, run_id in enumerate(waiting):
        run = await client.get_run(run_id)
        assert run.output == {"got": {"n": i}}, run_id
        assert (steps[(run_id, 2)]["kind"], steps[(run_id, 2)]["status"]) == ("signal", "completed")
    for run_id, seconds in timers.items():
        timer = steps[(run_id, 2)]
        assert (timer["kind"], timer["status"]) == ("sleep", "completed")
        assert timer["wake_at"] == pytest.approx(timer["started_at"] + seconds, abs=0.01)
        assert timer["completed_at"] >= timer["wake_at"], f"{run_id} woke early"
    # Each signal was consumed exactly once, by the wait it was meant for.
    assert sorted(lab.query("SELECT run_id, consumed_seq FROM signals")) == [
        (run_id, 2) for run_id in sorted(waiting)
    ]

    # Parked runs held no lease: the crash re-ran nothing and recovered nothing.
    bodies = lab.bodies_by_step()
    for run_id in runs:
        assert [b.pid for b in bodies[(run_id, 1)]] == [first.pid], run_id
        assert [b.pid for b in bodies[(run_id, 3)]] == [second.pid], run_id
        assert (await client.get_run(run_id)).recovered == 0, run_id
    assert lab.query("SELECT count(*) FROM jobs") == [(0,)]
    second.send(signal.SIGTERM)
    assert await second.exited(timeout=15) == 0
