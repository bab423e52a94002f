"""A run that keeps losing its worker is quarantined instead of being claimed forever."""

from __future__ import annotations

import pytest

from opsloom.codec import encode
from opsloom.errors import RunStateError
from opsloom.model import RunStatus, StepKind, StepRecord, StepStatus
from opsloom.model.run import NewRun
from opsloom.store import RunFilter, Store

KINDS = frozenset({"wf@1"})
T0 = 1_000.0
LEASE = 10.0


def new_run(run_id: str) -> NewRun:
    return NewRun(id=run_id, workflow="wf", version="1", input=encode({"n": run_id}))


async def crash(store: Store, now: float, worker: str) -> list[str]:
    """A worker claims what is ready and dies: its leases expire and are reaped."""
    claims = await store.claim(worker, KINDS, 10, now, LEASE)
    assert claims, "something was ready to claim"
    return await store.reap_expired(now + LEASE + 1)


async def quarantine(store: Store, run_id: str, times: int) -> float:
    """Create ``run_id`` and crash ``times`` workers on it; the time after the last crash."""
    await store.create_run(new_run(run_id), T0)
    now = T0
    for n in range(times):
        assert await crash(store, now, f"w{n}") == [run_id]
        now += LEASE + 2
    return now


async def test_quarantine__after_n_crashes_a_run_is_not_claimed_again(store: Store) -> None:
    store.quarantine_after = 3
    now = await quarantine(store, "poison", 2)
    run = await store.get_run("poison")
    assert run is not None and run.recovered == 2 and run.quarantined_at is None
    assert await crash(store, now, "w2") == ["poison"]
    run = await store.get_run("poison")
    assert run is not None and run.status is RunStatus.PENDING
    assert run.recovered == 3 and run.quarantined_at == now + LEASE + 1
    assert await store.claim("w3", KINDS, 10, now + 100, LEASE) == []
    assert await store.next_wake(KINDS) is None
    assert [r.id for r in await store.list_runs(RunFilter(quarantined=True))] == ["poison"]
    assert await store.quarantined_count() == 1
    # Other runs are not held back by it.
    await store.create_run(new_run("healthy"), now)
    [claim] = await store.claim("w4", KINDS, 10, now + 100, LEASE)
    assert claim.run.id == "healthy"


async def test_requeue__releases_a_quarantined_run_with_a_fresh_budget(store: Store) -> None:
    store.quarantine_after = 2
    now = await quarantine(store, "poison", 2)
    with pytest.raises(RunStateError, match="not quarantined"):
        await store.create_run(new_run("other"), now)
        await store.requeue_run("other", now)
    released = await store.requeue_run("poison", now)
    assert released.quarantined_at is None and released.recovered == 0
    assert await store.list_runs(RunFilter(quarantined=True)) == []
    [claim] = await store.claim("w9", KINDS, 1, now + 1, LEASE)
    assert claim.run.id in ("poison", "other")
    await store.claim("w9", KINDS, 10, now + 1, LEASE)
    # One more crash is within its new budget.
    assert sorted(await store.reap_expired(now + LEASE + 5)) == ["other", "poison"]
    run = await store.get_run("poison")
    assert run is not None and run.quarantined_at is None and run.recovered == 1


async def test_quarantine__pause_and_resume_do_not_release_it(store: Store) -> None:
    store.quarantine_after = 1
    now = await quarantine(store, "poison", 1)
    await store.pause_run("poison", now)
    await store.resume_run("poison", now + 1)
    assert await store.claim("w1", KINDS, 10, now + 2, LEASE) == []
    await store.pause_run("poison", now + 3)
    released = await store.requeue_run("poison", now + 4)
    assert released.paused == "run", "a run paused while quarantined stays paused"
    assert await store.claim("w1", KINDS, 10, now + 5, LEASE) == []
    await store.resume_run("poison", now + 6)
    assert len(await store.claim("w1", KINDS, 10, now + 7, LEASE)) == 1


async def test_quarantine__cancelling_closes_it_at_once(store: Store) -> None:
    store.quarantine_after = 1
    now = await quarantine(store, "poison", 1)
    assert await store.request_cancel("poison", now) == ["poison"]
    run = await store.get_run("poison")
    assert run is not None and run.status is RunStatus.CANCELLED
    assert run.error is not None and "quarantined" in run.error["message"]
    assert await store.quarantined_count() == 0
    with pytest.raises(RunStateError):
        await store.requeue_run("poison", now + 1)


async def test_quarantine__zero_never_quarantines_and_release_is_no_crash(store: Store) -> None:
    store.quarantine_after = 0
    now = await quarantine(store, "r", 3)
    run = await store.get_run("r")
    assert run is not None and run.recovered == 3 and run.quarantined_at is None
    store.quarantine_after = 1
    await store.claim("w", KINDS, 10, now, LEASE)
    # A worker that stops and gives its runs back did not crash on them.
    assert await store.release("w", now + 1) == 1
    run = await store.get_run("r")
    assert run is not None and run.quarantined_at is None


async def test_stalled_runs__held_without_progress_and_due_but_unclaimed(store: Store) -> None:
    for run_id in ("busy", "quiet"):
        await store.create_run(new_run(run_id), T0)
    await store.create_run(new_run("late"), T0 + 1)
    claims = {c.run.id: c for c in await store.claim("w", KINDS, 2, T0, 10_000)}
    assert set(claims) == {"busy", "quiet"}
    await store.record_step(
        claims["busy"].fence,
        StepRecord(
            run_id="busy",
            seq=1,
            kind=StepKind.STEP,
            name="s",
            status=StepStatus.COMPLETED,
            started_at=T0 + 500,
            completed_at=T0 + 900,
        ),
    )
    stalled = {s.run_id: s for s in await store.stalled_runs(T0 + 600)}
    assert set(stalled) == {"quiet", "late"}
    assert stalled["quiet"].held and stalled["quiet"].active_at == T0
    assert not stalled["late"].held and stalled["late"].active_at == T0 + 1
    assert await store.stalled_runs(T0 - 1) == []
