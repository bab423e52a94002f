"""Triggers in the store: SQL, row mapping, what a trigger does with an event, the operations.

Triggers start runs from events inside ``append_events``' transaction (the intake, see
:mod:`opsloom.store.intake`): an event of a dedup key whose run is open goes to that run's
inbox (signal ``events:inbox``) instead. The intake inserts signals and runs but locks no
``jobs`` rows: waking the runs it hands events to is left to the caller, which locks them in
run-id order with the others.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsloom.codec import decode, encode
from opsloom.model.cloudevent import CloudEvent, parse_event
from opsloom.model.matching import first_match, signal_name
from opsloom.model.ratelimit import RateLimit
from opsloom.model.run import NewRun
from opsloom.model.tracecontext import TraceParent, trace_id_of
from opsloom.model.trigger import (
    INBOX,
    Trigger,
    _Failed,
    correlate_from_json,
    correlate_json,
)
from opsloom.store.job import admission, insert_run, nudge
from opsloom.store.tx import WORK, Row, Transactions, Tx

log = logging.getLogger("opsloom.triggers")


def traceparent_of(event: CloudEvent) -> str | None:
    """The event's ``traceparent`` (CloudEvents distributed tracing extension), if valid."""
    value = event.extensions.get("traceparent")
    return value if isinstance(value, str) and TraceParent.parse(value) is not None else None


def note(
    trigger: Trigger, decision: str, key: str | None, event: CloudEvent, run_id: str | None = None
) -> None:
    """Log one structured line for what ``trigger`` did with ``event`` during intake.

    ``decision``: ``matched`` (``run_id`` starts), ``deduplicated`` (the open run ``run_id``
    of the key gets it), ``suppressed`` (flap window), ``followed`` (a follow event with no
    open run), ``debounced`` (held as its key's latest event) or ``throttled`` (a rate limit
    that drops starts refused it). Logged inside the intake's transaction, so a batch that is
    retried may log a decision twice; it is never left unlogged.
    """
    if not log.isEnabledFor(logging.INFO):
        return
    traceparent = event.extensions.get("traceparent")
    log.info(
        "trigger %s %s event %s from %s",
        trigger.id,
        decision,
        event.id,
        event.source,
        extra={
            "event": f"trigger_{decision}",
            "trigger": trigger.id,
            "workflow": trigger.workflow,
            "key": key,
            "event_source": event.source,
            "event_id": event.id,
            "run_id": run_id,
            "trace_id": trace_id_of(traceparent) if isinstance(traceparent, str) else None,
        },
    )


TRIGGER_COLUMNS = (
    "id, workflow, version, mode, filters, correlate, follow, dedup_key, window_seconds, input, "
    "priority, concurrency_key, concurrency_limit, timeout, created_at, updated_at, "
    "concurrency_by, debounce, debounce_max, rate_limit"
)
SELECT_ONE = f"SELECT {TRIGGER_COLUMNS} FROM triggers WHERE id = ?"
SELECT_ALL = f"SELECT {TRIGGER_COLUMNS} FROM triggers ORDER BY id"
INSERT = f"INSERT INTO triggers ({TRIGGER_COLUMNS}) VALUES ({', '.join(['?'] * 20)})"
REDEFINE = (
    "UPDATE triggers SET workflow = ?, version = ?, mode = ?, filters = ?, correlate = ?, "
    "follow = ?, dedup_key = ?, window_seconds = ?, input = ?, priority = ?, concurrency_key = ?, "
    "concurrency_limit = ?, timeout = ?, concurrency_by = ?, debounce = ?, debounce_max = ?, "
    "rate_limit = ?, updated_at = ? WHERE id = ?"
)
DELETE = "DELETE FROM triggers WHERE id = ?"
DELETE_FILTERS = "DELETE FROM trigger_filters WHERE trigger_id = ?"
DELETE_STATES = "DELETE FROM trigger_states WHERE trigger_id = ?"
INSERT_FILTER = (
    "INSERT INTO trigger_filters (trigger_id, position, type, filter) VALUES (?, ?, ?, ?)"
)
#: Filters of every trigger for one event type (the intake's index lookup), in a stable order
#: so that two reads of unchanged filters give equal rows.
FILTERS_OF_TYPE = (
    "SELECT trigger_id, position, filter FROM trigger_filters WHERE type = ? "
    "ORDER BY trigger_id, position"
)

OPEN_RUN = "SELECT run_id FROM trigger_runs WHERE trigger_id = ? AND key = ? AND closed_at IS NULL"
LAST_CLOSED = "SELECT max(closed_at) FROM trigger_runs WHERE trigger_id = ? AND key = ?"
#: Opens the run of a key unless one is open: of two intakes racing, one row is written.
OPEN = (
    "INSERT INTO trigger_runs (trigger_id, key, run_id, event_source, event_id, opened_at) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (trigger_id, key) WHERE closed_at IS NULL DO NOTHING"
)
CLOSE = "UPDATE trigger_runs SET closed_at = ? WHERE run_id = ? AND closed_at IS NULL"
MARK_RUN = "UPDATE runs SET event_source = ?, event_id = ? WHERE id = ?"
INSERT_INBOX = "INSERT INTO signals (run_id, name, payload, created_at) VALUES (?, ?, ?, ?)"

#: ``all`` accumulation: the first event per filter position counts.
KEEP_STATE = (
    "INSERT INTO trigger_states (trigger_id, correlation, position, event, created_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (trigger_id, correlation, position) DO NOTHING"
)
READ_STATE = (
    "SELECT position, event FROM trigger_states WHERE trigger_id = ? AND correlation = ? "
    "ORDER BY position"
)
CLEAR_STATE = "DELETE FROM trigger_states WHERE trigger_id = ? AND correlation = ?"

TRIGGER_RUN_COLUMNS = "trigger_id, key, run_id, event_source, event_id, opened_at, closed_at"
RUNS_OF = (
    f"SELECT {TRIGGER_RUN_COLUMNS} FROM trigger_runs WHERE trigger_id = ? "
    "ORDER BY opened_at DESC, run_id LIMIT ?"
)
INBOX_OF = (
    "SELECT id, payload FROM signals WHERE run_id = ? AND name = ? AND consumed_seq IS NULL "
    "ORDER BY id"
)
MOVE_SIGNAL = "UPDATE signals SET name = ?, payload = ? WHERE id = ?"
#: The payload member that marks a delivery moved from the inbox (its inbox filter index).
FROM_INBOX = "inbox"


def delivery_payload(position: int, event: dict[str, Any]) -> bytes:
    """The payload of the signal that hands ``event`` to a subscribed run (or an inbox)."""
    return encode({"filter": position, "event": event})


def moved_payload(position: int, inbox_position: int, event: dict[str, Any]) -> bytes:
    """An inbox event handed to a subscription (filter ``position``), able to go back."""
    return encode({"filter": position, "event": event, FROM_INBOX: inbox_position})


@dataclass(frozen=True, slots=True)
class TriggerRun:
    """A run a trigger started for a dedup key; open until the run ends."""

    trigger_id: str
    key: str
    run_id: str
    event_source: str
    event_id: str
    opened_at: float
    closed_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape shown by the CLI and the API."""
        return {
            "run_id": self.run_id,
            "key": self.key,
            "event_source": self.event_source,
            "event_id": self.event_id,
            "opened_at": _iso(self.opened_at),
            "closed_at": None if self.closed_at is None else _iso(self.closed_at),
        }


@dataclass(frozen=True, slots=True)
class Debounced:
    """A debounced key of a trigger: the latest of its ``events`` starts a run at ``due_at``."""

    key: str
    event_source: str
    event_id: str
    events: int
    first_at: float
    due_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "event_source": self.event_source,
            "event_id": self.event_id,
            "events": self.events,
            "first_at": _iso(self.first_at),
            "due_at": _iso(self.due_at),
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def trigger_from_row(row: Row) -> Trigger:
    """A trigger from a row selected with ``TRIGGER_COLUMNS``."""
    return Trigger(
        id=row[0],
        workflow=row[1],
        version=row[2],
        mode=row[3],
        filters=decode(row[4]),
        correlate=correlate_from_json(decode(row[5])),
        follow=decode(row[6]) or [],
        key=row[7],
        window=float(row[8]),
        input=row[9],
        priority=int(row[10]),
        concurrency_key=row[11],
        concurrency_limit=row[12],
        timeout=None if row[13] is None else float(row[13]),
        created_at=float(row[14]),
        updated_at=float(row[15]),
        concurrency_by=row[16],
        debounce=float(row[17]),
        debounce_max=None if row[18] is None else float(row[18]),
        rate_limit=None if row[19] is None else RateLimit.from_dict(decode(row[19])),
    )


def _definition_params(trigger: Trigger) -> tuple[Any, ...]:
    return (
        trigger.workflow,
        trigger.version,
        trigger.mode,
        encode(trigger.filters),
        encode(correlate_json(trigger.correlate)),
        encode(trigger.follow) if trigger.follow else None,
        trigger.key,
        trigger.window,
        trigger.input,
        trigger.priority,
        trigger.concurrency_key,
        trigger.concurrency_limit,
        trigger.timeout,
    )


def _later_params(trigger: Trigger) -> tuple[Any, ...]:
    """The columns added after the first version of the table, in ``TRIGGER_COLUMNS`` order."""
    limit = trigger.rate_limit
    return (
        trigger.concurrency_by,
        trigger.debounce,
        trigger.debounce_max,
        None if limit is None else encode(limit.to_dict()),
    )


def insert_params(trigger: Trigger, now: float) -> tuple[Any, ...]:
    return (trigger.id, *_definition_params(trigger), now, now, *_later_params(trigger))


def redefine_params(trigger: Trigger, now: float) -> tuple[Any, ...]:
    return (*_definition_params(trigger), *_later_params(trigger), now, trigger.id)


def filter_params(trigger: Trigger) -> list[tuple[Any, ...]]:
    """One row per filter, keyed by the event type it matches; ``follow`` filters come last."""
    return [
        (trigger.id, position, str(flt["type"]), encode(flt))
        for position, flt in enumerate(trigger.filters + trigger.follow)
    ]


def trigger_run_from_row(row: Row) -> TriggerRun:
    return TriggerRun(
        trigger_id=row[0],
        key=row[1],
        run_id=row[2],
        event_source=row[3],
        event_id=row[4],
        opened_at=float(row[5]),
        closed_at=None if row[6] is None else float(row[6]),
    )


@functools.lru_cache(maxsize=256)
def filter_of(blob: bytes | str) -> dict[str, Any]:
    """A stored filter, decoded once (only read: shared by every intake of its type)."""
    flt: dict[str, Any] = decode(blob)
    return flt


@functools.lru_cache(maxsize=256)
def _cached_trigger(row: Row) -> Trigger:
    return trigger_from_row(row)


def known_trigger(row: Row) -> Trigger:
    """The trigger of a row, built once per definition: the same row (its ``updated_at``
    included) gives the same frozen trigger, without decoding and checking it again."""
    try:
        return _cached_trigger(tuple(row))
    except TypeError:  # a column the driver gives as an unhashable value
        return trigger_from_row(row)


@dataclass(frozen=True, slots=True)
class Ready:
    """What a trigger makes of an event from the event and its definition alone: the dedup
    key, and the run it would start. Pure, so it is worked out before the transaction; the
    transaction then decides only what depends on the store (an open run of the key, the
    flap window, rate limits) and writes.

    ``run`` is ``None`` when no run is built ahead: a failed key, a ``follow`` filter, or a
    trigger whose run depends on stored state (``all`` collects its events first, debounce
    keeps the latest event).
    """

    key: str | _Failed | None
    run: NewRun | _Failed | None = None
    #: The rate limit key of the start, when the trigger has a limit.
    limit_key: str | None = None


def ready_of(
    trigger: Trigger, position: int, event: CloudEvent, shape: dict[str, Any], now: float
) -> Ready:
    """The :class:`Ready` of ``event`` (``shape``: its structured form) for ``trigger``."""
    key = trigger.key_of(position, shape)
    if (
        isinstance(key, _Failed)
        or trigger.follows(position)
        or trigger.mode == "all"
        or trigger.debounce
    ):
        return Ready(key)
    limit = trigger.rate_limit
    return Ready(
        key,
        _run_of(trigger, key, event, shape, now),
        None if limit is None else limit.key_of(shape),
    )


def _run_of(
    trigger: Trigger, key: str | None, event: CloudEvent, value: Any, now: float
) -> NewRun | _Failed:
    """The run ``trigger`` starts for ``event`` with default input ``value``, or why not."""
    made = trigger.run_input(value)
    if isinstance(made, _Failed):
        return made
    blob, concurrency_key = made
    run_id = trigger.run_id(key, event.source, event.id)
    return trigger.new_run(run_id, blob, now, traceparent_of(event), concurrency_key)


async def fire(
    tx: Tx,
    trigger: Trigger,
    position: int,
    event: CloudEvent,
    shape: dict[str, Any],
    delivered: Collection[str],
    now: float,
    ready: Ready | None = None,
) -> list[str]:
    """Apply ``trigger`` (its filter at ``position`` matched) to a new event; the open runs
    to wake. ``ready``: worked out before the transaction, else here."""
    if ready is None:
        ready = ready_of(trigger, position, event, shape, now)
    key = ready.key
    if isinstance(key, _Failed):
        if key.reason:
            await dead_letter(tx, trigger, event, key.reason, now)
        return []
    if key is not None:
        row = await tx.one(OPEN_RUN, (trigger.id, key))
        if row is not None:
            note(trigger, "deduplicated", key, event, row[0])
            return await _to_inbox(tx, row[0], position, shape, delivered, now)
    if trigger.follows(position):
        note(trigger, "followed", key, event)
        return []  # a follow event only reaches an open run
    if key is not None and trigger.window > 0:
        last = await tx.one(LAST_CLOSED, (trigger.id, key))
        if last is not None and last[0] is not None and now - float(last[0]) < trigger.window:
            note(trigger, "suppressed", key, event)
            return []  # flap suppression: stored, starts nothing
    match = _Match(trigger, position, key, event, shape, ready)
    if trigger.debounce:
        await _hold_back(tx, match, now)
        return []
    return await _start(tx, match, delivered, now)


@dataclass(frozen=True, slots=True)
class _Match:
    """An event a trigger's filter at ``position`` matched, with its dedup key."""

    trigger: Trigger
    position: int
    key: str | None
    event: CloudEvent
    shape: dict[str, Any]
    ready: Ready


async def _start(tx: Tx, match: _Match, delivered: Collection[str], now: float) -> list[str]:
    """Start the run of an event that no open run of its key takes (collecting ``all``
    events first); the runs to wake, when the key turned out to be open after all."""
    trigger, position, key, event, shape = (
        match.trigger,
        match.position,
        match.key,
        match.event,
        match.shape,
    )
    new, limit_key = match.ready.run, match.ready.limit_key
    if new is None:  # not built ahead: built from what the store holds
        value: Any = shape
        if trigger.mode == "all":
            correlation = trigger.correlation_of(position, shape)
            if correlation is None:
                return []
            # Two intakes adding the last two events of one correlation at once must see
            # each other's: they take turns on it until the first commits.
            await tx.lock_key(f"trigger:{trigger.id}:{correlation}")
            await tx.execute(KEEP_STATE, (trigger.id, correlation, position, encode(shape), now))
            rows = await tx.all(READ_STATE, (trigger.id, correlation))
            if len(rows) < len(trigger.filters):
                return []
            await tx.execute(CLEAR_STATE, (trigger.id, correlation))
            value = {"events": [decode(blob) for _, blob in rows]}
        new = _run_of(trigger, key, event, value, now)
    if isinstance(new, _Failed):
        await dead_letter(tx, trigger, event, new.reason, now)
        return []
    run_id = new.id
    limit = trigger.rate_limit
    slots = []
    if limit is not None:
        slots = [(f"trigger:{trigger.id}", limit_key or limit.key_of(shape), limit)]
    admitted = await admission(tx, new, now, slots)
    if admitted is None:
        note(trigger, "throttled", key, event)
        return []  # a rate limit that drops: the event is stored and starts nothing
    # Opening a key waits for a concurrent intake that opened it; then writes nothing.
    opened = (trigger.id, key, run_id, event.source, event.id, now)
    if key is not None and await tx.execute(OPEN, opened) != 1:
        row = await tx.one(OPEN_RUN, (trigger.id, key))
        if row is None or row[0] == run_id:
            return []
        note(trigger, "deduplicated", key, event, row[0])
        return await _to_inbox(tx, row[0], position, shape, delivered, now)
    if await insert_run(tx, new, now, admitted=admitted):
        await tx.execute(MARK_RUN, (event.source, event.id, run_id))
        note(trigger, "matched", key, event, run_id)
    return []


#: A debounced key keeps its latest event; each event pushes the start back, up to the cap.
_HOLD_BACK = (
    "INSERT INTO trigger_debounces (trigger_id, key, position, event, event_source, event_id, "
    "events, first_at, due_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) "
    "ON CONFLICT (trigger_id, key) DO UPDATE SET position = excluded.position, "
    "event = excluded.event, event_source = excluded.event_source, "
    "event_id = excluded.event_id, events = trigger_debounces.events + 1, "
    "due_at = CASE WHEN excluded.due_at < trigger_debounces.first_at + ? "
    "THEN excluded.due_at ELSE trigger_debounces.first_at + ? END"
)
#: No cap on a debounce: a wait this long is never reached.
_UNCAPPED = 1e15
_DUE = (
    "SELECT trigger_id, key, position, event, events FROM trigger_debounces WHERE due_at <= ? "
    "ORDER BY due_at, trigger_id, key LIMIT ?"
)
_DROP_HELD = "DELETE FROM trigger_debounces WHERE trigger_id = ? AND key = ?"


async def _hold_back(tx: Tx, match: _Match, now: float) -> None:
    """Keep the event as its key's latest, due ``debounce`` seconds from now (capped)."""
    trigger, key, event = match.trigger, match.key, match.event
    cap = _UNCAPPED if trigger.debounce_max is None else trigger.debounce_max
    await tx.execute(
        _HOLD_BACK,
        (
            trigger.id,
            key or "",
            match.position,
            encode(match.shape),
            event.source,
            event.id,
            now,
            now + trigger.debounce,
            cap,
            cap,
        ),
    )
    note(trigger, "debounced", key, event)


async def fire_debounced(tx: Tx, now: float, limit: int) -> tuple[int, list[str]]:
    """Start the runs of debounced keys that are due, each with its latest event; how many
    keys were due, and the open runs that were handed the event instead (to wake)."""
    rows = await tx.all(_DUE + tx.lock("FOR UPDATE SKIP LOCKED"), (now, limit))
    woken: list[str] = []
    for trigger_id, held_key, position, blob, count in rows:
        await tx.execute(_DROP_HELD, (trigger_id, held_key))
        row = await tx.one(SELECT_ONE, (trigger_id,))
        shape = decode(blob)
        if row is None:
            continue  # the trigger is gone
        trigger = trigger_from_row(row)
        if position >= len(trigger.filters):
            continue  # redefined meanwhile: its filters are not those the event matched
        event = parse_event(shape)
        key = trigger.key_of(position, shape)
        if isinstance(key, _Failed):
            if key.reason:
                await dead_letter(tx, trigger, event, key.reason, now)
            continue
        log.info(
            "trigger %s: %d event(s) of key %r debounced into one",
            trigger.id,
            count,
            key,
            extra={"event": "trigger_debounce_due", "trigger": trigger.id, "events": count},
        )
        if key is not None:
            open_run = await tx.one(OPEN_RUN, (trigger.id, key))
            if open_run is not None:
                note(trigger, "deduplicated", key, event, open_run[0])
                woken.extend(await _to_inbox(tx, open_run[0], position, shape, (), now))
                continue
        match = _Match(trigger, position, key, event, shape, Ready(key))
        woken.extend(await _start(tx, match, (), now))
    return len(rows), woken


_DEAD_LETTER = (
    "INSERT INTO dead_letters (trigger_id, workflow, event_source, event_id, reason, detail, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


async def dead_letter(tx: Tx, trigger: Trigger, event: CloudEvent, detail: str, now: float) -> None:
    """Keep an event that ``trigger`` matched but could not start a run for, with why."""
    reason = "input" if detail.startswith("input") or "input built" in detail else "key"
    await tx.execute(
        _DEAD_LETTER,
        (trigger.id, trigger.workflow, event.source, event.id, reason, detail[:2000], now),
    )
    note(trigger, "dead_lettered", None, event)


async def _to_inbox(
    tx: Tx,
    run_id: str,
    position: int,
    shape: dict[str, Any],
    delivered: Collection[str],
    now: float,
) -> list[str]:
    if run_id in delivered:
        return []
    await tx.execute(INSERT_INBOX, (run_id, INBOX, delivery_payload(position, shape), now))
    return [run_id]


async def move_inbox(
    tx: Tx, run_id: str, subscription_id: str, filters: list[dict[str, Any]], now: float
) -> None:
    """Hand the run's unconsumed inbox events that match a new subscription to it, in order.

    The signals keep their ids, so the subscriber takes them oldest first, before any event
    delivered live later. A run executing now is nudged: it parks and comes back with them.
    """
    moved = False
    for signal_id, payload in await tx.all(INBOX_OF, (run_id, INBOX)):
        delivery = decode(payload) or {}
        event = delivery.get("event") or {}
        position = first_match(filters, event)
        if position is not None:
            blob = moved_payload(position, int(delivery.get("filter", 0)), event)
            await tx.execute(MOVE_SIGNAL, (signal_name(subscription_id), blob, signal_id))
            moved = True
    if moved:
        await nudge(tx, [run_id], now)


async def return_to_inbox(tx: Tx, run_id: str, subscription_id: str) -> None:
    """A closed subscription gives the inbox events it did not take back to the inbox.

    ``ctx.wait_for_event`` subscribes, takes one event and unsubscribes: the other inbox
    events it was handed wait for the next subscription that matches them.
    """
    for signal_id, payload in await tx.all(INBOX_OF, (run_id, signal_name(subscription_id))):
        delivery = decode(payload) or {}
        if FROM_INBOX in delivery:
            blob = delivery_payload(int(delivery[FROM_INBOX]), delivery.get("event") or {})
            await tx.execute(MOVE_SIGNAL, (INBOX, blob, signal_id))


class TriggerOps(Transactions):
    """The trigger operations of :class:`~opsloom.store.base.Store`."""

    async def save_trigger(self, trigger: Trigger, now: float) -> Trigger:
        async def save(tx: Tx) -> Trigger:
            row = await tx.one(SELECT_ONE, (trigger.id,))
            if row is None:
                await tx.execute(INSERT, insert_params(trigger, now))
            else:
                old = trigger_from_row(row)
                if old.definition() == trigger.definition():
                    return old
                await tx.execute(REDEFINE, redefine_params(trigger, now))
                await tx.execute(DELETE_FILTERS, (trigger.id,))
                # Half-collected 'all' events were gathered under the old filters.
                await tx.execute(DELETE_STATES, (trigger.id,))
            await tx.executemany(INSERT_FILTER, filter_params(trigger))
            saved = await tx.one(SELECT_ONE, (trigger.id,))
            assert saved is not None
            return trigger_from_row(saved)

        return await self.write(save)

    async def get_trigger(self, trigger_id: str) -> Trigger | None:
        row = await self.read(lambda tx: tx.one(SELECT_ONE, (trigger_id,)))
        return None if row is None else trigger_from_row(row)

    async def list_triggers(self) -> list[Trigger]:
        return [trigger_from_row(row) for row in await self.read(lambda tx: tx.all(SELECT_ALL))]

    async def delete_trigger(self, trigger_id: str) -> bool:
        async def delete(tx: Tx) -> bool:
            await tx.execute(DELETE_FILTERS, (trigger_id,))
            await tx.execute(DELETE_STATES, (trigger_id,))
            await tx.execute("DELETE FROM trigger_debounces WHERE trigger_id = ?", (trigger_id,))
            return await tx.execute(DELETE, (trigger_id,)) > 0

        return await self.write(delete)

    async def trigger_runs(self, trigger_id: str, limit: int = 50) -> list[TriggerRun]:
        rows = await self.read(lambda tx: tx.all(RUNS_OF, (trigger_id, limit)))
        return [trigger_run_from_row(row) for row in rows]

    async def fire_debounced(self, now: float, limit: int = 100) -> int:
        async def fire(tx: Tx) -> int:
            due, woken = await fire_debounced(tx, now, limit)
            await nudge(tx, sorted(set(woken)), now)
            return due

        return await self.write(fire, WORK)

    async def next_debounce_at(self) -> float | None:
        row = await self.read(lambda tx: tx.one("SELECT min(due_at) FROM trigger_debounces"))
        return None if row is None or row[0] is None else float(row[0])

    async def debounced(self, trigger_id: str) -> list[Debounced]:
        rows = await self.read(
            lambda tx: tx.all(
                "SELECT key, event_source, event_id, events, first_at, due_at "
                "FROM trigger_debounces WHERE trigger_id = ? ORDER BY due_at, key",
                (trigger_id,),
            )
        )
        return [Debounced(str(k), s, i, int(n), float(f), float(d)) for k, s, i, n, f, d in rows]
