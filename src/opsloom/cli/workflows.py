"""``opsloom workflows``: pause and resume every run of a workflow, list paused workflows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from opsloom.cli.console import DbOption, JsonOption, client, out, print_json, run_call
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
