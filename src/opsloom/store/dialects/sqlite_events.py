"""SQL of events and subscriptions in the SQLite store (run inside the writer's transaction)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from opsloom.codec import decode, encode
from opsloom.model import StepRecord
from opsloom.model.cloudevent import CloudEvent, StoredEvent
from opsloom.model.matching import deliveries, signal_name
from opsloom.model.run import Fence
from opsloom.store.dialects import sqlite_triggers as triggers
from opsloom.store.dialects.sqlite_sql import _check_fence, _marks, _nudge, _upsert_step
from opsloom.store.event import (
    EVENT_COLUMNS,
    EVENT_INSERT_COLUMNS,
    EVENT_INSERT_COUNT,
    FILTER_COLUMNS,
    SUBSCRIPTION_STEPS_WHERE,
    EventQuery,
    Subscription,
    delivery_payload,
    event_from_row,
    event_insert_params,
    filter_rows,
    open_subscriptions,
    subscription_from_row,
)

_INSERT_EVENT = (
    f"INSERT INTO events ({EVENT_INSERT_COLUMNS}) VALUES ({_marks(range(EVENT_INSERT_COUNT))}) "
    "ON CONFLICT (source, id) DO NOTHING"
)


def append(conn: sqlite3.Connection, events: Sequence[CloudEvent], now: float) -> list[bool]:
    """Store events (a duplicate is ignored: ``False``) and deliver each new one."""
    stored: list[bool] = []
    woken: dict[str, None] = {}
    for event in events:
        cur = conn.execute(_INSERT_EVENT, event_insert_params(event, now))
        if cur.rowcount != 1:
            stored.append(False)
            continue
        stored.append(True)
        delivered = _deliver(conn, event, now)
        for run_id in delivered:
            woken[run_id] = None
        for run_id in triggers.intake(conn, event, event.to_dict(), set(delivered), now):
            woken[run_id] = None
    _nudge(conn, list(woken), now)
    return stored


def _deliver(conn: sqlite3.Connection, event: CloudEvent, now: float) -> list[str]:
    """Hand ``event`` to every subscription it matches, as a signal; returns the runs."""
    candidates = [
        (sub_id, run_id, position, decode(flt))
        for sub_id, run_id, position, flt in conn.execute(
            "SELECT subscription_id, run_id, position, filter FROM subscription_filters "
            "WHERE type = ?",
            (event.type,),
        )
    ]
    if not candidates:
        return []
    shape = event.to_dict()
    chosen = deliveries(candidates, shape)
    conn.executemany(
        "INSERT INTO signals (run_id, name, payload, created_at) VALUES (?, ?, ?, ?)",
        [
            (run_id, signal_name(sub_id), delivery_payload(position, shape), now)
            for sub_id, run_id, position in chosen
        ],
    )
    return [run_id for _, run_id, _ in chosen]


def subscribe(
    conn: sqlite3.Connection,
    fence: Fence,
    subscription_id: str,
    filters: list[dict[str, Any]],
    step: StepRecord,
    now: float,
) -> None:
    _check_fence(conn, fence)
    _open(conn, fence.run_id, subscription_id, filters, now)
    # Events its trigger handed the run before it listened are not lost.
    triggers.move_inbox(conn, fence.run_id, subscription_id, filters, now)
    _upsert_step(conn, step)


def _open(
    conn: sqlite3.Connection,
    run_id: str,
    subscription_id: str,
    filters: list[dict[str, Any]],
    now: float,
) -> None:
    cur = conn.execute(
        "INSERT INTO subscriptions (id, run_id, filters, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (subscription_id, run_id, encode(filters), now),
    )
    if cur.rowcount == 1:
        conn.executemany(
            f"INSERT INTO subscription_filters ({FILTER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            filter_rows(subscription_id, run_id, filters),
        )


def restore_subscriptions(conn: sqlite3.Connection, run_id: str, now: float) -> None:
    """Reopen what the history of a retried run left open (finishing it had dropped them)."""
    entries = conn.execute(
        f"SELECT name, output FROM steps WHERE run_id = ? AND {SUBSCRIPTION_STEPS_WHERE} "
        "ORDER BY seq",
        (run_id,),
    ).fetchall()
    for subscription_id, filters in open_subscriptions(entries).items():
        _open(conn, run_id, subscription_id, filters, now)


def unsubscribe(
    conn: sqlite3.Connection, fence: Fence, subscription_id: str, step: StepRecord
) -> None:
    _check_fence(conn, fence)
    triggers.return_to_inbox(conn, fence.run_id, subscription_id)
    conn.execute(
        "DELETE FROM subscription_filters WHERE subscription_id = ? AND run_id = ?",
        (subscription_id, fence.run_id),
    )
    conn.execute(
        "DELETE FROM subscriptions WHERE id = ? AND run_id = ?", (subscription_id, fence.run_id)
    )
    _upsert_step(conn, step)


def emit(
    conn: sqlite3.Connection, fence: Fence, event: CloudEvent, step: StepRecord, now: float
) -> bool:
    _check_fence(conn, fence)
    stored = append(conn, [event], now)[0]
    _upsert_step(conn, step)
    return stored


def drop_subscriptions(conn: sqlite3.Connection, run_id: str) -> None:
    """Remove every subscription of a run (it finished)."""
    conn.execute(
        "DELETE FROM subscription_filters WHERE subscription_id IN "
        "(SELECT id FROM subscriptions WHERE run_id = ?)",
        (run_id,),
    )
    conn.execute("DELETE FROM subscriptions WHERE run_id = ?", (run_id,))


def get_event(conn: sqlite3.Connection, source: str, event_id: str) -> StoredEvent | None:
    row = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE source = ? AND id = ?", (source, event_id)
    ).fetchone()
    return None if row is None else event_from_row(row)


def list_events(conn: sqlite3.Connection, query: EventQuery) -> list[StoredEvent]:
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
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events {where} ORDER BY seq DESC LIMIT ?",
        (*params, query.limit),
    ).fetchall()
    return [event_from_row(row) for row in rows]


def subscriptions_of(conn: sqlite3.Connection, run_id: str) -> list[Subscription]:
    return [
        subscription_from_row(row)
        for row in conn.execute(
            "SELECT id, run_id, filters, created_at FROM subscriptions WHERE run_id = ? "
            "ORDER BY created_at, id",
            (run_id,),
        )
    ]
