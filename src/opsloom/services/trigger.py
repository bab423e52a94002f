"""Triggers on behalf of the faces: what starts runs from events, and the runs each started."""

from __future__ import annotations

from dataclasses import dataclass

from opsloom.app import App
from opsloom.model.trigger import Trigger
from opsloom.store.deadletter import DeadLetter
from opsloom.store.trigger import Debounced, TriggerRun


async def list_triggers(app: App, *, runs: int = 0) -> list[tuple[Trigger, list[TriggerRun]]]:
    """Every trigger, each with up to ``runs`` of the runs it started (newest first)."""
    found = await app.store.list_triggers()
    return [(t, await app.store.trigger_runs(t.id, runs) if runs else []) for t in found]


@dataclass(frozen=True, slots=True)
class TriggerView:
    """One trigger (``None`` when there is none), runs it started and its debounced keys."""

    trigger: Trigger | None
    runs: list[TriggerRun]
    debounced: list[Debounced]


async def show_trigger(app: App, trigger_id: str, *, runs: int = 20) -> TriggerView:
    """One trigger with up to ``runs`` of the runs it started (newest first) and the keys
    waiting out its debounce."""
    found = await app.store.get_trigger(trigger_id)
    if found is None:
        return TriggerView(None, [], [])
    started = await app.store.trigger_runs(trigger_id, runs) if runs else []
    return TriggerView(found, started, await app.store.debounced(trigger_id))


async def dead_letters(app: App, *, pending: bool = True, limit: int = 50) -> list[DeadLetter]:
    """Events triggers matched but could not start runs for, newest first."""
    return await app.store.list_dead_letters(limit=limit, pending=pending)


async def replay_dead_letter(app: App, letter_id: int) -> DeadLetter:
    """Run a dead letter's trigger on its event again; the run it started, if any."""
    letter = await app.store.replay_dead_letter(letter_id, app.clock.now())
    if app.worker is not None:
        app.worker.notify()
    return letter
