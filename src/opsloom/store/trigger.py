"""Triggers in the store: dialect-neutral SQL text (``?`` placeholders) and row mapping.

Each dialect runs these statements in its own module (``dialects/sqlite_triggers.py``,
``dialects/postgres_triggers.py``); PostgreSQL swaps the placeholders for ``%s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsloom.codec import decode, encode
from opsloom.model.trigger import Trigger, correlate_from_json, correlate_json

TRIGGER_COLUMNS = (
    "id, workflow, version, mode, filters, correlate, follow, dedup_key, window_seconds, input, "
    "priority, concurrency_key, concurrency_limit, timeout, created_at, updated_at"
)
SELECT_ONE = f"SELECT {TRIGGER_COLUMNS} FROM triggers WHERE id = ?"
SELECT_ALL = f"SELECT {TRIGGER_COLUMNS} FROM triggers ORDER BY id"
INSERT = f"INSERT INTO triggers ({TRIGGER_COLUMNS}) VALUES ({', '.join(['?'] * 16)})"
REDEFINE = (
    "UPDATE triggers SET workflow = ?, version = ?, mode = ?, filters = ?, correlate = ?, "
    "follow = ?, dedup_key = ?, window_seconds = ?, input = ?, priority = ?, concurrency_key = ?, "
    "concurrency_limit = ?, timeout = ?, updated_at = ? WHERE id = ?"
)
DELETE = "DELETE FROM triggers WHERE id = ?"
DELETE_FILTERS = "DELETE FROM trigger_filters WHERE trigger_id = ?"
DELETE_STATES = "DELETE FROM trigger_states WHERE trigger_id = ?"
INSERT_FILTER = (
    "INSERT INTO trigger_filters (trigger_id, position, type, filter) VALUES (?, ?, ?, ?)"
)
#: Filters of every trigger for one event type (the intake's index lookup).
FILTERS_OF_TYPE = "SELECT trigger_id, position, filter FROM trigger_filters WHERE type = ?"

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


def trigger_from_row(row: Sequence[Any]) -> Trigger:
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


def insert_params(trigger: Trigger, now: float) -> tuple[Any, ...]:
    return (trigger.id, *_definition_params(trigger), now, now)


def redefine_params(trigger: Trigger, now: float) -> tuple[Any, ...]:
    return (*_definition_params(trigger), now, trigger.id)


def filter_params(trigger: Trigger) -> list[tuple[Any, ...]]:
    """One row per filter, keyed by the event type it matches; ``follow`` filters come last."""
    return [
        (trigger.id, position, str(flt["type"]), encode(flt))
        for position, flt in enumerate(trigger.filters + trigger.follow)
    ]


def trigger_run_from_row(row: Sequence[Any]) -> TriggerRun:
    return TriggerRun(
        trigger_id=row[0],
        key=row[1],
        run_id=row[2],
        event_source=row[3],
        event_id=row[4],
        opened_at=float(row[5]),
        closed_at=None if row[6] is None else float(row[6]),
    )
