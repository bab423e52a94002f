"""Retention prunes finished runs and old events in batches; analytics keep their rollups."""

from __future__ import annotations

from collections.abc import Callable

from opsloom import App, Context, FakeClock
from opsloom.analytics.report import report
from opsloom.analytics.retention import Retention, prune_all
from opsloom.model.cloudevent import CloudEvent


async def test_retention__prunes_old_runs_and_events_and_keeps_the_rollups(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="quick")
    async def quick(ctx: Context, n: int) -> int:
        return n

    async with app:
        old = [await app.start("quick", n) for n in range(5)]
        for n, handle in enumerate(old):
            assert await handle.result(timeout=10) == n
        await app.store.append_event(CloudEvent(id="e1", source="test", type="t"), clock.now())
        clock.advance(10 * 86400)
        recent = await app.start("quick", 99)
        assert await recent.result(timeout=10) == 99
        before = await report(app.store, "workflows", clock.now(), 30 * 86400)
        # Small batches: pruning goes on until a batch comes back short.
        assert await prune_all(app.store, clock.now() - 86400, batch=2) == 6
        assert await app.store.get_run(recent.run_id) is not None
        assert await app.store.get_run(old[0].run_id) is None
        after = await report(app.store, "workflows", clock.now(), 30 * 86400)
        assert after == before and after[0]["runs"] == 6  # type: ignore[index]
        assert await app.store.get_event("test", "e1") is None
        # The background loop prunes only where it holds the singleton.
        retention = Retention(app.store, clock, "someone", days=1)
        assert await retention.run_once() == 0
        other = Retention(app.store, clock, "someone-else", days=1)
        assert await other.run_once() == 0
