"""``opsloom validate FILE...``: check workflow documents without running them.

Each problem is printed on stdout as ``file:line:column: /json/pointer: message`` (the form
editors and CI annotations understand), followed by a summary line. The exit status is 1 when
any file has a problem, 0 when every file is valid. ``--json`` prints one JSON list of problem
objects instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsloom.dsl.document import Problem, RuntimeFeatures, load_document_file
from opsloom.errors import DocumentError

if TYPE_CHECKING:
    from opsloom.dsl.catalog import Catalog


def _catalog(target: str | None) -> Catalog:
    """The catalog documents would run with: the installed functions, and those the
    ``--app`` registers with ``@app.function``."""
    from opsloom.cli.console import cli_app, fail
    from opsloom.errors import OpsloomError
    from opsloom.services.loading import load_app

    if target is None:
        return cli_app(None).catalog
    try:
        return load_app(target).catalog
    except OpsloomError as exc:
        fail(str(exc), 2)


def validate_command(
    files: Annotated[
        list[Path],
        typer.Argument(help="Workflow documents (YAML or JSON) to check.", show_default=False),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the problems as a JSON list.")
    ] = False,
    app: Annotated[
        str | None,
        typer.Option(
            "--app", help="Python app (module:attribute) whose catalog functions documents call."
        ),
    ] = None,
) -> None:
    """Check Serverless Workflow documents: syntax, schema, names, jq expressions, features."""
    catalog = _catalog(app)
    runtime = RuntimeFeatures.detect()
    problems: list[Problem] = []
    invalid = 0
    for path in files:
        try:
            load_document_file(
                path,
                catalog_has=catalog.has,
                catalog_check=catalog.arguments_problems,
                runtime=runtime,
            )
        except DocumentError as exc:
            invalid += 1
            problems.extend(exc.problems)
    if as_json:
        sys.stdout.write(json.dumps([p.to_dict() for p in problems], indent=2) + "\n")
    else:
        for problem in problems:
            sys.stdout.write(f"{problem}\n")
        sys.stdout.write(_summary(len(files), invalid, len(problems)) + "\n")
    if invalid:
        raise typer.Exit(1)


def _summary(total: int, invalid: int, count: int) -> str:
    files = f"{total} file{'s' if total != 1 else ''}"
    if not invalid:
        return f"{files} checked: all valid"
    plural = "s" if count != 1 else ""
    return f"{files} checked: {count} problem{plural} in {invalid} of them"
