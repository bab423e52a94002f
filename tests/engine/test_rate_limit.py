"""Rate limits: runs started faster than a workflow's rate queue and start at the rate."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from engine_waits import eventually, status_is

from opsloom import App, Context, FakeClock, RunStatus
from opsloom.errors import InputError


async def test_rate_limit__a_storm_of_starts_drains_at_the_rate(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    done: list[int] = []

    @app.workflow(name="page")
    async def page(ctx: Context, n: int) -> None:
        done.append(n)

    async with app:
        await app.limit_rate("page", 1.0, burst=2)
        assert [(r.workflow, r.rate, r.burst) for r in await app.store.rate_limits()] == [
            ("page", 1.0, 2)
        ]
        handles = [await app.start("page", n) for n in range(5)]
        await handles[1].result(timeout=10)
        await handles[0].result(timeout=10)
        for handle in handles[2:]:
            assert await handle.status() is RunStatus.PENDING
        for second in (1, 2, 3):
            clock.advance(1)
            await handles[1 + second].result(timeout=10)
            assert sorted(done) == list(range(2 + second))
        await app.limit_rate("page", None)
        assert await app.store.rate_limits() == []
        free = [await app.start("page", n) for n in range(5, 8)]
        for handle in free:
            await handle.result(timeout=10)


async def test_rate_limit__queued_run_is_cancelled_at_once(make_app: Callable[..., App]) -> None:
    app = make_app(clock=FakeClock())

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        return None

    async with app:
        await app.limit_rate("wf", 0.01)
        first = await app.start("wf")
        queued = await app.start("wf")
        await first.result(timeout=10)
        await app.cancel(queued.run_id)
        await status_is(app, queued.run_id, RunStatus.CANCELLED)
        with pytest.raises(InputError, match="positive"):
            await app.limit_rate("wf", 0)
        await eventually(lambda: _pending_none(app))


async def _pending_none(app: App) -> bool:
    return not await app.list_runs(status=RunStatus.PENDING)
