"""``opsloom users|groups|tokens`` (Typer's runner, a temporary SQLite file)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import typer
from typer.testing import CliRunner

from opsloom import App
from opsloom.cli.identity import announce_first_admin, cli_actor, groups_cli, tokens_cli, users_cli
from opsloom.identity.access import Identity, Principal
from opsloom.identity.audit import AuditLog

T = TypeVar("T")

runner = CliRunner()

# The sub-apps as `opsloom` mounts them.
cli = typer.Typer()
cli.add_typer(users_cli, name="users")
cli.add_typer(groups_cli, name="groups")
cli.add_typer(tokens_cli, name="tokens")


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'identity.db'}"


def run(db: str, *args: str) -> Any:
    result = runner.invoke(cli, [*args, "--db", db], env={"COLUMNS": "200"})
    return result


def on_store(db: str, call: Callable[[App], Awaitable[T]]) -> T:
    async def go() -> T:
        async with App(db, worker=None) as app:
            return await call(app)

    return asyncio.run(go())


def authenticate(db: str, token: str) -> Principal | None:
    return on_store(db, lambda app: Identity(app.store, app.clock).authenticate(token))


def test_users__add_list_show_grant_revoke(db: str) -> None:
    added = run(
        db, "users", "add", "alice", "-r", "approver", "--name", "Alice", "--slack-id", "U1"
    )
    assert added.exit_code == 0, added.output
    assert "approver" in added.stdout
    assert run(db, "users", "add", "bob", "--role", "viewer", "--json").exit_code == 0

    granted = run(db, "users", "grant", "alice", "operator")
    assert granted.exit_code == 0 and "now holds" in granted.stdout
    assert "already held" in run(db, "users", "grant", "alice", "operator").stdout

    listed = json.loads(run(db, "users", "list", "--json").stdout)
    assert [(u["id"], u["roles"]) for u in listed] == [
        ("alice", ["approver", "operator"]),
        ("bob", ["viewer"]),
    ]
    assert listed[0]["effective_roles"] == ["approver", "operator", "viewer"]
    table = run(db, "users", "list").stdout
    assert "alice" in table and "Alice" in table and "active" in table

    revoked = run(db, "users", "revoke", "alice", "operator")
    assert revoked.exit_code == 0 and "no longer holds" in revoked.stdout
    shown = json.loads(run(db, "users", "show", "alice", "--json").stdout)
    assert shown["roles"] == ["approver"] and shown["slack_id"] == "U1"
    assert shown["tokens"] == []
    assert "effective roles: approver, viewer" in run(db, "users", "show", "alice").stdout

    actors = on_store(db, lambda app: AuditLog(app.store, app.clock).entries())
    assert {entry.actor for entry in actors} == {cli_actor()}
    assert cli_actor().startswith("cli:")
    assert [entry.action for entry in actors] == [
        "user.add",
        "user.add",
        "role.grant",
        "role.revoke",
    ]


def test_users__set_changes_contact_details(db: str) -> None:
    run(db, "users", "add", "alice", "--slack-id", "U1")
    run(db, "users", "add", "bob")
    changed = run(db, "users", "set", "bob", "--slack-id", "U2", "--email", "b@x.io", "--json")
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["slack_id"] == "U2"
    taken = run(db, "users", "set", "bob", "--slack-id", "U1")
    assert taken.exit_code == 1 and "Slack id" in taken.stderr
    assert run(db, "users", "set", "nobody", "--name", "N").exit_code == 2
    run(db, "users", "set", "bob", "--email", "")
    shown = json.loads(run(db, "users", "show", "bob", "--json").stdout)
    assert (shown["slack_id"], shown["email"]) == ("U2", None)


def test_users__disable_and_enable(db: str) -> None:
    run(db, "users", "add", "alice", "-r", "operator")
    token = run(db, "tokens", "create", "alice").stdout.strip()
    assert authenticate(db, token) is not None
    assert "disabled" in run(db, "users", "disable", "alice").stdout
    assert authenticate(db, token) is None
    shown = json.loads(run(db, "users", "show", "alice", "--json").stdout)
    assert shown["disabled"] is True and shown["effective_roles"] == []
    assert "enabled" in run(db, "users", "enable", "alice").stdout
    assert authenticate(db, token) is not None


def test_users__refusals_and_their_exit_codes(db: str) -> None:
    run(db, "users", "add", "alice")
    exists = run(db, "users", "add", "alice")
    assert exists.exit_code == 1 and "exists already" in exists.stderr
    assert run(db, "users", "grant", "nobody", "viewer").exit_code == 2
    bad_role = run(db, "users", "grant", "alice", "root")
    assert bad_role.exit_code == 2 and "unknown role" in bad_role.stderr
    assert run(db, "users", "add", "cli:x").exit_code == 2
    assert run(db, "users", "show", "nobody").exit_code == 2
    assert run(db, "tokens", "revoke", "missing").exit_code == 2
    assert run(db, "tokens", "create", "nobody").exit_code == 2


def test_groups__add_and_remove_members(db: str) -> None:
    for user in ("alice", "bob"):
        run(db, "users", "add", user, "-r", "approver")
    assert run(db, "groups", "add-member", "oncall", "alice").exit_code == 0
    assert "already in" in run(db, "groups", "add-member", "oncall", "alice").stdout
    run(db, "groups", "add-member", "oncall", "bob")
    assert json.loads(run(db, "groups", "list", "--json").stdout) == {"oncall": ["alice", "bob"]}
    assert "removed from" in run(db, "groups", "remove-member", "oncall", "alice").stdout
    assert json.loads(run(db, "groups", "list", "--json").stdout) == {"oncall": ["bob"]}
    assert "oncall" in run(db, "groups", "list").stdout
    principal = on_store(db, lambda app: Identity(app.store, app.clock).principal("bob"))
    assert principal.groups == {"oncall"}


def test_tokens__printed_once_listed_without_text_and_revoked(db: str) -> None:
    run(db, "users", "add", "alice", "-r", "viewer")
    created = run(db, "tokens", "create", "alice", "--name", "laptop")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert "\n" not in token and token.startswith("opsloom_")  # alone on stdout, for $(…)
    assert "shown only now" in created.stderr
    principal = authenticate(db, token)
    assert principal is not None and principal.user == "alice"

    listed = run(db, "tokens", "list", "--json")
    assert token not in listed.stdout
    tokens = json.loads(listed.stdout)
    assert [(t["user"], t["name"], t["revoked_at"]) for t in tokens] == [("alice", "laptop", None)]
    assert "laptop" in run(db, "tokens", "list", "--user", "alice").stdout
    assert json.loads(run(db, "tokens", "list", "--user", "bob", "--json").stdout) == []

    revoked = run(db, "tokens", "revoke", tokens[0]["id"])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert "already revoked" in run(db, "tokens", "revoke", tokens[0]["id"]).stdout
    assert authenticate(db, token) is None


def test_tokens__json_and_expiry(db: str) -> None:
    run(db, "users", "add", "ci", "-r", "operator")
    created = json.loads(run(db, "tokens", "create", "ci", "--expires", "3600", "--json").stdout)
    assert created["user"] == "ci" and created["name"] == "cli"
    assert created["expires_at"] is not None
    assert authenticate(db, created["token"]) is not None
    assert run(db, "tokens", "create", "ci", "--expires", "0").exit_code == 2


def test_first_admin__announced_once(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = on_store(db, announce_first_admin)
    printed = capsys.readouterr().out
    assert first is not None and first in printed and "'admin'" in printed
    assert on_store(db, announce_first_admin) is None
    assert capsys.readouterr().out == ""
    principal = authenticate(db, first)
    assert principal is not None and principal.has("admin")
