"""Helpers for engine tests: await conditions instead of sleeping for time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from opsloom import App, FakeClock, RunStatus, WorkerOptions

#: A worker that replays every run it claims (it keeps no parked run's live execution), for
#: tests of replay itself: a changed code path, entries read from the history.
REPLAYING = WorkerOptions(
    concurrency=64, poll_seconds=0.05, reap_seconds=0.1, grace_seconds=5, keep_parked=0
)


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


def stalled_worker_app(db_url: str, clock: FakeClock | None = None) -> App:
    """An App whose worker plays a dead one: no heartbeat renews its leases, it never reaps."""
    return App(
        db_url,
        clock=clock,
        worker=WorkerOptions(
            lease_seconds=30,
            heartbeat_seconds=3600,
            poll_seconds=0.05,
            reap_seconds=None,
            grace_seconds=0,
        ),
    )


def successor_app(db_url: str) -> tuple[App, FakeClock]:
    """An App that takes over from a stalled worker once its clock is advanced past the lease.

    The clock starts now (after the stalled worker's claim), so that advancing it 31 s passes
    the 30 s lease however long opening the store and claiming took.
    """
    clock = FakeClock(start=time.time())
    app = App(
        db_url,
        clock=clock,
        worker=WorkerOptions(lease_seconds=30, poll_seconds=0.05, reap_seconds=0.05),
    )
    return app, clock
