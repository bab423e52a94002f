"""Hourly trends read summaries written once per hour that is over; open hours stay live."""

from __future__ import annotations

from collections.abc import Callable

from opsloom import App, FakeClock
from opsloom.analytics.report import report
from opsloom.model import RunStatus
from opsloom.model.run import Fence, NewRun
from opsloom.store import Store
from opsloom.store.rollup import HOUR

START = 1_700_000_000.0 // HOUR * HOUR  # a whole hour


async def finish(
    store: Store, run_id: str, workflow: str, at: float, took: float, ok: bool
) -> None:
    new = NewRun(id=run_id, workflow=workflow, version="1", input=b"null")
    await store.create_run(new, at - took, lease=("w", at + 600))
    status = RunStatus.COMPLETED if ok else RunStatus.FAILED
    error = None if ok else {"type": "OSError", "message": "down"}
    await store.finish_run(Fence(run_id, "w", 1), status, None, error, at)


async def test_trends__closed_hours_are_summarised_once_and_the_open_one_is_live(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock(START)
    app = make_app(clock=clock, client=True)
    async with app:
        store = app.store
        # Hour 0: three runs of a (one failed), one of b; hour 1: one run of b taking 8 s.
        await finish(store, "a1", "a", START + 60, 1.0, True)
        await finish(store, "a2", "a", START + 120, 2.0, True)
        await finish(store, "a3", "a", START + 180, 1.0, False)
        await finish(store, "b1", "b", START + 240, 4.0, True)
        await finish(store, "b2", "b", START + HOUR + 60, 8.0, True)
        clock.advance(3 * HOUR + 600)  # hours 0-2 are over; hour 3 is going on
        trend = await report(store, "trends", clock.now(), 4 * HOUR, HOUR)
        assert isinstance(trend, list)
        finished = {int(row["start"] - START) // HOUR: row for row in trend}
        assert finished[0]["finished"] == 4 and finished[0]["by_status"] == {
            "completed": 3,
            "failed": 1,
        }
        assert finished[1]["finished"] == 1 and 7.0 <= finished[1]["duration_p95_s"] <= 9.0
        assert finished[2]["finished"] == 0 and finished[3]["finished"] == 0
        stored = await store.read(
            lambda tx: tx.all("SELECT start, workflow, runs FROM hour_summaries ORDER BY 1, 2")
        )
        hours = {(int(a - START) // HOUR, w): r for a, w, r in stored}
        # The window is rounded out to whole hours: it begins in hour -1.
        assert hours == {
            (-1, ""): 0,
            (0, ""): 4,
            (0, "a"): 3,
            (0, "b"): 1,
            (1, ""): 1,
            (1, "b"): 1,
            (2, ""): 0,
        }
        # The open hour is read live; a closed hour is what was summarised.
        await finish(store, "a4", "a", clock.now(), 1.0, True)
        again = await report(store, "trends", clock.now(), 4 * HOUR, HOUR)
        assert isinstance(again, list)
        assert [row["finished"] for row in again] == [0, 4, 1, 0, 1]
        # Two-hour buckets add the summaries' histograms up.
        wide = await report(store, "trends", clock.now(), 4 * HOUR, 2 * HOUR)
        assert isinstance(wide, list)
        assert [row["finished"] for row in wide] == [0, 5, 1]
        assert 7.0 <= wide[1]["duration_p95_s"] <= 9.0
