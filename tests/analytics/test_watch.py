"""Anomalies become CloudEvents in opsloom's own event store, once each."""

from __future__ import annotations

from collections.abc import Callable

from opsloom import App, FakeClock
from opsloom.analytics.watch import ANOMALY_TYPE, SOURCE, AnomalyWatch
from opsloom.model import RunStatus
from opsloom.model.run import Fence, NewRun


async def test_watch__a_duration_regression_is_stored_as_an_event_once(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock, client=True)
    async with app:
        store = app.store
        # Five-minute buckets: ten steady ones of five runs of about a second, then five runs
        # of five seconds.
        start = clock.now()
        for bucket in range(11):
            for i in range(5):
                run_id = f"r{bucket}-{i}"
                at = start + bucket * 300 + i * 50
                took = 5.0 if bucket == 10 else 1.0 + 0.1 * ((bucket + i) % 3)
                new = NewRun(id=run_id, workflow="backup", version="1", input=b"null")
                await store.create_run(new, at, lease=("w", at + 600))
                await store.finish_run(
                    Fence(run_id, "w", 1), RunStatus.COMPLETED, None, None, at + took
                )
        clock.advance(11 * 300)
        watch = AnomalyWatch(store, clock, "me", app.emit_events)
        [event] = await watch.run_once()
        assert await watch.run_once() == [], "the same anomaly is stored once"
        stored = await store.get_event(SOURCE, event.id)
    assert stored is not None and stored.event.type == ANOMALY_TYPE
    assert stored.event.subject == "backup"
    assert stored.event.data["kind"] == "duration_regression"
    assert stored.event.data["value"] >= 4.0
