"""Trigger debounce on every store: a burst of one key's events starts one run, with the last
event, once the key has been quiet for the debounce (capped by ``debounce_max``); the pending
event is in the store, so a restart loses nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from test_triggers import eventually

from opsloom import App, Context, FakeClock
from opsloom.errors import ConfigurationError, InputError
from opsloom.model import RunStatus
from opsloom.model.cloudevent import CloudEvent, parse_event
from opsloom.model.trigger import INBOX, Trigger
from opsloom.store import RunFilter, Store, open_store

FIRING = "io.opsloom.alert.firing.v1"


def event(event_id: str, subject: str | None = "fp-1", **data: Any) -> CloudEvent:
    return parse_event(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "/hooks/alertmanager",
            "type": FIRING,
            "subject": subject,
            "data": {"n": event_id, **data},
        }
    )


def debounced_trigger(**changes: Any) -> Trigger:
    values: dict[str, Any] = {
        "id": "code:wf",
        "workflow": "wf",
        "version": "1",
        "filters": [{"type": FIRING}],
        "debounce": 30.0,
    }
    values.update(changes)
    return Trigger(**values)


async def runs_of(store: Store) -> list[Any]:
    return sorted(await store.list_runs(RunFilter(workflow="wf")), key=lambda r: r.created_at)


async def test_debounce__a_burst_of_one_key_starts_one_run_with_the_last_event(
    store: Store,
) -> None:
    saved = await store.save_trigger(debounced_trigger(), 0.0)
    assert (saved.debounce, saved.debounce_max) == (30.0, None)
    await store.append_events([event("e1")], 0.0)
    await store.append_events([event("x1", subject="fp-2")], 5.0)
    await store.append_events([event("e2")], 10.0)
    await store.append_events([event("e3")], 20.0)
    assert await runs_of(store) == []
    held = {d.key: d for d in await store.debounced("code:wf")}
    assert (held["fp-1"].events, held["fp-1"].event_id, held["fp-1"].due_at) == (3, "e3", 50.0)
    assert (held["fp-2"].events, held["fp-2"].due_at) == (1, 35.0)
    assert await store.next_debounce_at() == 35.0

    assert await store.fire_debounced(34.0) == 0
    assert await store.fire_debounced(35.0) == 1
    assert [r.input["data"]["n"] for r in await runs_of(store)] == ["x1"]
    assert await store.fire_debounced(50.0) == 1
    runs = await runs_of(store)
    assert [r.input["data"]["n"] for r in runs] == ["x1", "e3"]
    assert (runs[1].event_id, runs[1].started_by) == ("e3", "trigger:code:wf")
    assert await store.debounced("code:wf") == []
    assert await store.fire_debounced(100.0) == 0

    # While the key's run is open its events reach the run at once, as without debounce.
    await store.append_events([event("e4")], 60.0)
    assert await store.debounced("code:wf") == []
    inbox = [s for s in await store.pending_signals(runs[1].id) if s.name == INBOX]
    assert [s.payload["event"]["id"] for s in inbox] == ["e4"]
    assert len(await runs_of(store)) == 2


async def test_debounce__max_caps_the_wait_after_the_first_event(store: Store) -> None:
    await store.save_trigger(debounced_trigger(debounce=30.0, debounce_max=45.0), 0.0)
    for second in (0, 20, 40, 60):
        await store.append_events([event(f"e{second}")], float(second))
    (held,) = await store.debounced("code:wf")
    assert (held.events, held.due_at) == (4, 45.0)
    assert await store.fire_debounced(45.0) == 1
    assert [r.input["data"]["n"] for r in await runs_of(store)] == ["e60"]


async def test_debounce__without_a_key_every_event_of_the_trigger_collapses(
    store: Store,
) -> None:
    await store.save_trigger(debounced_trigger(key=None), 0.0)
    await store.append_events([event("a", subject="fp-1"), event("b", subject="fp-2")], 0.0)
    assert [d.events for d in await store.debounced("code:wf")] == [2]
    assert await store.fire_debounced(30.0) == 1
    assert [r.input["data"]["n"] for r in await runs_of(store)] == ["b"]


async def test_debounce__the_pending_event_survives_a_restart(db_url: str) -> None:
    first = open_store(db_url)
    await first.open()
    try:
        await first.save_trigger(debounced_trigger(), 0.0)
        await first.append_events([event("e1"), event("e2")], 0.0)
    finally:
        await first.close()
    second = open_store(db_url)
    await second.open()
    try:
        assert [d.event_id for d in await second.debounced("code:wf")] == ["e2"]
        assert await second.fire_debounced(30.0) == 1
        assert [r.input["data"]["n"] for r in await runs_of(second)] == ["e2"]
    finally:
        await second.close()


async def test_debounce__a_deleted_trigger_drops_its_pending_keys(store: Store) -> None:
    await store.save_trigger(debounced_trigger(), 0.0)
    await store.append_events([event("e1")], 0.0)
    assert await store.delete_trigger("code:wf") is True
    assert await store.next_debounce_at() is None
    assert await store.fire_debounced(100.0) == 0
    assert await runs_of(store) == []


def test_debounce__bad_declarations_are_refused() -> None:
    with pytest.raises(InputError, match="debounce is for modes one and any"):
        debounced_trigger(mode="all", filters=[{"type": FIRING}, {"type": "b"}])
    with pytest.raises(InputError, match="debounce_max must be at least the debounce"):
        debounced_trigger(debounce_max=10.0)
    with pytest.raises(InputError, match="debounce_max needs a debounce"):
        debounced_trigger(debounce=0.0, debounce_max=10.0)
    with pytest.raises(InputError, match="debounce must be 0 or more"):
        debounced_trigger(debounce=-1.0)
    app = App("sqlite:///:memory:")
    with pytest.raises(ConfigurationError, match="debounce_max"):
        app.trigger("wf", on={"type": FIRING}, debounce=5.0, debounce_max=1.0)


async def test_debounce__the_scheduler_starts_the_run_when_the_key_is_quiet(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    seen: list[str] = []

    @app.workflow(name="page")
    async def page(ctx: Context, alert: dict[str, Any]) -> str:
        seen.append(alert["id"])
        return str(alert["id"])

    app.trigger("page", on={"type": FIRING}, debounce=30.0)
    async with app:
        for n in range(5):
            await app.emit(event(f"storm-{n}").to_dict())
            clock.advance(5)
        assert await app.store.list_runs(RunFilter(workflow="page")) == []
        clock.advance(30)
        run = await _one_run(app)
        assert await app.result(run.id, timeout=10) == "storm-4"
        assert seen == ["storm-4"]
        shown = await app.store.get_trigger("code:page")
        assert shown is not None and shown.debounce == 30.0


async def _one_run(app: App) -> Any:
    found: list[Any] = []

    async def started() -> bool:
        found[:] = await app.store.list_runs(RunFilter(workflow="page"))
        return len(found) == 1

    await eventually(started)
    assert found[0].status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPLETED)
    return found[0]
