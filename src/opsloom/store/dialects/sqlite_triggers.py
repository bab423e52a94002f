"""Triggers in the SQLite store: the intake run inside ``append_events``' transaction, and the
trigger operations (a mixin of :class:`SqliteStore`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Any

from opsloom.codec import decode, encode
from opsloom.model.cloudevent import CloudEvent
from opsloom.model.matching import first_match, signal_name
from opsloom.model.trigger import INBOX, Trigger, _Failed, choose
from opsloom.store.dialects.sqlite_sql import _insert_run, _nudge
from opsloom.store.event import delivery_payload
from opsloom.store.trigger import (
    CLEAR_STATE,
    CLOSE,
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


def intake(
    conn: sqlite3.Connection,
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
        for trigger_id, position, flt in conn.execute(FILTERS_OF_TYPE, (event.type,))
    ]
    if not candidates:
        return []
    woken: list[str] = []
    for trigger_id, position in choose(candidates, shape):
        row = conn.execute(SELECT_ONE, (trigger_id,)).fetchone()
        if row is not None:
            woken.extend(_fire(conn, trigger_from_row(row), position, event, shape, delivered, now))
    return woken


def _fire(
    conn: sqlite3.Connection,
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
        row = conn.execute(OPEN_RUN, (trigger.id, key)).fetchone()
        if row is not None:
            return _to_inbox(conn, row[0], position, shape, delivered, now)
    if trigger.follows(position):
        return []  # a follow event only reaches an open run
    if key is not None and trigger.window > 0:
        last = conn.execute(LAST_CLOSED, (trigger.id, key)).fetchone()[0]
        if last is not None and now - float(last) < trigger.window:
            return []  # flap suppression: stored, starts nothing
    value: Any = shape
    if trigger.mode == "all":
        correlation = trigger.correlation_of(position, shape)
        if correlation is None:
            return []
        conn.execute(KEEP_STATE, (trigger.id, correlation, position, encode(shape), now))
        rows = conn.execute(READ_STATE, (trigger.id, correlation)).fetchall()
        if len(rows) < len(trigger.filters):
            return []
        conn.execute(CLEAR_STATE, (trigger.id, correlation))
        value = {"events": [decode(blob) for _, blob in rows]}
    blob = trigger.run_input(value)
    if blob is None:
        return []
    run_id = trigger.run_id(key, event.source, event.id)
    if key is not None:
        cur = conn.execute(OPEN, (trigger.id, key, run_id, event.source, event.id, now))
        if cur.rowcount != 1:
            row = conn.execute(OPEN_RUN, (trigger.id, key)).fetchone()
            if row is None or row[0] == run_id:
                return []
            return _to_inbox(conn, row[0], position, shape, delivered, now)
    if _insert_run(conn, trigger.new_run(run_id, blob, now), now):
        conn.execute(MARK_RUN, (event.source, event.id, run_id))
    return []


def _to_inbox(
    conn: sqlite3.Connection,
    run_id: str,
    position: int,
    shape: dict[str, Any],
    delivered: Collection[str],
    now: float,
) -> list[str]:
    if run_id in delivered:
        return []
    conn.execute(INSERT_INBOX, (run_id, INBOX, delivery_payload(position, shape), now))
    return [run_id]


def close_runs(conn: sqlite3.Connection, run_id: str, now: float) -> None:
    """The run ended: its key is free again (in ``finish_run``'s transaction)."""
    conn.execute(CLOSE, (now, run_id))


def move_inbox(
    conn: sqlite3.Connection,
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
    for signal_id, payload in conn.execute(INBOX_OF, (run_id, INBOX)).fetchall():
        delivery = decode(payload) or {}
        event = delivery.get("event") or {}
        position = first_match(filters, event)
        if position is not None:
            blob = moved_payload(position, int(delivery.get("filter", 0)), event)
            conn.execute(MOVE_SIGNAL, (signal_name(subscription_id), blob, signal_id))
            moved = True
    if moved:
        _nudge(conn, [run_id], now)


def return_to_inbox(conn: sqlite3.Connection, run_id: str, subscription_id: str) -> None:
    """A closed subscription gives the inbox events it did not take back to the inbox.

    ``ctx.wait_for_event`` subscribes, takes one event and unsubscribes: the other inbox
    events it was handed wait for the next subscription that matches them.
    """
    rows = conn.execute(INBOX_OF, (run_id, signal_name(subscription_id))).fetchall()
    for signal_id, payload in rows:
        delivery = decode(payload) or {}
        if FROM_INBOX in delivery:
            blob = delivery_payload(int(delivery[FROM_INBOX]), delivery.get("event") or {})
            conn.execute(MOVE_SIGNAL, (INBOX, blob, signal_id))


class SqliteTriggers:
    """Trigger operations; reads on the reader connection, writes through the writer."""

    def _read(self) -> sqlite3.Connection:  # provided by SqliteStore
        raise NotImplementedError

    def _write(self, op: Any) -> Any:  # provided by SqliteStore
        raise NotImplementedError

    async def save_trigger(self, trigger: Trigger, now: float) -> Trigger:
        def op(conn: sqlite3.Connection) -> Trigger:
            row = conn.execute(SELECT_ONE, (trigger.id,)).fetchone()
            if row is None:
                conn.execute(INSERT, insert_params(trigger, now))
            else:
                old = trigger_from_row(row)
                if old.definition() == trigger.definition():
                    return old
                conn.execute(REDEFINE, redefine_params(trigger, now))
                conn.execute(DELETE_FILTERS, (trigger.id,))
                # Half-collected 'all' events were gathered under the old filters.
                conn.execute(DELETE_STATES, (trigger.id,))
            conn.executemany(INSERT_FILTER, filter_params(trigger))
            return trigger_from_row(conn.execute(SELECT_ONE, (trigger.id,)).fetchone())

        result: Trigger = await self._write(op)
        return result

    async def get_trigger(self, trigger_id: str) -> Trigger | None:
        row = self._read().execute(SELECT_ONE, (trigger_id,)).fetchone()
        return None if row is None else trigger_from_row(row)

    async def list_triggers(self) -> list[Trigger]:
        return [trigger_from_row(row) for row in self._read().execute(SELECT_ALL)]

    async def delete_trigger(self, trigger_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            conn.execute(DELETE_FILTERS, (trigger_id,))
            conn.execute(DELETE_STATES, (trigger_id,))
            return bool(conn.execute(DELETE, (trigger_id,)).rowcount)

        result: bool = await self._write(op)
        return result

    async def trigger_runs(self, trigger_id: str, limit: int = 50) -> list[TriggerRun]:
        rows = self._read().execute(RUNS_OF, (trigger_id, limit)).fetchall()
        return [trigger_run_from_row(row) for row in rows]
