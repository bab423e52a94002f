"""``opsloom schedules``: list schedules, pause and resume them.

Schedules are declared with the workflows (``@app.workflow(schedule=…)``, a document's
``schedule``) and stored when a worker starts; these commands work on the store alone.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from opsloom.cli.console import DbOption, JsonOption, client, out
from opsloom.cli.identity import cli_actor
from opsloom.model.schedule import ScheduleRecord
from opsloom.services.schedule import list_schedules, set_paused

schedules_cli = typer.Typer(help="List, pause and resume schedules.", no_args_is_help=True)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat()


def schedule_json(rec: ScheduleRecord) -> dict[str, Any]:
    """The stable JSON shape of a schedule."""
    return {
        "id": rec.id,
        "workflow": rec.workflow,
        "version": rec.version,
        "kind": rec.kind,
        "spec": rec.spec,
        "timezone": rec.timezone,
        "misfire": rec.misfire,
        "paused": rec.paused,
        "next_at": _iso(rec.next_at),
        "last_at": _iso(rec.last_at),
        "last_run_id": rec.last_run_id,
    }


@schedules_cli.command("list")
def list_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every schedule with its next tick."""

    records = client(db, list_schedules)
    if as_json:
        sys.stdout.write(json.dumps([schedule_json(r) for r in records], indent=2) + "\n")
        return
    table = Table("id", "workflow", "when", "next", "state", "last run")
    for rec in records:
        when = rec.spec if rec.kind == "cron" else f"{rec.kind} {float(rec.spec):g}s"
        if rec.kind == "cron" and rec.timezone != "UTC":
            when += f" ({rec.timezone})"
        table.add_row(
            rec.id,
            f"{rec.workflow}:{rec.version}" if rec.version else rec.workflow,
            when,
            _iso(rec.next_at) or "after the last run ends",
            "paused" if rec.paused else "active",
            rec.last_run_id or "",
        )
    out.print(table)


def _change(db: str | None, schedule_id: str, as_json: bool, paused: bool) -> None:
    rec = client(db, lambda app: set_paused(app, schedule_id, paused, actor=cli_actor()))
    if as_json:
        sys.stdout.write(json.dumps(schedule_json(rec), indent=2) + "\n")
    elif paused:
        out.print(f"paused {rec.id}")
    else:
        out.print(f"resumed {rec.id}; next run at {_iso(rec.next_at)}")


@schedules_cli.command("pause")
def pause_command(
    schedule_id: Annotated[str, typer.Argument(help="Schedule id (see `schedules list`).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop a schedule from starting runs."""
    _change(db, schedule_id, as_json, paused=True)


@schedules_cli.command("resume")
def resume_command(
    schedule_id: Annotated[str, typer.Argument(help="Schedule id (see `schedules list`).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a paused schedule again from its next tick (missed ticks are not run)."""
    _change(db, schedule_id, as_json, paused=False)
