"""Events and subscriptions in the store: query types and dialect-neutral rows.

What an event row holds and how a delivery is encoded are defined once, here; each dialect
keeps its own SQL text (``dialects/sqlite_events.py``, ``dialects/postgres_events.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsloom.codec import decode, encode
from opsloom.model.cloudevent import CloudEvent, StoredEvent

#: Columns selected for a stored event, in the order of ``event_from_row``.
EVENT_COLUMNS = (
    "seq, id, source, type, subject, time, datacontenttype, dataschema, specversion, "
    "extensions, data, data_base64, received_at"
)
#: Columns of a new event, in the order of ``event_insert_params``.
EVENT_INSERT_COLUMNS = (
    "id, source, type, subject, time, datacontenttype, dataschema, specversion, "
    "extensions, data, data_base64, received_at"
)
EVENT_INSERT_COUNT = 12
#: Columns of a filter row, in the order of ``filter_rows``.
FILTER_COLUMNS = "subscription_id, position, type, run_id, filter"
#: Names of the history entries (kind ``value``) that open and close a subscription; their
#: outputs hold ``subscription`` (and ``filters``), so a retried run gets its open ones back.
SUBSCRIBE_STEP = "subscribe"
UNSUBSCRIBE_STEP = "unsubscribe"
#: Selects, in history order, the entries ``open_subscriptions`` reads.
SUBSCRIPTION_STEPS_WHERE = (
    "kind = 'value' AND status = 'completed' AND name IN ('subscribe', 'unsubscribe')"
)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Criteria for listing events, newest first; ``before`` pages back by intake ``seq``."""

    type: str | None = None
    source: str | None = None
    subject: str | None = None
    before: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Subscription:
    """An open subscription of a run to events."""

    id: str
    run_id: str
    filters: list[dict[str, Any]]
    created_at: float


def event_insert_params(event: CloudEvent, now: float) -> tuple[Any, ...]:
    """A new event row in ``EVENT_INSERT_COLUMNS`` order."""
    return (
        event.id,
        event.source,
        event.type,
        event.subject,
        event.time,
        event.datacontenttype,
        event.dataschema,
        event.specversion,
        encode(dict(event.extensions)) if event.extensions else None,
        None if event.data is None else encode(event.data, what="the data of an event"),
        event.data_base64,
        now,
    )


def event_from_row(row: Sequence[Any]) -> StoredEvent:
    """A stored event from a row selected with ``EVENT_COLUMNS``."""
    return StoredEvent(
        seq=int(row[0]),
        received_at=float(row[12]),
        event=CloudEvent(
            id=row[1],
            source=row[2],
            type=row[3],
            subject=row[4],
            time=row[5],
            datacontenttype=row[6],
            dataschema=row[7],
            specversion=row[8],
            extensions=decode(row[9]) or {},
            data=decode(row[10]),
            data_base64=row[11],
        ),
    )


def filter_rows(
    subscription_id: str, run_id: str, filters: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """One row per filter, keyed by the event type it listens for."""
    return [
        (subscription_id, position, str(flt["type"]), run_id, encode(flt))
        for position, flt in enumerate(filters)
    ]


def delivery_payload(position: int, event: dict[str, Any]) -> bytes:
    """The payload of the signal that hands ``event`` to a subscribed run."""
    return encode({"filter": position, "event": event})


def subscription_from_row(row: Sequence[Any]) -> Subscription:
    """A subscription from ``id, run_id, filters, created_at``."""
    return Subscription(id=row[0], run_id=row[1], filters=decode(row[2]), created_at=float(row[3]))


def open_subscriptions(entries: Sequence[tuple[str, bytes]]) -> dict[str, list[dict[str, Any]]]:
    """Subscriptions a run's history leaves open: ``(name, output)`` entries in seq order."""
    opened: dict[str, list[dict[str, Any]]] = {}
    for name, blob in entries:
        output = decode(blob) or {}
        if name == SUBSCRIBE_STEP:
            opened[str(output["subscription"])] = list(output["filters"])
        elif name == UNSUBSCRIBE_STEP:
            opened.pop(str(output.get("subscription")), None)
    return opened
