"""``opsloom replay``: would the current code replay the stored runs? A check before a deploy."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from opsloom.cli.console import (
    AppOption,
    DbOption,
    JsonOption,
    command_app,
    execute,
    out,
    print_json,
)
from opsloom.services.replay import ReplayReport, replay_runs


def replay_command(
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="Runs to replay (default: the newest runs).")
    ] = None,
    app_target: AppOption = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Only runs of this workflow.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many of the newest runs.")] = 100,
    since_hours: Annotated[
        float | None, typer.Option("--since-hours", help="Only runs created this recently.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds one replay may take.")] = 10.0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay stored run histories against the current code (--app) without running anything.

    Reports every run the code would fail with a NonDeterminismError (the position and the
    differing call), every run it would fail with an error the run did not have, and every
    open run whose workflow version the code no longer registers. Exits 1 when there is any,
    so it can guard a deploy in CI.
    """
    app = command_app(app_target, db)
    since = None if since_hours is None else time.time() - since_hours * 3600

    async def go() -> list[ReplayReport]:
        async with app:
            return await replay_runs(
                app, run_ids or None, workflow=workflow, limit=limit, since=since, timeout=timeout
            )

    reports = execute(go)
    failed = [r for r in reports if r.failed]
    if as_json:
        print_json({"replayed": len(reports), "failed": [r.to_dict() for r in failed]})
    else:
        table = Table("run", "workflow", "status", "result", "position", "detail")
        for report in reports:
            data = report.to_dict()
            detail = (
                f"history: {data['expected']}  code: {data['got']}"
                if data["result"] == "nondeterminism"
                else data["message"]
            )
            table.add_row(
                data["run_id"],
                f"{data['workflow']}@{data['version']}",
                data["run_status"],
                data["result"],
                "" if data["seq"] is None else str(data["seq"]),
                detail,
            )
        out.print(table)
        out.print(f"{len(reports)} run(s) replayed, {len(failed)} would fail")
    if failed:
        raise typer.Exit(1)
