"""Schedules in the store: dialect-neutral SQL text (``?`` placeholders) and row mapping.

Each dialect runs these statements in its own mixin (``dialects/sqlite_schedules.py``,
``dialects/postgres_schedules.py``); PostgreSQL swaps the placeholders for ``%s``.
"""

from __future__ import annotations

from typing import Any

from opsloom.model.schedule import ScheduleRecord

SCHEDULE_COLUMNS = (
    "id, workflow, version, kind, spec, timezone, misfire, input, anchor, next_at, paused, "
    "last_at, last_run_id, created_at, updated_at"
)
SELECT_ONE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?"
SELECT_ALL = f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY id"
SELECT_DUE = (
    f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE paused = 0 AND next_at <= ? "
    "ORDER BY next_at LIMIT ?"
)
NEXT_AT = "SELECT min(next_at) FROM schedules WHERE paused = 0"
INSERT = (
    f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: A new definition for an existing schedule: it keeps whether it is paused and its history.
REDEFINE = (
    "UPDATE schedules SET workflow = ?, version = ?, kind = ?, spec = ?, timezone = ?, "
    "misfire = ?, input = ?, anchor = ?, next_at = ?, updated_at = ? WHERE id = ?"
)
PAUSE = "UPDATE schedules SET paused = ?, next_at = ?, updated_at = ? WHERE id = ?"
#: Guarded by the tick it fires: of several schedulers firing one tick, one moves it on.
FIRE = (
    "UPDATE schedules SET next_at = ?, last_at = ?, "
    "last_run_id = coalesce(?, last_run_id), updated_at = ? "
    "WHERE id = ? AND paused = 0 AND next_at = ?"
)
#: ``after`` schedules whose last run has ended get their next tick (``{real}``: the dialect's
#: floating point type name).
REARM_AFTER = (
    "UPDATE schedules SET next_at = (SELECT r.completed_at FROM runs r "
    "WHERE r.id = schedules.last_run_id) + CAST(spec AS {real}), updated_at = ? "
    "WHERE kind = 'after' AND paused = 0 AND next_at IS NULL AND EXISTS "
    "(SELECT 1 FROM runs r WHERE r.id = schedules.last_run_id AND r.completed_at IS NOT NULL)"
)

#: The columns that define a schedule: a change to any of them is a new definition.
DEFINITION = ("workflow", "version", "kind", "spec", "timezone", "misfire", "input")


def schedule_from_row(row: tuple[Any, ...]) -> ScheduleRecord:
    (
        id_,
        workflow,
        version,
        kind,
        spec,
        timezone,
        misfire,
        input_,
        anchor,
        next_at,
        paused,
        last_at,
        last_run_id,
        created_at,
        updated_at,
    ) = row
    return ScheduleRecord(
        id=id_,
        workflow=workflow,
        version=version,
        kind=kind,
        spec=spec,
        timezone=timezone,
        misfire=misfire,
        input=None if input_ is None else bytes(input_),
        anchor=float(anchor),
        next_at=None if next_at is None else float(next_at),
        paused=bool(paused),
        last_at=None if last_at is None else float(last_at),
        last_run_id=last_run_id,
        created_at=float(created_at),
        updated_at=float(updated_at),
    )


def insert_params(rec: ScheduleRecord, now: float) -> tuple[Any, ...]:
    return (
        rec.id,
        rec.workflow,
        rec.version,
        rec.kind,
        rec.spec,
        rec.timezone,
        rec.misfire,
        rec.input,
        rec.anchor,
        rec.next_at,
        int(rec.paused),
        rec.last_at,
        rec.last_run_id,
        now,
        now,
    )


def redefine_params(rec: ScheduleRecord, now: float) -> tuple[Any, ...]:
    return (
        rec.workflow,
        rec.version,
        rec.kind,
        rec.spec,
        rec.timezone,
        rec.misfire,
        rec.input,
        rec.anchor,
        rec.next_at,
        now,
        rec.id,
    )


def same_definition(a: ScheduleRecord, b: ScheduleRecord) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in DEFINITION)
