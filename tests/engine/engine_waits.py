"""Helpers for engine tests: await conditions instead of sleeping for time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from opsloom import App, RunStatus


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true, polling; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def status_is(app: App, run_id: str, *statuses: RunStatus) -> None:
    async def check() -> bool:
        return (await app.get_run(run_id)).status in statuses

    await eventually(check)


async def parked(app: App, run_id: str) -> None:
    """The run is waiting and no worker holds it in memory."""

    async def check() -> bool:
        run = await app.get_run(run_id)
        return (
            run.status is RunStatus.WAITING
            and app.worker is not None
            and run_id not in app.worker.executions
        )

    await eventually(check)
