"""A Temporal-style workflow survives a SIGKILL of its worker mid-activity.

The workflow (``temporal_flows.py``, on ``opsloom.compat.temporal``) runs three activities; the
second holds until its gate opens. The worker is killed while it holds; a new worker recovers
the run when the lease expires: the first activity is not run again, the second runs again
(at least once), the third once, and the run completes with the results of the recorded
executions.
"""

from __future__ import annotations

import signal

import pytest
from crashlab import Lab

from opsloom import App
from opsloom.compat.temporal.client import Client

pytestmark = [pytest.mark.crash, pytest.mark.timeout(90)]


async def test_sigkill_mid_activity__the_temporal_workflow_completes(lab: Lab, client: App) -> None:
    temporal = Client(client)  # starts by name: this process has no worker
    handle = await temporal.start_workflow(
        "Remediation", args=[str(lab.log), str(lab.gate)], id="remediation-1", task_queue="ops"
    )
    first = lab.spawn(lease=2, concurrency=4, app="temporal_flows:app")
    await lab.wait_until(
        lambda: lab.count("start", seq=2, pid=first.pid)["remediation-1"] == 1,
        timeout=30,
        what="the held activity in flight",
        alive=[first],
    )
    first.send(signal.SIGKILL)
    assert await first.exited(timeout=10) == -signal.SIGKILL

    lab.open_gate()
    second = lab.spawn(lease=2, concurrency=4, app="temporal_flows:app")
    await lab.wait_until(
        lambda: lab.completed(["remediation-1"]),
        timeout=40,
        what="the run to complete on the second worker",
        alive=[second],
    )
    nonces = await handle.result()
    assert lab.count("start", seq=1)["remediation-1"] == 1  # recorded: never again
    assert lab.count("end", seq=2)["remediation-1"] >= 1
    assert lab.count("start", seq=2)["remediation-1"] >= 2  # killed once, run again
    assert lab.count("start", seq=3)["remediation-1"] == 1
    recorded = lab.steps()
    assert [recorded[("remediation-1", seq)]["output"]["nonce"] for seq in (1, 2, 3)] == nonces
    run = await client.get_run("remediation-1")
    assert run.recovered >= 1
