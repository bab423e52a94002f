"""Worker slots: an identity a restarted worker gets back, and the runs leased under it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from opsloom.model import RunStatus
from opsloom.model.run import NewRun
from opsloom.store import Store, open_store

T0 = 1_000.0
KIND = frozenset({"wf@1"})


@pytest.fixture(autouse=True)
def believe_at_once(store: Store) -> None:
    """PostgreSQL believes a slot free only when it stays free a while (see below)."""
    if hasattr(store, "slot_confirm_seconds"):
        store.slot_confirm_seconds = 0.0


@pytest.fixture
async def peer(store: Store) -> AsyncIterator[Store]:
    """A second store on the same database, as another process would open it."""
    other = open_store(store.url)  # type: ignore[attr-defined]
    await other.open()
    try:
        yield other
    finally:
        await other.close()


async def leased(store: Store, run_id: str, owner: str) -> None:
    new = NewRun(id=run_id, workflow="wf", version="1", input=b"{}")
    await store.create_run(new, T0, lease=(owner, T0 + 600))


async def owner_of(store: Store, run_id: str) -> str | None:
    row = await store.read(  # type: ignore[attr-defined]
        lambda tx: tx.one("SELECT owner FROM jobs WHERE run_id = ?", (run_id,))
    )
    return None if row is None else row[0]


async def test_worker_slot__each_holder_its_own__a_closed_holders_is_free_again(
    store: Store, peer: Store
) -> None:
    mine, theirs = await store.take_worker_slot(), await peer.take_worker_slot()
    assert mine is not None and theirs is not None and mine != theirs
    assert not await store.worker_slot_free(theirs)
    assert not await peer.worker_slot_free(mine)
    assert await store.worker_slot_free(re.sub(r"[0-9]+$", "7", theirs))
    await peer.close()
    assert await store.worker_slot_free(theirs)
    # The lowest free slot: the one the closed store held.
    again = open_store(store.url)  # type: ignore[attr-defined]
    await again.open()
    try:
        assert await again.take_worker_slot() == theirs
    finally:
        await again.close()


async def test_recover_owned__requeues_what_earlier_holders_of_the_slot_leased(
    store: Store,
) -> None:
    slot = await store.take_worker_slot()
    assert slot is not None
    await leased(store, "old-1", f"{slot}#dead")
    await leased(store, "old-2", f"{slot}#dead")
    await leased(store, "mine", f"{slot}#alive")
    await leased(store, "other", f"{slot}0#someone")  # another slot whose name starts alike
    await leased(store, "plain", "no-slot-owner")

    recovered = await store.recover_owned(slot, f"{slot}#alive", T0 + 1)

    assert sorted(recovered) == ["old-1", "old-2"]
    assert await owner_of(store, "old-1") is None
    assert await owner_of(store, "mine") == f"{slot}#alive"
    assert await owner_of(store, "other") == f"{slot}0#someone"
    run = await store.get_run("old-1")
    assert run is not None and run.status is RunStatus.PENDING and run.recovered == 1
    # Claimed again under a new fencing token.
    claims = await store.claim(f"{slot}#alive", KIND, 10, T0 + 2, 30)
    assert sorted((c.run.id, c.fence.token) for c in claims) == [("old-1", 2), ("old-2", 2)]


async def test_reap_orphans__requeues_only_the_runs_of_slots_nobody_holds(
    store: Store, peer: Store
) -> None:
    alive = await peer.take_worker_slot()
    assert alive is not None
    # Slots named as this store names them, that nobody took.
    await leased(store, "of-dead", re.sub(r"[0-9]+$", "900", alive) + "#gone")
    await leased(store, "of-dead-too", re.sub(r"[0-9]+$", "901", alive) + "#gone")
    await leased(store, "of-alive", f"{alive}#live")
    await leased(store, "plain", "no-slot-owner")

    dead_owner = re.sub(r"[0-9]+$", "902", alive) + "#gone"
    assert await store.hold_singleton("reaper", dead_owner, T0, 600)
    assert await store.hold_singleton("scheduler", f"{alive}#live", T0, 600)

    reaped = await store.reap_orphans(T0 + 1)

    assert sorted(reaped) == ["of-dead", "of-dead-too"]
    assert await owner_of(store, "of-alive") == f"{alive}#live"
    assert await owner_of(store, "plain") == "no-slot-owner"
    assert await store.reap_orphans(T0 + 2) == []
    # The dead one's singleton is free at once; the living one's is kept.
    assert await store.hold_singleton("reaper", "next", T0 + 2, 600)
    assert not await store.hold_singleton("scheduler", "next", T0 + 2, 600)


async def test_worker_slot__a_lost_session_takes_its_slots_back(store: Store, peer: Store) -> None:
    mine = await peer.take_worker_slot()
    assert mine is not None
    if hasattr(store, "slot_confirm_seconds"):
        # PostgreSQL: a server restart ends every session, so every slot is free for a
        # moment. Others wait before they believe it; the holder takes its slots back at its
        # next reaper period.
        peer_pid = peer._slots.info.backend_pid  # type: ignore[attr-defined]
        await store.read(  # type: ignore[attr-defined]
            lambda tx: tx.one("SELECT pg_terminate_backend(?)", (peer_pid,))
        )
        store.slot_confirm_seconds = 3600.0
        assert not await store.worker_slot_free(mine), "free once is not dead yet"
        store.slot_confirm_seconds = 0.0
    await peer.keep_worker_slots()
    assert not await store.worker_slot_free(mine), "held by its holder"
