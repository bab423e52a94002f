"""The intake of new events, with the triggers' work done before the transaction.

Storing an event runs its triggers in the same transaction (nothing is acted on that was not
stored, and a key's dedup is decided where every writer sees it). Most of what a trigger does
with an event needs no store at all: matching its filters, evaluating the jq of its dedup key,
input and rate limit key, building the run. On SQLite the write transaction is one at a time
for every process on the file, so that work, done inside it, is time the other writers wait.

So :func:`prepare` works it out before the transaction, from the trigger definitions this
store last read (:class:`TriggersSeen`), and the transaction (:func:`append`) reads the
definitions as before and uses what was prepared only when they are the very rows it was
prepared from: a trigger created, redefined or deleted in between is applied as it is now,
never as it was. What depends on stored state stays in the transaction: the open run of a
key, the flap window, ``all`` collections, debounce, rate limits, and the inserts.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsloom.codec import decode, encode
from opsloom.errors import SerializationError
from opsloom.model.cloudevent import CloudEvent
from opsloom.model.matching import deliveries, signal_name
from opsloom.model.trigger import choose
from opsloom.store.job import nudge
from opsloom.store.trigger import (
    FILTERS_OF_TYPE,
    SELECT_ONE,
    Ready,
    delivery_payload,
    filter_of,
    fire,
    known_trigger,
    ready_of,
)
from opsloom.store.tx import Row, Tx
from opsloom.store.writer import failure


@dataclass(slots=True)
class TriggersSeen:
    """The trigger rows a store's intake last read: filters by event type, triggers by id.

    Only a guess at the current definitions, used to prepare; the transaction checks it.
    Bounded by the triggers that exist: types without filters and deleted triggers are dropped.
    """

    filters: dict[str, tuple[Row, ...]] = field(default_factory=dict)
    triggers: dict[str, Row] = field(default_factory=dict)

    def saw_filters(self, event_type: str, rows: Sequence[Row]) -> tuple[Row, ...]:
        found = tuple(tuple(row) for row in rows)
        if found:
            self.filters[event_type] = found
        else:
            self.filters.pop(event_type, None)
        return found

    def saw_trigger(self, trigger_id: str, row: Row | None) -> Row | None:
        if row is None:
            self.triggers.pop(trigger_id, None)
            return None
        found = tuple(row)
        self.triggers[trigger_id] = found
        return found


@dataclass(frozen=True, slots=True)
class Plan:
    """What the triggers were expected to do with one event: the filter rows it was worked
    out from, the ``(trigger id, position)`` chosen, and each chosen trigger's row and
    :class:`~opsloom.store.trigger.Ready`."""

    filters: tuple[Row, ...]
    chosen: list[tuple[str, int]]
    ready: dict[str, tuple[Row, Ready]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A new event ready for the transaction: its row, its structured form, its plan."""

    event: CloudEvent
    shape: dict[str, Any]
    params: tuple[Any, ...]
    plan: Plan | None


def prepare(events: Sequence[CloudEvent], now: float, seen: TriggersSeen) -> list[Prepared]:
    """Work out each event's row and its triggers' decisions, outside any transaction.

    Raises:
        StoreError: an event cannot be stored (its data is not JSON); none of them is.
    """
    prepared: list[Prepared] = []
    for event in events:
        shape = event.to_dict()
        try:
            params = event_insert_params(event, now)
        except SerializationError as exc:
            raise failure(exc) from exc
        prepared.append(Prepared(event, shape, params, _plan(event, shape, now, seen)))
    return prepared


def _plan(event: CloudEvent, shape: dict[str, Any], now: float, seen: TriggersSeen) -> Plan | None:
    rows = seen.filters.get(event.type)
    if rows is None:
        return None  # no trigger of this type seen yet: the transaction works it out
    chosen = choose([(tid, position, filter_of(flt)) for tid, position, flt in rows], shape)
    ready: dict[str, tuple[Row, Ready]] = {}
    for trigger_id, position in chosen:
        row = seen.triggers.get(trigger_id)
        if row is not None:
            trigger = known_trigger(row)
            ready[trigger_id] = (row, ready_of(trigger, position, event, shape, now))
    return Plan(rows, chosen, ready)


def event_insert_params(event: CloudEvent, now: float) -> tuple[Any, ...]:
    """A new event row, in the column order of the insert."""
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


_INSERT_EVENT = (
    "INSERT INTO events (id, source, type, subject, time, datacontenttype, dataschema, "
    "specversion, extensions, data, data_base64, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO NOTHING"
)


async def append(
    tx: Tx, prepared: Sequence[Prepared], now: float, seen: TriggersSeen
) -> list[bool]:
    """Store events (a duplicate is ignored: ``False``) and deliver each new one."""
    stored: list[bool] = []
    woken: set[str] = set()
    for item in prepared:
        if await tx.execute(_INSERT_EVENT, item.params) != 1:
            stored.append(False)
            continue
        stored.append(True)
        delivered = await _deliver(tx, item.event, item.shape, now)
        woken.update(delivered)
        woken.update(await intake(tx, item, set(delivered), now, seen))
    if woken:
        ids = sorted(woken)
        lock = tx.lock("FOR UPDATE")
        if lock:
            among, params = tx.among("run_id", ids)
            await tx.execute(f"SELECT 1 FROM jobs WHERE {among} ORDER BY run_id{lock}", params)
        await nudge(tx, ids, now)
    return stored


async def _deliver(tx: Tx, event: CloudEvent, shape: dict[str, Any], now: float) -> list[str]:
    """Hand ``event`` to every subscription it matches, as a signal; returns the runs."""
    rows = await tx.all(
        "SELECT subscription_id, run_id, position, filter FROM subscription_filters WHERE type = ?",
        (event.type,),
    )
    if not rows:
        return []
    chosen = deliveries([(sub, run, pos, decode(flt)) for sub, run, pos, flt in rows], shape)
    if chosen:
        await tx.executemany(
            "INSERT INTO signals (run_id, name, payload, created_at) VALUES (?, ?, ?, ?)",
            [
                (run_id, signal_name(sub_id), delivery_payload(position, shape), now)
                for sub_id, run_id, position in chosen
            ],
        )
    return [run_id for _, run_id, _ in chosen]


async def intake(
    tx: Tx, item: Prepared, delivered: Collection[str], now: float, seen: TriggersSeen
) -> list[str]:
    """Start runs for a new event or hand it to open ones; the runs to wake.

    ``delivered``: runs a subscription already gave this event to (no second copy).
    """
    event, shape, plan = item.event, item.shape, item.plan
    rows = seen.saw_filters(event.type, await tx.all(FILTERS_OF_TYPE, (event.type,)))
    if not rows:
        return []
    if plan is not None and plan.filters == rows:
        chosen = plan.chosen
    else:
        plan = None
        candidates = [(tid, position, filter_of(flt)) for tid, position, flt in rows]
        chosen = choose(candidates, shape)
    woken: list[str] = []
    for trigger_id, position in chosen:
        row = seen.saw_trigger(trigger_id, await tx.one(SELECT_ONE, (trigger_id,)))
        if row is None:
            continue
        planned = None if plan is None else plan.ready.get(trigger_id)
        # Prepared from this very definition, or worked out now.
        ready = planned[1] if planned is not None and planned[0] == row else None
        trigger = known_trigger(row)
        woken.extend(await fire(tx, trigger, position, event, shape, delivered, now, ready))
    return woken
