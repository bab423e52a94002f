"""``opsloom events``: send a CloudEvent, list stored events, show one.

The commands open the store without a worker, like ``opsloom runs``: an event sent here wakes
runs that workers elsewhere execute. ``--json`` output is the API's stable shape.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from opsloom.cli.console import DbOption, JsonOption, client, fail, out, print_json
from opsloom.cli.identity import cli_actor
from opsloom.services.event import emit_event, show_event
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
