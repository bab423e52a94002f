"""``opsloom workflows``: pause and resume every run of a workflow, list paused workflows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from opsloom.cli.console import DbOption, JsonOption, client, fail, out, print_json, run_call
from opsloom.cli.identity import cli_actor
from opsloom.errors import InputError
from opsloom.model.ratelimit import RateLimit
from opsloom.services import workflow as workflows

workflows_cli = typer.Typer(help="Pause and resume every run of a workflow.", no_args_is_help=True)

WorkflowArg = Annotated[str, typer.Argument(help="Workflow name (namespace/name for documents).")]


@workflows_cli.command("pause")
def pause_command(workflow: WorkflowArg, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Pause every open run of a workflow; its new runs queue, paused, until it is resumed.

    Running steps finish first; paused runs hold no worker slot, and their timers and signals
    wait for them.
    """
    ids = run_call(
        db,
        lambda app: workflows.pause_workflow(app, workflow, actor=cli_actor()),
        lambda server: server.pause_workflow(workflow),
    )
    if as_json:
        print_json({"workflow": workflow, "runs": ids})
    else:
        out.print(f"workflow {workflow} paused ({len(ids)} open run(s) paused)")


@workflows_cli.command("resume")
def resume_command(workflow: WorkflowArg, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Resume a paused workflow and the runs paused with it (not those paused on their own)."""
    ids = run_call(
        db,
        lambda app: workflows.resume_workflow(app, workflow, actor=cli_actor()),
        lambda server: server.resume_workflow(workflow),
    )
    if as_json:
        print_json({"workflow": workflow, "runs": ids})
    else:
        out.print(f"workflow {workflow} resumed ({len(ids)} run(s) resumed)")


@workflows_cli.command("limit")
def limit_command(
    workflow: WorkflowArg,
    per_second: Annotated[
        float | None,
        typer.Option("--per-second", help="At most this many runs start per second."),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option("--rate", help='The same as N per period: "10/minute", "3/30" (seconds).'),
    ] = None,
    burst: Annotated[int, typer.Option(help="Runs that may start at once.")] = 1,
    key: Annotated[
        str | None,
        typer.Option(help="Limit per key: a jq expression over the run input (.service)."),
    ] = None,
    overflow: Annotated[
        str, typer.Option(help="Past the limit: queue the run, or drop (refuse) the start.")
    ] = "queue",
    off: Annotated[bool, typer.Option("--off", help="Lift the limit.")] = False,
    db: DbOption = None,
) -> None:
    """Limit how many runs of a workflow start per second, for every process on the store.

    Runs started faster (an alert storm through a trigger, a burst of API calls) queue and
    start at the rate; with --overflow drop they are refused instead (a trigger's event then
    starts nothing). A limit declared with the workflow replaces this one when a worker
    starts with a different declaration.
    """
    if sum(x is not None for x in (per_second, rate)) + off != 1:
        fail("give --per-second N or --rate N/period, or --off to lift the limit", 2)
    limit: RateLimit | None = None
    if not off:
        try:
            per = RateLimit.parse(rate, "--rate").rate if rate is not None else per_second
            fields = {"limit": per, "burst": burst, "key": key, "overflow": overflow}
            limit = RateLimit.parse(fields, "the limit")
        except InputError as exc:
            fail(str(exc), 2)
    client(db, lambda app: workflows.limit_rate(app, workflow, limit, actor=cli_actor()))
    out.print(
        f"workflow {workflow}: no rate limit"
        if limit is None
        else f"workflow {workflow}: at most {limit.describe()}"
    )


@workflows_cli.command("limits")
def limits_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """The workflows under a rate limit."""
    found = client(db, workflows.rate_limits)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    table = Table("workflow", "runs per second", "burst", "per key", "overflow", "declared")
    for limit in found:
        table.add_row(
            limit.workflow,
            f"{limit.rate:g}",
            str(limit.burst),
            limit.limit.key or "",
            limit.limit.overflow,
            "yes" if limit.declared else "",
        )
    out.print(table)


@workflows_cli.command("paused")
def paused_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """The paused workflows."""
    found = client(db, workflows.paused_workflows)
    rows = [
        {
            "workflow": pause.workflow,
            "paused_at": datetime.fromtimestamp(pause.paused_at, tz=UTC).isoformat(),
            "paused_by": pause.paused_by,
        }
        for pause in found
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("workflow", "paused at", "by")
    for row in rows:
        table.add_row(row["workflow"], row["paused_at"], row["paused_by"] or "")
    out.print(table)
