"""Run listings for the web UI: keyset pages, time range, text search and counts per status."""

from __future__ import annotations

from opsloom.codec import encode
from opsloom.model import RunStatus
from opsloom.model.run import NewRun
from opsloom.store import RunFilter, Store

T0 = 1_000.0


async def make_runs(store: Store, count: int) -> None:
    for n in range(count):
        new = NewRun(
            id=f"run-{n:03d}",
            workflow="even" if n % 2 == 0 else "odd",
            version="1",
            input=encode({"service": f"svc-{n}"}),
        )
        # Two runs share each creation time, so the id must break the ties.
        await store.create_run(new, T0 + n // 2)


async def test_list_runs__keyset_pages_cover_every_run_once(store: Store) -> None:
    await make_runs(store, 9)
    seen: list[str] = []
    cursor: tuple[float, str] | None = None
    while True:
        page = await store.list_runs(RunFilter(limit=4, before=cursor))
        if not page:
            break
        seen += [run.id for run in page]
        cursor = (page[-1].created_at, page[-1].id)
    assert seen == [f"run-{n:03d}" for n in reversed(range(9))]


async def test_list_runs__time_range_and_text(store: Store) -> None:
    await make_runs(store, 6)
    ranged = await store.list_runs(RunFilter(created_from=T0 + 1, created_to=T0 + 2))
    assert [run.id for run in ranged] == ["run-003", "run-002"]
    by_input = await store.list_runs(RunFilter(text="svc-4"))
    assert [run.id for run in by_input] == ["run-004"]
    by_id = await store.list_runs(RunFilter(text="n-00", workflow="odd"))
    assert [run.id for run in by_id] == ["run-005", "run-003", "run-001"]
    assert await store.list_runs(RunFilter(text="nowhere")) == []


async def test_count_runs__per_status_under_the_other_filters(store: Store) -> None:
    await make_runs(store, 5)
    counts = await store.count_runs(RunFilter(workflow="even", status=RunStatus.FAILED))
    assert counts == {RunStatus.PENDING: 3}
    assert await store.count_runs(RunFilter(text="svc-3")) == {RunStatus.PENDING: 1}
    assert await store.count_runs(RunFilter(workflow="none")) == {}
