"""A Temporal-style workflow for the crash tests, served by ``--app temporal_flows:app``.

Its activities log to the lab's step log like ``flows.py``'s steps (``mark`` and ``hold``), so
the test counts every execution of every activity body.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flows import hold, mark

from opsloom import App
from opsloom.compat.temporal import activity, workflow
from opsloom.compat.temporal.client import Client

app = App()


@activity.defn
async def quick(log: str) -> dict[str, Any]:
    return await mark(log)


@activity.defn
async def held(log: str, gate: str) -> dict[str, Any]:
    return await hold(log, gate)


@workflow.defn
class Remediation:
    @workflow.run
    async def run(self, log: str, gate: str) -> list[str]:
        limit = timedelta(seconds=60)
        first = await workflow.execute_activity(quick, log, start_to_close_timeout=limit)
        second = await workflow.execute_activity(
            held, args=[log, gate], start_to_close_timeout=limit
        )
        third = await workflow.execute_activity(quick, log, start_to_close_timeout=limit)
        return [first["nonce"], second["nonce"], third["nonce"]]


Client(app).register(Remediation)
