"""A process that starts runs and executes them itself (an App with its embedded worker).

    python starter.py <store url> <lease seconds> <workflow> <input json> <run id>...

Runs started where they execute are created already leased to the starting process's worker,
in the transaction that creates them, so they never pass through the queue. The crash tests
kill this process to show that such a run is recovered like any other. It prints
``started <run id>`` once each start is committed, then waits for the runs to end.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from flows import register

from opsloom import App, WorkerOptions


async def main(url: str, lease: float, workflow: str, data: str, run_ids: list[str]) -> None:
    options = WorkerOptions(concurrency=len(run_ids), lease_seconds=lease, grace_seconds=1.0)
    app = register(App(url, worker=options))
    async with app:
        handles = []
        for run_id in run_ids:
            handles.append(await app.start(workflow, orjson.loads(data), run_id=run_id))
            print(f"started {run_id}", flush=True)
        for handle in handles:
            await handle.result()


if __name__ == "__main__":
    url, lease, workflow, data, *run_ids = sys.argv[1:]
    asyncio.run(main(url, float(lease), workflow, data, run_ids))
