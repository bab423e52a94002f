"""``opsloom connections`` and ``opsloom connectors``: configure connections, call actions.

Secrets given here are sealed before they are stored and are never printed back: ``show``
lists which secret fields are set, not their values.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from opsloom.app import App
from opsloom.cli.console import DbOption, JsonOption, client, fail, out, parse_json, print_json

connections_cli = typer.Typer(
    help="Named credentials and settings of connectors.", no_args_is_help=True
)
connectors_cli = typer.Typer(help="Installed connectors and their actions.", no_args_is_help=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="KEY=VALUE (dotted keys nest: breaker.failures=3; JSON for objects/lists).",
    ),
]
SetFileOption = Annotated[
    list[str] | None,
    typer.Option("--set-file", help="KEY=PATH: the value is the file's content (a token file)."),
]
SetEnvOption = Annotated[
    list[str] | None,
    typer.Option("--set-env", help="KEY=VARIABLE: the value is that environment variable's."),
]


def _pair(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        fail(f"{option} {text!r}: expected KEY=VALUE", 2)
    return key.strip(), value


def _put(values: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    target = values
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def settings_from_options(
    sets: list[str] | None, files: list[str] | None, envs: list[str] | None
) -> dict[str, Any]:
    """Connection settings from ``--set``, ``--set-file`` and ``--set-env`` options."""
    values: dict[str, Any] = {}
    for text in sets or []:
        key, raw = _pair(text, "--set")
        value: Any = raw
        if raw[:1] in ("{", "["):
            value = parse_json(raw, f"--set {key}")
        _put(values, key, value)
    for text in files or []:
        key, path = _pair(text, "--set-file")
        try:
            _put(values, key, Path(path).read_text("utf-8").strip())
        except OSError as exc:
            fail(f"--set-file {key}: cannot read {path}: {exc.strerror}", 2)
    for text in envs or []:
        key, name = _pair(text, "--set-env")
        if name not in os.environ:
            fail(f"--set-env {key}: the environment variable {name} is not set", 2)
        _put(values, key, os.environ[name])
    return values


@connections_cli.command("add")
def add_command(
    name: str,
    connector: Annotated[str, typer.Option("--connector", "-c", help="Connector name.")],
    sets: SetOption = None,
    files: SetFileOption = None,
    envs: SetEnvOption = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Change an existing connection (merging values).")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a connection (secrets are encrypted at rest and never shown)."""
    values = settings_from_options(sets, files, envs)

    async def call(app: App) -> dict[str, Any]:
        return await app.connections.add_connection(name, connector, values, replace=replace)

    shown = client(db, call, create=True)
    if as_json:
        print_json(shown)
        return
    out.print(f"connection {shown['name']} ({shown['connector']}) saved", highlight=False)


@connections_cli.command("list")
def list_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every connection with its connector and breaker state."""

    async def call(app: App) -> list[dict[str, Any]]:
        return await app.connections.connections()

    rows = client(db, call)
    if as_json:
        print_json(rows)
        return
    table = Table("name", "connector", "breaker", "secrets", "updated")
    for row in rows:
        table.add_row(
            row["name"],
            row["connector"],
            row["breaker"]["state"],
            ", ".join(row["secrets"]) or "-",
            row["updated_at"],
        )
    out.print(table)


@connections_cli.command("show")
def show_command(name: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """One connection's settings (secret values are never shown)."""

    async def call(app: App) -> dict[str, Any]:
        return await app.connections.connection(name)

    shown = client(db, call)
    if as_json:
        print_json(shown)
        return
    out.print(json.dumps(shown, indent=2, sort_keys=True), highlight=False)


@connections_cli.command("test")
def test_command(name: str, db: DbOption = None) -> None:
    """Check a connection's credentials with the connector's cheapest authenticated call."""

    async def call(app: App) -> str:
        return await app.connections.test_connection(name)

    out.print(client(db, call), highlight=False)


@connections_cli.command("remove")
def remove_command(name: str, db: DbOption = None) -> None:
    """Delete a connection and its breaker state."""

    async def call(app: App) -> bool:
        return await app.connections.remove_connection(name)

    if not client(db, call):
        fail(f"no connection {name!r}", 2)
    out.print(f"connection {name} removed", highlight=False)


@connectors_cli.command("list")
def connectors_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Installed connectors, their actions, and the connections of each with breaker state."""

    async def call(app: App) -> list[dict[str, Any]]:
        connections = await app.connections.connections()
        return [
            {
                "name": c.name,
                "title": c.title,
                "version": c.version,
                "actions": [a.id for a in c.actions.values()],
                "connections": [
                    {"name": x["name"], "breaker": x["breaker"]}
                    for x in connections
                    if x["connector"] == c.name
                ],
            }
            for c in app.connections.registry.connectors()
        ]

    rows = client(db, call)
    if as_json:
        print_json(rows)
        return
    table = Table("connector", "actions", "connections (breaker)")
    for row in rows:
        table.add_row(
            f"{row['name']} ({row['title']})",
            "\n".join(a.split(".", 1)[1] for a in row["actions"]),
            "\n".join(f"{c['name']} ({c['breaker']['state']})" for c in row["connections"]) or "-",
        )
    out.print(table)


_OWN_LINE = re.compile(r"^\s*(?:[-*+] |\d+[.)] |>>> |\.\.\. )")


def reflow(text: str) -> str:
    """A docstring's hard-wrapped paragraphs as one line each, for the terminal to wrap.

    List items and doctest lines start a line of their own, as written.
    """
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines: list[str] = []
        for line in block.splitlines():
            if lines and not _OWN_LINE.match(line):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.rstrip())
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


@connectors_cli.command("show")
def connectors_show(name: str, as_json: JsonOption = False) -> None:
    """A connector's settings schema and each action's help and input schema."""
    from opsloom.connectors.registry import ConnectorRegistry
    from opsloom.errors import OpsloomError

    try:
        described = ConnectorRegistry.discovered().connector(name).describe()
    except OpsloomError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json(described)
        return
    out.print(f"[bold]{described['title']}[/bold] ({name} {described['version']})")
    out.print(reflow(described["doc"]), highlight=False)
    out.print(f"\nsettings: {', '.join(described['settings']['properties'])}", highlight=False)
    out.print(f"secrets: {', '.join(described['secrets']) or '-'}\n", highlight=False)
    for action in described["actions"]:
        fields = action["input"].get("properties", {})
        required = set(action["input"].get("required", []))
        listed = ", ".join(f"{k}{'' if k in required else '?'}" for k in fields)
        out.print(f"[bold]{action['id']}[/bold]  ({action['function']})", highlight=False)
        out.print(f"  {reflow(action['help'])}", highlight=False)
        out.print(f"  input: {listed}\n", highlight=False)


@connectors_cli.command("call")
def connectors_call(
    action: Annotated[str, typer.Argument(help="connector.action (slack.post_message).")],
    connection: Annotated[str, typer.Option("--connection", help="Connection name.")],
    with_: Annotated[str, typer.Option("--with", help="The action's input as JSON.")] = "{}",
    db: DbOption = None,
) -> None:
    """Run one action now (outside any workflow) and print its output as JSON."""
    fields = parse_json(with_, "--with")
    if not isinstance(fields, dict):
        fail("--with must be a JSON object", 2)

    async def call(app: App) -> dict[str, Any]:
        found = app.connections.registry.action(action)
        return await app.connections.call(found, connection, fields)

    print_json(client(db, call))


@connectors_cli.command("import")
def connectors_import(
    name: str,
    openapi: Annotated[Path, typer.Option("--openapi", help="OpenAPI 3 / Swagger 2 file.")],
    operation: Annotated[
        list[str] | None,
        typer.Option("--operation", help="Keep only these operationIds (repeatable)."),
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Where imported connectors live (default: OPSLOOM_CONNECTORS_DIR)."
        ),
    ] = None,
) -> None:
    """Make a connector of an OpenAPI document: one typed action per operation."""
    from opsloom.connectors.contract import load_spec
    from opsloom.connectors.openapi import save_import
    from opsloom.errors import OpsloomError
    from opsloom.settings import load_settings

    try:
        data = load_spec(openapi)
    except (OSError, ValueError) as exc:
        fail(f"cannot read {openapi}: {exc}", 2)
    target = folder or load_settings().connectors_dir
    try:
        connector = save_import(target, name, data, operation)
    except OpsloomError as exc:
        fail(f"{openapi}: {exc}", 2)
    out.print(
        f"connector {name} ({connector.title}): {len(connector.actions)} actions in {target}",
        highlight=False,
    )
    for action in list(connector.actions.values())[:20]:
        out.print(f"  {action.id}  {action.summary}", highlight=False)
