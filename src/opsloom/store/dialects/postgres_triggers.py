"""Triggers in the PostgreSQL store: the intake run inside ``append_events``' transaction, and
the trigger operations (a mixin of :class:`PostgresStore`).

The intake inserts signals and runs but locks no ``jobs`` rows: waking the runs it hands events
to is left to ``append``, which locks them in run-id order with the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from psycopg import AsyncConnection

from opsloom.codec import decode, encode
from opsloom.model.cloudevent import CloudEvent
from opsloom.model.matching import first_match, signal_name
from opsloom.model.trigger import INBOX, Trigger, _Failed, choose
from opsloom.store.dialects.postgres_sql import insert_run, lock_key, nudge
from opsloom.store.event import delivery_payload
from opsloom.store.rows import pg
from opsloom.store.trigger import (
    CLEAR_STATE,
    DELETE,
    DELETE_FILTERS,
    DELETE_STATES,
    FILTERS_OF_TYPE,
    FROM_INBOX,
    INBOX_OF,
    INSERT,
    INSERT_FILTER,
    INSERT_INBOX,
    KEEP_STATE,
    LAST_CLOSED,
    MARK_RUN,
    MOVE_SIGNAL,
    OPEN,
    OPEN_RUN,
    READ_STATE,
    REDEFINE,
    RUNS_OF,
    SELECT_ALL,
    SELECT_ONE,
    TriggerRun,
    filter_params,
    insert_params,
    moved_payload,
    redefine_params,
    trigger_from_row,
    trigger_run_from_row,
)

Conn = AsyncConnection[Any]
T = TypeVar("T")


async def _all(conn: Conn, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(pg(query), params)
    return await cur.fetchall()


async def _one(conn: Conn, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    cur = await conn.execute(pg(query), params)
    return await cur.fetchone()


async def intake(
    conn: Conn,
    event: CloudEvent,
    shape: dict[str, Any],
    delivered: Collection[str],
    now: float,
) -> list[str]:
    """Start runs for a new event or hand it to open ones; the runs to wake.

    ``delivered``: runs a subscription already gave this event to (no second copy).
    """
    candidates = [
        (trigger_id, position, decode(flt))
        for trigger_id, position, flt in await _all(conn, FILTERS_OF_TYPE, (event.type,))
    ]
    if not candidates:
        return []
    woken: list[str] = []
    for trigger_id, position in choose(candidates, shape):
        row = await _one(conn, SELECT_ONE, (trigger_id,))
        if row is not None:
            trigger = trigger_from_row(row)
            woken.extend(await _fire(conn, trigger, position, event, shape, delivered, now))
    return woken


async def _fire(
    conn: Conn,
    trigger: Trigger,
    position: int,
    event: CloudEvent,
    shape: dict[str, Any],
    delivered: Collection[str],
    now: float,
) -> list[str]:
    key = trigger.key_of(position, shape)
    if isinstance(key, _Failed):
        return []
    if key is not None:
        row = await _one(conn, OPEN_RUN, (trigger.id, key))
        if row is not None:
            return await _to_inbox(conn, row[0], position, shape, delivered, now)
    if trigger.follows(position):
        return []  # a follow event only reaches an open run
    if key is not None and trigger.window > 0:
        last = await _one(conn, LAST_CLOSED, (trigger.id, key))
        if last is not None and last[0] is not None and now - float(last[0]) < trigger.window:
            return []  # flap suppression: stored, starts nothing
    value: Any = shape
    if trigger.mode == "all":
        correlation = trigger.correlation_of(position, shape)
        if correlation is None:
            return []
        # Two intakes adding the last two events of one correlation at once must see each
        # other's: they take turns on it until the first commits.
        await lock_key(conn, f"trigger:{trigger.id}:{correlation}")
        await conn.execute(pg(KEEP_STATE), (trigger.id, correlation, position, encode(shape), now))
        rows = await _all(conn, READ_STATE, (trigger.id, correlation))
        if len(rows) < len(trigger.filters):
            return []
        await conn.execute(pg(CLEAR_STATE), (trigger.id, correlation))
        value = {"events": [decode(blob) for _, blob in rows]}
    blob = trigger.run_input(value)
    if blob is None:
        return []
    run_id = trigger.run_id(key, event.source, event.id)
    if key is not None:
        # Waits for a concurrent intake that opened this key; then writes nothing.
        cur = await conn.execute(pg(OPEN), (trigger.id, key, run_id, event.source, event.id, now))
        if cur.rowcount != 1:
            row = await _one(conn, OPEN_RUN, (trigger.id, key))
            if row is None or row[0] == run_id:
                return []
            return await _to_inbox(conn, row[0], position, shape, delivered, now)
    if await insert_run(conn, trigger.new_run(run_id, blob, now), now):
        await conn.execute(pg(MARK_RUN), (event.source, event.id, run_id))
    return []


async def _to_inbox(
    conn: Conn,
    run_id: str,
    position: int,
    shape: dict[str, Any],
    delivered: Collection[str],
    now: float,
) -> list[str]:
    if run_id in delivered:
        return []
    await conn.execute(pg(INSERT_INBOX), (run_id, INBOX, delivery_payload(position, shape), now))
    return [run_id]


async def move_inbox(
    conn: Conn,
    run_id: str,
    subscription_id: str,
    filters: list[dict[str, Any]],
    now: float,
) -> None:
    """Hand the run's unconsumed inbox events that match a new subscription to it, in order.

    The signals keep their ids, so the subscriber takes them oldest first, before any event
    delivered live later. A run executing now is nudged: it parks and comes back with them.
    """
    moved = False
    for signal_id, payload in await _all(conn, INBOX_OF, (run_id, INBOX)):
        delivery = decode(payload) or {}
        event = delivery.get("event") or {}
        position = first_match(filters, event)
        if position is not None:
            blob = moved_payload(position, int(delivery.get("filter", 0)), event)
            await conn.execute(pg(MOVE_SIGNAL), (signal_name(subscription_id), blob, signal_id))
            moved = True
    if moved:
        await nudge(conn, [run_id], now)


async def return_to_inbox(conn: Conn, run_id: str, subscription_id: str) -> None:
    """A closed subscription gives the inbox events it did not take back to the inbox.

    ``ctx.wait_for_event`` subscribes, takes one event and unsubscribes: the other inbox
    events it was handed wait for the next subscription that matches them.
    """
    for signal_id, payload in await _all(conn, INBOX_OF, (run_id, signal_name(subscription_id))):
        delivery = decode(payload) or {}
        if FROM_INBOX in delivery:
            blob = delivery_payload(int(delivery[FROM_INBOX]), delivery.get("event") or {})
            await conn.execute(pg(MOVE_SIGNAL), (INBOX, blob, signal_id))


class PostgresTriggers:
    """Trigger operations; reads on the pool, writes through the group-commit writer."""

    async def _read(  # provided by PostgresStore
        self, fn: Callable[[Conn], Awaitable[T]], *, transaction: bool = False
    ) -> T:
        raise NotImplementedError

    def _write(self, op: Any, notify: tuple[str, ...] = ()) -> Any:  # provided by PostgresStore
        raise NotImplementedError

    async def save_trigger(self, trigger: Trigger, now: float) -> Trigger:
        async def op(conn: Conn) -> Trigger:
            row = await _one(conn, SELECT_ONE, (trigger.id,))
            if row is None:
                await conn.execute(pg(INSERT), insert_params(trigger, now))
            else:
                old = trigger_from_row(row)
                if old.definition() == trigger.definition():
                    return old
                await conn.execute(pg(REDEFINE), redefine_params(trigger, now))
                await conn.execute(pg(DELETE_FILTERS), (trigger.id,))
                # Half-collected 'all' events were gathered under the old filters.
                await conn.execute(pg(DELETE_STATES), (trigger.id,))
            async with conn.cursor() as many:
                await many.executemany(pg(INSERT_FILTER), filter_params(trigger))
            saved = await _one(conn, SELECT_ONE, (trigger.id,))
            assert saved is not None
            return trigger_from_row(saved)

        result: Trigger = await self._write(op)
        return result

    async def get_trigger(self, trigger_id: str) -> Trigger | None:
        async def fetch(conn: Conn) -> Trigger | None:
            row = await _one(conn, SELECT_ONE, (trigger_id,))
            return None if row is None else trigger_from_row(row)

        return await self._read(fetch)

    async def list_triggers(self) -> list[Trigger]:
        async def fetch(conn: Conn) -> list[Trigger]:
            return [trigger_from_row(row) for row in await _all(conn, SELECT_ALL, ())]

        return await self._read(fetch)

    async def delete_trigger(self, trigger_id: str) -> bool:
        async def op(conn: Conn) -> bool:
            await conn.execute(pg(DELETE_FILTERS), (trigger_id,))
            await conn.execute(pg(DELETE_STATES), (trigger_id,))
            cur = await conn.execute(pg(DELETE), (trigger_id,))
            return bool(cur.rowcount)

        result: bool = await self._write(op)
        return result

    async def trigger_runs(self, trigger_id: str, limit: int = 50) -> list[TriggerRun]:
        async def fetch(conn: Conn) -> list[TriggerRun]:
            rows = await _all(conn, RUNS_OF, (trigger_id, limit))
            return [trigger_run_from_row(row) for row in rows]

        return await self._read(fetch)
