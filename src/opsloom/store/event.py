"""Events and subscriptions in the store: query types, rows and operations.

Storing a new event and delivering it (a signal ``events:<subscription id>``) to every run
subscribed to it, and to the triggers it matches, happen in one transaction. Deliveries follow
the store's lock order: the ``jobs`` rows of the runs to wake are locked in run-id order, and
only after the event and its signals are written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from opsloom.codec import decode, encode
from opsloom.model import StepRecord
from opsloom.model.cloudevent import CloudEvent, StoredEvent
from opsloom.model.run import Fence
from opsloom.store.intake import TriggersSeen, append, prepare
from opsloom.store.job import check_fence, upsert_step
from opsloom.store.trigger import move_inbox, return_to_inbox
from opsloom.store.tx import WORK, Row, Transactions, Tx

#: Columns selected for a stored event, in the order of ``event_from_row``.
EVENT_COLUMNS = (
    "seq, id, source, type, subject, time, datacontenttype, dataschema, specversion, "
    "extensions, data, data_base64, received_at"
)
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
class EventRuns:
    """What one stored event did: the runs it started and the runs it was delivered to."""

    #: ``(run id, workflow, status)`` of each run a trigger started for the event.
    started: list[tuple[str, str, str]]
    #: Ids of the waiting or open runs the event was handed to (a subscription or an inbox).
    woke: list[str]


@dataclass(frozen=True, slots=True)
class Subscription:
    """An open subscription of a run to events."""

    id: str
    run_id: str
    filters: list[dict[str, Any]]
    created_at: float


def event_from_row(row: Row) -> StoredEvent:
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


def subscription_from_row(row: Row) -> Subscription:
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


async def open_subscription(
    tx: Tx, run_id: str, subscription_id: str, filters: list[dict[str, Any]], now: float
) -> None:
    """Open a subscription of ``run_id`` (unless open): events stored from now on reach it."""
    added = await tx.execute(
        "INSERT INTO subscriptions (id, run_id, filters, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (subscription_id, run_id, encode(filters), now),
    )
    if added == 1:
        await tx.executemany(
            f"INSERT INTO subscription_filters ({FILTER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            filter_rows(subscription_id, run_id, filters),
        )


async def restore_subscriptions(tx: Tx, run_id: str, now: float) -> None:
    """Reopen what the history of a retried run left open (finishing it had dropped them)."""
    entries = await tx.all(
        f"SELECT name, output FROM steps WHERE run_id = ? AND {SUBSCRIPTION_STEPS_WHERE} "
        "ORDER BY seq",
        (run_id,),
    )
    for subscription_id, filters in open_subscriptions(entries).items():
        await open_subscription(tx, run_id, subscription_id, filters, now)


async def _list(tx: Tx, query: EventQuery) -> list[StoredEvent]:
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("type", "source", "subject"):
        value = getattr(query, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.before is not None:
        clauses.append("seq < ?")
        params.append(query.before)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = await tx.all(
        f"SELECT {EVENT_COLUMNS} FROM events {where} ORDER BY seq DESC LIMIT ?",
        (*params, query.limit),
    )
    return [event_from_row(row) for row in rows]


class EventOps(Transactions):
    """The event and subscription operations of :class:`~opsloom.store.base.Store`."""

    @property
    def triggers_seen(self) -> TriggersSeen:
        """The trigger rows this store's intake last read (see :mod:`opsloom.store.intake`)."""
        seen: TriggersSeen | None = getattr(self, "_seen_by_intake", None)
        if seen is None:
            seen = self._seen_by_intake = TriggersSeen()
        return seen

    async def append_events(self, events: list[CloudEvent], now: float) -> list[bool]:
        seen = self.triggers_seen
        # The triggers' work is done here, before the transaction: see store.intake.
        batch = prepare(events, now, seen)
        return await self.write(lambda tx: append(tx, batch, now, seen), WORK)

    async def append_event(self, event: CloudEvent, now: float) -> bool:
        return (await self.append_events([event], now))[0]

    async def get_event(self, source: str, event_id: str) -> StoredEvent | None:
        row = await self.read(
            lambda tx: tx.one(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE source = ? AND id = ?",
                (source, event_id),
            )
        )
        return None if row is None else event_from_row(row)

    async def list_events(self, query: EventQuery) -> list[StoredEvent]:
        return await self.read(lambda tx: _list(tx, query))

    async def runs_of_events(
        self, events: Sequence[StoredEvent]
    ) -> dict[tuple[str, str], EventRuns]:
        """What each event did, by ``(source, id)`` (see :class:`EventRuns`).

        A run a trigger starts, and a delivery's signal, are written in the transaction that
        stores the event, with its ``received_at``: the runs are found by that time (the
        runs' creation-time index) and their event columns; the signals by that time and the
        event in their payload.
        """
        found = {(e.event.source, e.event.id): EventRuns([], []) for e in events}
        times = sorted({e.received_at for e in events})
        if not times:
            return found

        async def read(tx: Tx) -> tuple[list[Row], list[Row]]:
            among, params = tx.among("created_at", times)
            runs = await tx.all(
                "SELECT id, workflow, status, event_source, event_id FROM runs "
                f"WHERE {among} AND event_id IS NOT NULL ORDER BY created_at, id",
                params,
            )
            signals = await tx.all(
                f"SELECT run_id, payload FROM signals WHERE {among} ORDER BY id", params
            )
            return runs, signals

        runs, signals = await self.read(read)
        for run_id, workflow, status, source, event_id in runs:
            if (source, event_id) in found:
                found[(source, event_id)].started.append((run_id, workflow, status))
        for run_id, payload in signals:
            delivered = decode(payload)
            event = delivered.get("event") if isinstance(delivered, dict) else None
            if isinstance(event, dict):
                effects = found.get((str(event.get("source")), str(event.get("id"))))
                if effects is not None and run_id not in effects.woke:
                    effects.woke.append(run_id)
        return found

    async def subscriptions_of(self, run_id: str) -> list[Subscription]:
        rows = await self.read(
            lambda tx: tx.all(
                "SELECT id, run_id, filters, created_at FROM subscriptions WHERE run_id = ? "
                "ORDER BY created_at, id",
                (run_id,),
            )
        )
        return [subscription_from_row(row) for row in rows]

    def subscribe(
        self,
        fence: Fence,
        subscription_id: str,
        filters: list[dict[str, Any]],
        step: StepRecord,
        now: float,
    ) -> Awaitable[None]:
        async def subscribe(tx: Tx) -> None:
            await check_fence(tx, fence)
            await open_subscription(tx, fence.run_id, subscription_id, filters, now)
            # Events its trigger handed the run before it listened are not lost.
            await move_inbox(tx, fence.run_id, subscription_id, filters, now)
            await upsert_step(tx, step)

        return self.write(subscribe)

    def unsubscribe(self, fence: Fence, subscription_id: str, step: StepRecord) -> Awaitable[None]:
        async def unsubscribe(tx: Tx) -> None:
            await check_fence(tx, fence)
            await return_to_inbox(tx, fence.run_id, subscription_id)
            await tx.execute(
                "DELETE FROM subscription_filters WHERE subscription_id = ? AND run_id = ?",
                (subscription_id, fence.run_id),
            )
            await tx.execute(
                "DELETE FROM subscriptions WHERE id = ? AND run_id = ?",
                (subscription_id, fence.run_id),
            )
            await upsert_step(tx, step)

        return self.write(unsubscribe)

    def emit_event(
        self, fence: Fence, event: CloudEvent, step: StepRecord, now: float
    ) -> Awaitable[bool]:
        seen = self.triggers_seen
        batch = prepare([event], now, seen)

        async def emit(tx: Tx) -> bool:
            await check_fence(tx, fence)
            stored = (await append(tx, batch, now, seen))[0]
            await upsert_step(tx, step)
            return stored

        return self.write(emit, WORK)
