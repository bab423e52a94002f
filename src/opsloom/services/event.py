"""Events on behalf of the API and the CLI: emit, list and show stored CloudEvents."""

from __future__ import annotations

from typing import Any

from opsloom.app import App
from opsloom.errors import OpsloomError
from opsloom.model.cloudevent import CloudEvent, EventReceipt, StoredEvent
from opsloom.store.event import EventQuery


class EventNotFoundError(OpsloomError):
    """No event is stored under that source and id."""

    code = "event_not_found"


class ExportPeriodError(OpsloomError):
    """An export's period is empty or reversed."""

    code = "invalid_period"


async def emit_events(
    app: App, events: list[CloudEvent], *, actor: str | None = None
) -> list[EventReceipt]:
    """Store events (all or none) and wake the runs waiting for them.

    With an ``actor`` (a person, not a webhook), the new events are audited as one
    ``event.emit`` entry naming their sources, ids and types (one entry per request keeps the
    hash chain off the intake's hot path).
    """
    receipts = await app.emit_events(events)
    if actor is not None:
        stored = [
            {"source": e.source, "id": e.id, "type": e.type}
            for e, r in zip(events, receipts, strict=True)
            if r.stored
        ]
        if stored:
            await app.audit.append(actor, "event.emit", "events", {"events": stored})
    return receipts


async def emit_event(app: App, event: dict[str, Any], *, actor: str) -> EventReceipt:
    """Validate and store one event in its JSON form (an ``id`` is generated when missing)."""
    from opsloom.ids import new_id
    from opsloom.model.cloudevent import parse_event

    return (await emit_events(app, [parse_event(event, default_id=new_id)], actor=actor))[0]


async def list_events(
    app: App,
    *,
    type: str | None = None,
    source: str | None = None,
    subject: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[StoredEvent]:
    """Stored events, newest first; ``before`` pages back by intake sequence number."""
    query = EventQuery(type=type, source=source, subject=subject, before=before, limit=limit)
    return await app.store.list_events(query)


async def show_event(app: App, source: str, event_id: str) -> StoredEvent:
    """One stored event by its producer's source and id.

    Raises:
        EventNotFoundError: there is none.
    """
    stored = await app.store.get_event(source, event_id)
    if stored is None:
        raise EventNotFoundError(f"no event {event_id!r} from source {source!r}")
    return stored


async def export_events(
    app: App,
    *,
    type: str,
    since: float,
    until: float,
    source: str | None = None,
    page: int = 500,
) -> list[StoredEvent]:
    """Every stored event of ``type`` received in ``[since, until)``, oldest first.

    What an auditor asks for (the evidence of a period): pages back through the events of the
    type by intake order and stops at the first one received before ``since``.
    """
    if until <= since:
        raise ExportPeriodError("the end of the period must come after its start")
    found: list[StoredEvent] = []
    before: int | None = None
    while True:
        batch = await list_events(app, type=type, source=source, before=before, limit=page)
        for stored in batch:
            if stored.received_at < since:
                return found[::-1]
            if stored.received_at < until:
                found.append(stored)
        if len(batch) < page:
            return found[::-1]
        before = batch[-1].seq
