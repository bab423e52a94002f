"""SQL of events and subscriptions in the PostgreSQL store (run inside a transaction).

Deliveries follow the store's lock order: the ``jobs`` rows of the runs to wake are locked
in run-id order, and only after the event and its signals are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from opsloom.codec import decode, encode
from opsloom.model import StepRecord
from opsloom.model.cloudevent import CloudEvent, StoredEvent
from opsloom.model.matching import deliveries, signal_name
from opsloom.model.run import Fence
from opsloom.store.dialects import postgres_triggers as triggers
from opsloom.store.dialects.postgres_sql import check_fence, upsert_step
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

Conn = AsyncConnection[Any]

_INSERT_EVENT = (
    f"INSERT INTO events ({EVENT_INSERT_COLUMNS}) "
    f"VALUES ({', '.join(['%s'] * EVENT_INSERT_COUNT)}) "
    "ON CONFLICT ON CONSTRAINT events_source_id_key DO NOTHING"
)


async def append(conn: Conn, events: Sequence[CloudEvent], now: float) -> list[bool]:
    """Store events (a duplicate is ignored: ``False``) and deliver each new one."""
    stored: list[bool] = []
    woken: set[str] = set()
    for event in events:
        cur = await conn.execute(_INSERT_EVENT, event_insert_params(event, now))
        if cur.rowcount != 1:
            stored.append(False)
            continue
        stored.append(True)
        delivered = await _deliver(conn, event, now)
        woken.update(delivered)
        woken.update(await triggers.intake(conn, event, event.to_dict(), set(delivered), now))
    if woken:
        ids = sorted(woken)
        await conn.execute(
            "SELECT 1 FROM jobs WHERE run_id = ANY(%s) ORDER BY run_id FOR UPDATE", (ids,)
        )
        await conn.execute(
            "UPDATE jobs SET nudged = 1, available_at = CASE WHEN owner IS NULL THEN %s "
            "ELSE available_at END WHERE run_id = ANY(%s)",
            (now, ids),
        )
    return stored


async def _deliver(conn: Conn, event: CloudEvent, now: float) -> list[str]:
    """Hand ``event`` to every subscription it matches, as a signal; returns the runs."""
    cur = await conn.execute(
        "SELECT subscription_id, run_id, position, filter FROM subscription_filters "
        "WHERE type = %s",
        (event.type,),
    )
    candidates = [
        (sub_id, run_id, position, decode(flt))
        for sub_id, run_id, position, flt in await cur.fetchall()
    ]
    if not candidates:
        return []
    shape = event.to_dict()
    chosen = deliveries(candidates, shape)
    if chosen:
        async with conn.cursor() as many:
            await many.executemany(
                "INSERT INTO signals (run_id, name, payload, created_at) VALUES (%s, %s, %s, %s)",
                [
                    (run_id, signal_name(sub_id), delivery_payload(position, shape), now)
                    for sub_id, run_id, position in chosen
                ],
            )
    return [run_id for _, run_id, _ in chosen]


async def subscribe(
    conn: Conn,
    fence: Fence,
    subscription_id: str,
    filters: list[dict[str, Any]],
    step: StepRecord,
    now: float,
) -> None:
    await check_fence(conn, fence)
    await _open(conn, fence.run_id, subscription_id, filters, now)
    # Events its trigger handed the run before it listened are not lost.
    await triggers.move_inbox(conn, fence.run_id, subscription_id, filters, now)
    await upsert_step(conn, step)


async def _open(
    conn: Conn, run_id: str, subscription_id: str, filters: list[dict[str, Any]], now: float
) -> None:
    cur = await conn.execute(
        "INSERT INTO subscriptions (id, run_id, filters, created_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO NOTHING",
        (subscription_id, run_id, encode(filters), now),
    )
    if cur.rowcount == 1:
        async with conn.cursor() as many:
            await many.executemany(
                f"INSERT INTO subscription_filters ({FILTER_COLUMNS}) VALUES (%s, %s, %s, %s, %s)",
                filter_rows(subscription_id, run_id, filters),
            )


async def restore_subscriptions(conn: Conn, run_id: str, now: float) -> None:
    """Reopen what the history of a retried run left open (finishing it had dropped them)."""
    cur = await conn.execute(
        f"SELECT name, output FROM steps WHERE run_id = %s AND {SUBSCRIPTION_STEPS_WHERE} "
        "ORDER BY seq",
        (run_id,),
    )
    for subscription_id, filters in open_subscriptions(await cur.fetchall()).items():
        await _open(conn, run_id, subscription_id, filters, now)


async def unsubscribe(conn: Conn, fence: Fence, subscription_id: str, step: StepRecord) -> None:
    await check_fence(conn, fence)
    await triggers.return_to_inbox(conn, fence.run_id, subscription_id)
    await conn.execute(
        "WITH gone AS (DELETE FROM subscriptions WHERE id = %s AND run_id = %s RETURNING id) "
        "DELETE FROM subscription_filters WHERE subscription_id IN (SELECT id FROM gone)",
        (subscription_id, fence.run_id),
    )
    await upsert_step(conn, step)


async def emit(conn: Conn, fence: Fence, event: CloudEvent, step: StepRecord, now: float) -> bool:
    await check_fence(conn, fence)
    stored = (await append(conn, [event], now))[0]
    await upsert_step(conn, step)
    return stored


async def get_event(conn: Conn, source: str, event_id: str) -> StoredEvent | None:
    cur = await conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE source = %s AND id = %s", (source, event_id)
    )
    row = await cur.fetchone()
    return None if row is None else event_from_row(row)


async def list_events(conn: Conn, query: EventQuery) -> list[StoredEvent]:
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("type", "source", "subject"):
        value = getattr(query, column)
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if query.before is not None:
        clauses.append("seq < %s")
        params.append(query.before)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    cur = await conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events {where} ORDER BY seq DESC LIMIT %s",
        (*params, query.limit),
    )
    return [event_from_row(row) for row in await cur.fetchall()]


async def subscriptions_of(conn: Conn, run_id: str) -> list[Subscription]:
    cur = await conn.execute(
        "SELECT id, run_id, filters, created_at FROM subscriptions WHERE run_id = %s "
        "ORDER BY created_at, id",
        (run_id,),
    )
    return [subscription_from_row(row) for row in await cur.fetchall()]
