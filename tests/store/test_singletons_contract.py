"""Process-wide singletons (the lease reaper, later the scheduler): one holder per database."""

from __future__ import annotations

from opsloom.store import Store

T0 = 1_000.0


async def test_singleton__first_caller_holds_it_and_others_are_refused(store: Store) -> None:
    assert await store.hold_singleton("reaper", "a", T0, 5)
    assert not await store.hold_singleton("reaper", "b", T0 + 1, 5)
    # Different singletons are independent.
    assert await store.hold_singleton("scheduler", "b", T0 + 1, 5)


async def test_singleton__holder_renews_and_keeps_it(store: Store) -> None:
    assert await store.hold_singleton("reaper", "a", T0, 5)
    assert await store.hold_singleton("reaper", "a", T0 + 4, 5)  # renewed until T0 + 9
    assert not await store.hold_singleton("reaper", "b", T0 + 8, 5)


async def test_singleton__moves_on_when_the_holder_stops_renewing(store: Store) -> None:
    assert await store.hold_singleton("reaper", "a", T0, 5)
    assert not await store.hold_singleton("reaper", "b", T0 + 4.9, 5)
    assert await store.hold_singleton("reaper", "b", T0 + 5.1, 5)
    # The old holder comes back (it was stalled, not dead): it does not get it back.
    assert not await store.hold_singleton("reaper", "a", T0 + 6, 5)


async def test_singleton__release_gives_it_up_at_once(store: Store) -> None:
    assert await store.hold_singleton("reaper", "a", T0, 60)
    await store.release("a", T0 + 1)
    assert await store.hold_singleton("reaper", "b", T0 + 1, 60)
