"""Workflow documents on the command line: ``opsloom run``, ``opsloom deploy``, and the document
form of ``opsloom start`` (``NAMESPACE/NAME[:VERSION]``).

``run FILE`` executes a document to completion on an embedded store (a temporary SQLite file
unless ``--db`` names one) and prints its output as JSON; a document that faults prints its
error object and exits with status 1. ``deploy FILE`` stores a new version in the database, where
every worker finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from opsloom.app import App, RunHandle
from opsloom.cli.console import AppOption, command_app
from opsloom.cli.identity import cli_actor
from opsloom.dsl.interpreter import DocumentFaultedError
from opsloom.dsl.runtime import DslRuntime
from opsloom.errors import DocumentError, OpsloomError, RunFailedError
from opsloom.services.document import deploy_document
from opsloom.worker import WorkerOptions

InputOption = Annotated[str | None, typer.Option("--input", help="Input as JSON.")]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (run: a temporary SQLite file by default)."),
]


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {exc}", 2)
    return ""  # pragma: no cover


def _input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"--input is not valid JSON: {exc}", 2)
    return None  # pragma: no cover


def _problems(exc: DocumentError) -> str:
    return "\n".join(str(problem) for problem in exc.problems)


def _run_async(factory: Callable[[], Awaitable[int]]) -> int:
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except DocumentError as exc:
        sys.stderr.write(_problems(exc) + "\n")
        raise typer.Exit(2) from None
    except OpsloomError as exc:
        _fail(str(exc), 2)
    return 1  # pragma: no cover


@contextlib.asynccontextmanager
async def _database(db: str | None) -> AsyncIterator[str]:
    if db:
        yield db
        return
    with tempfile.TemporaryDirectory(prefix="opsloom-run-") as folder:
        yield f"sqlite:///{Path(folder) / 'run.db'}"


def run_command(
    file: Annotated[Path, typer.Argument(help="The workflow document (YAML or JSON).")],
    input: InputOption = None,
    db: DbOption = None,
    also: Annotated[
        list[Path] | None,
        typer.Option("--with", help="Another document the run may call (run: workflow)."),
    ] = None,
    app: AppOption = None,
) -> None:
    """Run a workflow document to completion and print its output as JSON.

    With ``--app``, the document may call the catalog functions (``@app.function``) and start
    the workflows of that Python app.
    """
    target = app
    text = _read(file)
    value = _input(input)
    others = [(path, _read(path)) for path in also or []]

    async def go() -> int:
        async with _database(db) as url:
            app = command_app(target, url, worker=WorkerOptions(reap_seconds=None))
            runtime = app.documents
            for path, other in others:
                runtime.register(runtime.load(other, str(path)), other)
            document = runtime.load(text, str(file))
            name = runtime.register(document, text)
            try:
                async with app:
                    handle = await app.start(
                        name, value, version=document.version, started_by=cli_actor()
                    )
                    try:
                        _print(await handle.result())
                        return 0
                    except RunFailedError as exc:
                        error = await runtime.fault_of(handle.run_id) or exc.error
                        _print(error)
                        return 1
            finally:
                await runtime.close()

    code = _run_async(go)
    if code:
        raise typer.Exit(code)


def deploy_command(
    file: Annotated[Path, typer.Argument(help="The workflow document (YAML or JSON).")],
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: $OPSLOOM_DATABASE_URL or sqlite:///opsloom.db)."
        ),
    ] = None,
    app: AppOption = None,
) -> None:
    """Store a new version of a workflow document; workers pick it up.

    With ``--app``, the document is checked against that app's catalog functions too (the
    workers that run it must load the same app).
    """
    text = _read(file)
    target = command_app(app, db)

    async def go() -> int:
        async with target:
            record, created = await deploy_document(target, text, str(file), actor=cli_actor())
        what = "deployed" if created else "already deployed"
        sys.stdout.write(f"{what} {record.workflow} version {record.version}\n")
        return 0

    _run_async(go)


async def deploy_examples(app: App, folder: Path) -> int:
    """Deploy every valid document of ``folder`` on an open ``app`` (stored and audited).

    A document that cannot be read or deployed is reported and skipped. Returns how many
    versions were new.
    """
    count = 0
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.json")):
        try:
            text = path.read_text(encoding="utf-8")
            _, created = await deploy_document(app, text, str(path), actor=cli_actor())
        except (OSError, UnicodeDecodeError, DocumentError, OpsloomError) as exc:
            sys.stderr.write(f"skipping {path}: {exc}\n")
            continue
        count += created
    return count


async def serve_documents(runtime: DslRuntime[RunHandle], work: Awaitable[object]) -> None:
    """Run ``work`` while deployed documents are reloaded in the background."""
    watcher = asyncio.create_task(runtime.watch(), name="opsloom-documents")
    try:
        await work
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await runtime.close()


__all__ = [
    "DocumentFaultedError",
    "deploy_command",
    "deploy_examples",
    "run_command",
    "serve_documents",
]
