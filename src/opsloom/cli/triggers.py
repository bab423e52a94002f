"""``opsloom triggers``: the triggers that start runs from events, and the runs they opened.

Triggers are declared with the workflows (``app.trigger``, ``@app.workflow(on=…)``, a
document's ``schedule.on``) and stored when a worker starts or a document is deployed; these
commands read the store alone.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from opsloom.cli.console import DbOption, JsonOption, client, fail, out
from opsloom.model.trigger import Trigger
from opsloom.services.trigger import (
    dead_letters,
    list_triggers,
    replay_dead_letter,
    show_trigger,
)
from opsloom.store.trigger import TriggerRun

triggers_cli = typer.Typer(help="List triggers and the runs they started.", no_args_is_help=True)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat()


def _describe(trigger: Trigger) -> str:
    types = [str(f["type"]) for f in trigger.filters]
    text = types[0] if trigger.mode == "one" else f"{trigger.mode}({', '.join(types)})"
    if trigger.follow:
        text += " + follows " + ", ".join(str(f["type"]) for f in trigger.follow)
    return text


@triggers_cli.command("list")
def list_command(
    db: DbOption = None,
    as_json: JsonOption = False,
    runs: Annotated[
        int, typer.Option(help="Also show up to this many runs each trigger started.", min=0)
    ] = 0,
) -> None:
    """Every trigger: its workflow, the events it takes, its dedup key and window."""

    listed = client(db, lambda app: list_triggers(app, runs=runs))
    if as_json:
        shaped = [
            {**t.to_dict(), **({"runs": [r.to_dict() for r in rs]} if runs else {})}
            for t, rs in listed
        ]
        sys.stdout.write(json.dumps(shaped, indent=2) + "\n")
        return
    table = Table("id", "workflow", "events", "dedup key", "window", "debounce", "rate limit")
    for trigger, _ in listed:
        table.add_row(
            trigger.id,
            f"{trigger.workflow}:{trigger.version}",
            _describe(trigger),
            trigger.key or "(none)",
            f"{trigger.window:g}s",
            _debounce(trigger),
            "" if trigger.rate_limit is None else trigger.rate_limit.describe(),
        )
    out.print(table)
    for trigger, started in listed:
        _print_runs(trigger, started)


def _debounce(trigger: Trigger) -> str:
    if not trigger.debounce:
        return ""
    text = f"{trigger.debounce:g}s"
    return text if trigger.debounce_max is None else f"{text} (max {trigger.debounce_max:g}s)"


def _print_runs(trigger: Trigger, started: list[TriggerRun]) -> None:
    if not started:
        return
    detail = Table("run", "key", "event", "opened", "closed", title=f"runs of {trigger.id}")
    for rec in started:
        detail.add_row(
            rec.run_id,
            rec.key,
            f"{rec.event_source} {rec.event_id}",
            _iso(rec.opened_at) or "",
            _iso(rec.closed_at) or "open",
        )
    out.print(detail)


@triggers_cli.command("show")
def show_command(
    trigger_id: str,
    db: DbOption = None,
    as_json: JsonOption = False,
    runs: Annotated[int, typer.Option(help="How many of its latest runs to show.", min=0)] = 20,
) -> None:
    """One trigger with the runs it started (open ones hold their dedup key) and the keys
    waiting out its debounce."""

    shown = client(db, lambda app: show_trigger(app, trigger_id, runs=runs))
    trigger, started, waiting = shown.trigger, shown.runs, shown.debounced
    if trigger is None:
        fail(f"no trigger {trigger_id!r}")
    if as_json:
        shaped = {
            **trigger.to_dict(),
            "runs": [r.to_dict() for r in started],
            "debounced": [d.to_dict() for d in waiting],
        }
        sys.stdout.write(json.dumps(shaped, indent=2) + "\n")
        return
    out.print(f"[bold]{trigger.id}[/bold]  {trigger.workflow}:{trigger.version}")
    out.print(f"events: {_describe(trigger)}")
    out.print(f"dedup key: {trigger.key or '(none)'}  window: {trigger.window:g}s")
    if trigger.debounce:
        out.print(f"debounce: {_debounce(trigger)}")
    if trigger.rate_limit is not None:
        out.print(f"rate limit: {trigger.rate_limit.describe()}")
    _print_runs(trigger, started)
    if waiting:
        table = Table("key", "latest event", "events", "first", "starts at", title="debounced")
        for held in waiting:
            shaped_row = held.to_dict()
            table.add_row(
                held.key or "(no key)",
                f"{held.event_source} {held.event_id}",
                str(held.events),
                shaped_row["first_at"],
                shaped_row["due_at"],
            )
        out.print(table)


@triggers_cli.command("dead-letters")
def dead_letters_command(
    db: DbOption = None,
    as_json: JsonOption = False,
    all_: Annotated[bool, typer.Option("--all", help="Include replayed ones.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 50,
) -> None:
    """Events a trigger matched but could not start a run for, with the reason."""
    letters = client(db, lambda app: dead_letters(app, pending=not all_, limit=limit))
    if as_json:
        sys.stdout.write(json.dumps([x.to_dict() for x in letters], indent=2) + "\n")
        return
    table = Table("id", "trigger", "event", "reason", "detail", "when", "replayed")
    for x in letters:
        table.add_row(
            str(x.id),
            x.trigger_id,
            f"{x.event_source} {x.event_id}",
            x.reason,
            x.detail,
            _iso(x.created_at) or "",
            x.run_id or ("yes" if x.replayed_at else ""),
        )
    out.print(table)


@triggers_cli.command("replay")
def replay_command(letter_id: int, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Run a dead letter's trigger on its event again, after the trigger was fixed."""
    letter = client(db, lambda app: replay_dead_letter(app, letter_id))
    if as_json:
        sys.stdout.write(json.dumps(letter.to_dict(), indent=2) + "\n")
        return
    out.print(f"dead letter {letter.id} replayed: run {letter.run_id or '(none started)'}")
