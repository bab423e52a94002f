"""``opsloom approvals``: the approvals inbox from a terminal.

The CLI works on the store directly, as the local operator acting for a user (``--as``): the
user's rights are checked as for any decision (assigned to them or their groups, never their
own request), and the audit log records the actor as ``cli:<os user> as <user>``.

Exit status: 0 done, 1 refused (not an approver of the task, already decided, closed),
2 no such request, task or user.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from opsloom.app import App
from opsloom.approvals.service import Approvals
from opsloom.approvals.spec import ApprovalNotFoundError
from opsloom.cli.console import DbOption, JsonOption, client, fail, out, print_json
from opsloom.identity.access import Principal, UnknownUserError

approvals_cli = typer.Typer(
    help="List, decide, question and delegate approval tasks.", no_args_is_help=True
)

T = TypeVar("T")

AsOption = Annotated[str, typer.Option("--as", help="The opsloom user you act for.")]
TaskArgument = Annotated[str, typer.Argument(help="Task id (<request id>.<n>, see `list`).")]


def _via() -> str:
    return f"cli:{getpass.getuser()}"


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def _call(db: str | None, call: Callable[[Approvals, App], Awaitable[T]]) -> T:
    async def go(app: App) -> T:
        service = app.approvals
        try:
            return await call(service, app)
        except (ApprovalNotFoundError, UnknownUserError) as exc:
            fail(str(exc), 2)

    return client(db, go)


async def _principal(service: Approvals, user: str) -> Principal:
    return await service.identity.principal(user)


def _print_request(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    out.print(f"[bold]{view['title']}[/bold]  ({view['id']})", highlight=False)
    out.print(
        f"requested by {view['requester']} at {_iso(view['created_at'])}; "
        f"risk {view['risk'] or '-'}, impact {view['impact'] or '-'}",
        highlight=False,
    )
    status = view["status"]
    if view["decided_by"]:
        status += f" by {view['decided_by']}"
    if view["reason"]:
        status += f": {view['reason']}"
    out.print(f"status: {status}", highlight=False)
    table = Table("task", "stage", "status", "approvers", "deadline", "votes")
    for stage in view["stages"]:
        who = ", ".join(
            [*stage["approvers"]["users"], *(f"@{g}" for g in stage["approvers"]["groups"])]
        )
        votes = ", ".join(
            f"{v['voter']} {'approved' if v['approve'] else 'denied'}" for v in stage["votes"]
        )
        table.add_row(
            stage["task"], stage["name"], stage["status"], who, _iso(stage["deadline"]), votes
        )
    out.print(table)
    for c in view["clarifications"]:
        answer = c["answer"] if c["answer"] is not None else "(waiting for the requester)"
        out.print(f"Q ({c['asked_by']}): {c['question']}\nA: {answer}", highlight=False)


@approvals_cli.command("list")
def list_command(
    mine: Annotated[
        str | None, typer.Option("--mine", help="Only the tasks waiting for this user.")
    ] = None,
    status: Annotated[str | None, typer.Option(help="Only requests with this status.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approval requests, or the tasks waiting for one user (``--mine USER``)."""

    async def call(service: Approvals, app: App) -> list[dict[str, Any]]:
        if mine is not None:
            return await service.pending_for(await _principal(service, mine))
        return await service.requests(status)

    rows = _call(db, call)
    if as_json:
        print_json(rows)
        return
    if mine is not None:
        table = Table("task", "title", "stage", "requester", "status", "deadline")
        for t in rows:
            if t["kind"] == "question":
                table.add_row(t["task"], t["title"], "", "", "question: " + t["question"], "")
            else:
                table.add_row(
                    t["task"],
                    t["title"],
                    t["stage"],
                    t["requester"],
                    t["status"],
                    _iso(t["deadline"]),
                )
    else:
        table = Table("request", "title", "requester", "status", "created")
        for r in rows:
            table.add_row(r["id"], r["title"], r["requester"], r["status"], _iso(r["created_at"]))
    out.print(table)


@approvals_cli.command("show")
def show_command(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One request with its stages, votes and questions."""

    async def call(service: Approvals, app: App) -> dict[str, Any]:
        return await service.show(request_id)

    _print_request(_call(db, call), as_json)


def _decide(
    db: str | None, task: str, user: str, approve: bool, comment: str | None, as_json: bool
) -> None:
    async def call(service: Approvals, app: App) -> dict[str, Any]:
        principal = await _principal(service, user)
        return await service.decide(principal, task, approve, comment, via=_via())

    view = _call(db, call)
    if as_json:
        print_json(view)
    else:
        out.print(f"{'approved' if approve else 'denied'} {task}; request is {view['status']}")


@approvals_cli.command("approve")
def approve_command(
    task: TaskArgument,
    user: AsOption,
    comment: Annotated[str | None, typer.Option(help="Why (optional).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a task as ``--as USER``."""
    _decide(db, task, user, True, comment, as_json)


@approvals_cli.command("deny")
def deny_command(
    task: TaskArgument,
    user: AsOption,
    comment: Annotated[
        str | None, typer.Option(help="Why (required); the workflow receives it.")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", hidden=True)] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deny a task as ``--as USER`` with ``--comment WHY``; this ends the request."""
    # --reason is the earlier name of --comment, still accepted.
    why = comment or reason
    if not (why or "").strip():
        raise typer.BadParameter("a denial needs a reason: --comment WHY", param_hint="--comment")
    _decide(db, task, user, False, why, as_json)


@approvals_cli.command("ask")
def ask_command(
    task: TaskArgument,
    question: Annotated[str, typer.Argument(help="The question for the requester.")],
    user: AsOption,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask the requester a question; the task (and its SLA) pauses until answered."""

    async def call(service: Approvals, app: App) -> dict[str, Any]:
        principal = await _principal(service, user)
        return await service.ask(principal, task, question, via=_via())

    view = _call(db, call)
    if as_json:
        print_json(view)
    else:
        out.print(f"asked {view['requester']}; {task} waits for the answer")


@approvals_cli.command("answer")
def answer_command(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    answer: Annotated[str, typer.Argument(help="The answer to the open questions.")],
    user: AsOption,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer the open questions on your request; its tasks resume."""

    async def call(service: Approvals, app: App) -> dict[str, Any]:
        principal = await _principal(service, user)
        return await service.answer(principal, request_id, answer, via=_via())

    view = _call(db, call)
    if as_json:
        print_json(view)
    else:
        out.print(f"answered; request {request_id} is {view['status']}")


@approvals_cli.command("delegate")
def delegate_command(
    task: TaskArgument,
    to: Annotated[str, typer.Option("--to", help="The user who decides in your place.")],
    user: AsOption,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hand your part in a task to another user."""

    async def call(service: Approvals, app: App) -> dict[str, Any]:
        principal = await _principal(service, user)
        return await service.delegate(principal, task, to, via=_via())

    view = _call(db, call)
    if as_json:
        print_json(view)
    else:
        out.print(f"delegated {task} to {to}")


@approvals_cli.command("stats")
def stats_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Per stage: time to decision (p50, p95), share decided within the SLA, escalations."""

    async def call(service: Approvals, app: App) -> list[dict[str, Any]]:
        return [s.to_dict() for s in await service.stats()]

    rows = _call(db, call)
    if as_json:
        print_json(rows)
        return
    table = Table("stage", "stages", "decided", "p50", "p95", "within SLA", "escalations")

    def seconds(value: Any) -> str:
        return "" if value is None else f"{float(value):g}s"

    for r in rows:
        share = "" if r["within_sla"] is None else f"{100 * r['within_sla']:.0f}%"
        table.add_row(
            r["stage"],
            str(r["stages"]),
            str(r["decided"]),
            seconds(r["p50_seconds"]),
            seconds(r["p95_seconds"]),
            share,
            str(r["escalations"]),
        )
    out.print(table)
