"""What every ``opsloom`` command shares: the consoles, common options, errors and exit codes.

Exit status: 0 on success, 1 when an operation is refused or a waited-for run did not complete,
2 for invalid input (bad JSON, an unknown workflow, run or schedule, a bad setting).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from opsloom.app import App
from opsloom.cli.remote import Server, chosen_server
from opsloom.errors import OpsloomError

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: $OPSLOOM_DATABASE_URL or sqlite:///opsloom.db)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print stable JSON for scripts.")]

#: Error codes that mean the caller asked for something that is not there or not valid.
INPUT_CODES = frozenset(
    {
        "invalid_input",
        "invalid_event",
        "configuration_error",
        "workflow_not_found",
        "run_not_found",
        "schedule_not_found",
    }
)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error to stderr and exit with ``code``."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def parse_json(text: str | None, what: str) -> Any:
    """``text`` as JSON (None stays None); exit 2 naming ``what`` when it is not JSON."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON: {exc}", 2)


def execute(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a new event loop; opsloom errors become a message and an exit status.

    The loop is uvloop's where it is installed (its I/O and callbacks cost about half of the
    standard loop's, which is most of a busy worker's or API server's overhead).
    """
    try:
        return _run_loop(factory())  # type: ignore[arg-type]
    except OpsloomError as exc:
        fail(str(exc), 2 if exc.code in INPUT_CODES else 1)


def _run_loop(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # optional (not built for every platform)
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def client(db: str | None, call: Callable[[App], Awaitable[T]]) -> T:
    """Open the store without a worker, make one call, close it."""
    if chosen_server() is not None:
        fail("this command works on the database (--db); --server serves start, signal and runs")
    target = App(db, worker=None)

    async def go() -> T:
        async with target:
            return await call(target)

    return execute(go)


def run_client(db: str | None, call: Callable[[App | Server], Awaitable[T]]) -> T:
    """Like :func:`client`, but with ``--server`` (``OPSLOOM_SERVER``) the call goes to that
    server's API instead of the database."""
    target: App | Server = chosen_server() or App(db, worker=None)

    async def go() -> T:
        async with target:
            return await call(target)

    return execute(go)


def print_json(value: Any) -> None:
    """Stable, indented JSON on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
