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
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from opsloom.app import App
from opsloom.cli.remote import Server, chosen_server
from opsloom.errors import OpsloomError
from opsloom.settings import Settings, load_settings
from opsloom.worker import WorkerOptions

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
        "connection_not_found",
        "connector_not_found",
        "event_not_found",
    }
)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error to stderr and exit with ``code``."""
    # The message is text, not markup: "pip install 'opsloom[aws]'" keeps its brackets.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
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


def settings() -> Settings:
    """The settings of this command, read once from the environment (exit 2 when invalid)."""
    try:
        return load_settings()
    except ValidationError as exc:
        fail(f"invalid OPSLOOM_* setting: {exc}", 2)


def cli_app(
    db: str | None, *, worker: WorkerOptions | None = None, config: Settings | None = None
) -> App:
    """The App of a command: built from the settings, ``--db`` overriding the database."""
    config = config or settings()
    return App(db or config.database_url, worker=worker, settings=config)


AppOption = Annotated[
    str | None,
    typer.Option("--app", help="Python workflows to load, as module:attribute (e.g. myflows:app)."),
]


def command_app(
    target: str | None,
    db: str | None,
    *,
    worker: WorkerOptions | None = None,
    config: Settings | None = None,
) -> App:
    """The App of ``--app`` (configured for this command), or one with no code workflows."""
    from opsloom.services.loading import load_app

    config = config or settings()
    if target:
        try:
            app = load_app(target)
        except OpsloomError as exc:
            fail(str(exc), 2)
        app.configure(database_url=db, worker=worker, settings=config)
        return app
    return cli_app(db, worker=worker, config=config)


def client(db: str | None, call: Callable[[App], Awaitable[T]], *, create: bool = False) -> T:
    """Open the store without a worker, make one call, close it.

    Unless ``create``, a SQLite database that does not exist is not created: the command
    exits naming the file it looked for (a read in the wrong directory must not leave an empty
    database behind and answer "nothing").
    """
    if chosen_server() is not None:
        fail("this command works on the database (--db); --server serves start, signal and runs")
    target = cli_app(db)
    missing = target.missing_database()
    if missing is not None and not create:
        fail(
            f"no database at {missing} ({target.database_url}); pass --db URL or set "
            "OPSLOOM_DATABASE_URL (`opsloom db upgrade` creates one)",
            2,
        )

    async def go() -> T:
        async with target:
            return await call(target)

    return execute(go)


def run_call(
    db: str | None,
    local: Callable[[App], Awaitable[T]],
    remote: Callable[[Server], Awaitable[T]],
) -> T:
    """``local`` on the database (as :func:`client`), or ``remote`` on the server chosen with
    ``--server`` (``OPSLOOM_SERVER``)."""
    server = chosen_server()
    if server is None:
        return client(db, local)
    return execute(lambda: remote(server))


def report(
    db: str | None,
    as_json: bool,
    local: Callable[[App], Awaitable[T]],
    remote: Callable[[Server], Awaitable[T]],
    shape: Callable[[T], Any],
    say: Callable[[T], str],
) -> None:
    """A control command (pause, resume, limit…): run it as :func:`run_call` does, then print
    ``shape`` of its result as JSON with ``--json``, else the sentence ``say``."""
    result = run_call(db, local, remote)
    if as_json:
        print_json(shape(result))
    else:
        out.print(say(result))


def print_json(value: Any) -> None:
    """Stable, indented JSON on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
