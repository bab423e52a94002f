"""``opsloom events``: send a CloudEvent, list stored events, show one, export a period.

The commands open the store without a worker, like ``opsloom runs``: an event sent here wakes
runs that workers elsewhere execute. ``--json`` output is the API's stable shape.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from opsloom.cli.console import DbOption, JsonOption, client, fail, out, print_json
from opsloom.cli.identity import cli_actor
from opsloom.services.event import emit_event, export_events, show_event
from opsloom.services.event import list_events as list_stored

T = TypeVar("T")

events_cli = typer.Typer(help="Send and inspect CloudEvents.", no_args_is_help=True)


@events_cli.command("emit")
def emit(
    type: Annotated[str, typer.Option("--type", help="Event type, e.g. deploy.finished.")],
    source: Annotated[str, typer.Option("--source", help="Event source (a URI-reference).")],
    event_id: Annotated[
        str | None, typer.Option("--id", help="Event id (default: a new one).")
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Event subject.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Event data as JSON.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a CloudEvent; runs waiting for a matching event are woken."""
    event: dict[str, Any] = {"specversion": "1.0", "type": type, "source": source}
    if event_id is not None:
        event["id"] = event_id
    if subject is not None:
        event["subject"] = subject
    if data is not None:
        try:
            event["data"] = json.loads(data)
        except json.JSONDecodeError as exc:
            fail(f"--data is not valid JSON: {exc}", 2)
        event["datacontenttype"] = "application/json"
    receipt = client(db, lambda app: emit_event(app, event, actor=cli_actor()), create=True)
    if as_json:
        print_json({"id": receipt.event_id, "source": receipt.source, "stored": receipt.stored})
    elif receipt.stored:
        out.print(f"event {receipt.event_id} stored")
    else:
        out.print(f"event {receipt.event_id} from {receipt.source} was already stored (ignored)")


@events_cli.command("list")
def list_events(
    type: Annotated[str | None, typer.Option("--type", help="Only events of this type.")] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Only events from this source.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many events.", min=1)] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List stored events, newest first."""
    events = client(db, lambda app: list_stored(app, type=type, source=source, limit=limit))
    if as_json:
        print_json([stored.to_dict() for stored in events])
        return
    table = Table("seq", "received", "type", "source", "id", "subject")
    for stored in events:
        shown = stored.to_dict()
        table.add_row(
            str(stored.seq),
            shown["received_at"] or "",
            stored.event.type,
            stored.event.source,
            stored.event.id,
            stored.event.subject or "",
        )
    out.print(table)


@events_cli.command("show")
def show(
    source: Annotated[str, typer.Argument(help="The event's source.")],
    event_id: Annotated[str, typer.Argument(metavar="ID", help="The event's id.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one stored event (a CloudEvent is named by its source and id)."""
    stored = client(db, lambda app: show_event(app, source, event_id))
    if as_json:
        print_json(stored.to_dict())
        return
    shown = stored.to_dict()
    out.print(f"[bold]{stored.event.id}[/bold]  {stored.event.type}  from {stored.event.source}")
    out.print(f"seq {stored.seq}  received {shown['received_at']}")
    sys.stdout.flush()
    print_json(shown["event"])


#: The CSV columns of an export before the event's data members.
EXPORT_COLUMNS = ("received_at", "time", "type", "source", "id", "subject")


def _moment(value: str, option: str, *, end: bool) -> float:
    """A date (a whole UTC day; the end's day is included) or an ISO 8601 time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date (2026-03-31) or an ISO 8601 time", 2)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and len(value.strip()) == 10:  # a date: its whole day is in the period
        moment += timedelta(days=1)
    return moment.timestamp()


def _csv_rows(events: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, str]]]:
    """One row per event: the envelope, then each top-level member of its data (nested
    values as JSON), the columns being the union of the members in order of appearance."""
    members: dict[str, None] = {}
    rows = []
    for item in events:
        event = item["event"]
        data = event.get("data")
        row = {"received_at": item["received_at"] or ""}
        row.update({key: str(event.get(key) or "") for key in EXPORT_COLUMNS[1:]})
        if isinstance(data, dict):
            for key, value in data.items():
                members.setdefault(key, None)
                row[f"data.{key}"] = value if isinstance(value, str) else json.dumps(value)
        elif data is not None:
            members.setdefault("", None)
            row["data"] = json.dumps(data)
        rows.append(row)
    columns = [*EXPORT_COLUMNS, *(f"data.{m}" if m else "data" for m in members)]
    return columns, rows


@events_cli.command("export")
def export(
    type: Annotated[str, typer.Option("--type", help="The events' type.")],
    start: Annotated[
        str, typer.Option("--from", help="Start of the period: a UTC date or an ISO 8601 time.")
    ],
    end: Annotated[
        str,
        typer.Option("--to", help="End of the period: a date (included) or a time (excluded)."),
    ],
    source: Annotated[
        str | None, typer.Option("--source", help="Only events from this source.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Export the events of one type stored in a period, oldest first (evidence for an audit).

    JSON is a list of the stored events (``--json`` shape of ``events list``); CSV has one row
    per event with its envelope and one column per member of its data.
    """
    if fmt not in ("json", "csv"):
        fail(f"--format must be json or csv, not {fmt!r}", 2)
    since = _moment(start, "--from", end=False)
    until = _moment(end, "--to", end=True)
    found = client(
        db,
        lambda app: export_events(app, type=type, source=source, since=since, until=until),
    )
    events = [stored.to_dict() for stored in found]
    target = sys.stdout if output is None else output.open("w", encoding="utf-8", newline="")
    try:
        if fmt == "json":
            json.dump(events, target, indent=2, ensure_ascii=False)
            target.write("\n")
        else:
            columns, rows = _csv_rows(events)
            writer = csv.DictWriter(target, columns, restval="", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if output is not None:
            target.close()
    if output is not None:
        out.print(f"{len(events)} events written to {output}")
