"""``opsloom workflows``: pause and resume every run of a workflow, list paused workflows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from opsloom.cli.console import DbOption, JsonOption, client, fail, out, print_json, run_call
from opsloom.cli.identity import cli_actor
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
    burst: Annotated[int, typer.Option(help="Runs that may start at once.")] = 1,
    off: Annotated[bool, typer.Option("--off", help="Lift the limit.")] = False,
    db: DbOption = None,
) -> None:
    """Limit how many runs of a workflow start per second, for every process on the store.

    Runs started faster (an alert storm through a trigger, a burst of API calls) queue and
    start at the rate; none is refused.
    """
    if (per_second is None) == (not off):
        fail("give --per-second N, or --off to lift the limit", 2)
    client(
        db,
        lambda app: workflows.limit_rate(
            app, workflow, None if off else per_second, burst, actor=cli_actor()
        ),
    )
    out.print(
        f"workflow {workflow}: no rate limit"
        if off
        else f"workflow {workflow}: at most {per_second:g} runs a second, {burst} at once"
    )


@workflows_cli.command("limits")
def limits_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """The workflows under a rate limit."""
    found = client(db, workflows.rate_limits)
    if as_json:
        print_json(
            [{"workflow": r.workflow, "per_second": r.rate, "burst": r.burst} for r in found]
        )
        return
    table = Table("workflow", "runs per second", "burst")
    for limit in found:
        table.add_row(limit.workflow, f"{limit.rate:g}", str(limit.burst))
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
