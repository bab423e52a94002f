"""Schedules on behalf of the faces: list them, pause and resume one (audited)."""

from __future__ import annotations

from opsloom.app import App
from opsloom.model.schedule import ScheduleRecord
from opsloom.scheduler.scheduler import pause, resume


async def list_schedules(app: App) -> list[ScheduleRecord]:
    """Every schedule with its next tick."""
    return await app.store.list_schedules()


async def set_paused(app: App, schedule_id: str, paused: bool, *, actor: str) -> ScheduleRecord:
    """Pause or resume a schedule, audited as ``schedule.pause`` or ``schedule.resume``.

    Raises:
        ScheduleNotFoundError: there is no such schedule.
    """
    action = pause if paused else resume
    record = await action(app.store, schedule_id, app.clock.now())
    verb = "pause" if paused else "resume"
    await app.audit.append(actor, f"schedule.{verb}", f"schedule:{schedule_id}", {})
    return record
