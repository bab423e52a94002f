"""Background tasks stop when asked, even when the database driver turns the cancellation of a
query into an error of its own (psycopg raises ``QueryCanceled``)."""

from __future__ import annotations

import asyncio

from opsloom.analytics.periodic import Periodic


class DriverLike(Periodic):
    """Its round is a query that the driver cancels on the server and reports as an error."""

    name = "driver-like"

    def __init__(self) -> None:
        super().__init__(period=3600)
        self.rounds = 0

    async def run_once(self) -> None:
        self.rounds += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("canceling statement due to user request") from None


async def test_periodic__stops_when_a_cancelled_round_ends_in_an_error() -> None:
    task = DriverLike()
    task.start()
    await asyncio.sleep(0.01)
    assert task.rounds == 1
    stopping = asyncio.ensure_future(task.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert stopping in done, "stop() waits for a task that went on after its cancellation"
    assert task.rounds == 1


class Swallowing(DriverLike):
    """Its round is a query whose cancellation the driver answers by returning."""

    async def run_once(self) -> None:
        self.rounds += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return


async def test_periodic__stops_when_a_cancelled_round_returns() -> None:
    task = Swallowing()
    task.start()
    await asyncio.sleep(0.01)
    stopping = asyncio.ensure_future(task.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert stopping in done, "stop() waits for a task that went on after its cancellation"
    assert task.rounds == 1
