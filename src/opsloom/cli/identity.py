"""``opsloom users``, ``opsloom groups`` and ``opsloom tokens``: who may use the API, and how.

The CLI works on the database directly, as the local operator: every change it makes is
audited with the actor ``cli:<os user>``. A token is printed once, when it is created (alone
on stdout, so ``TOKEN=$(opsloom tokens create alice)`` works); only its hash is stored.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from opsloom.app import App
from opsloom.cli.console import DbOption, JsonOption, client, err, fail, out, print_json
from opsloom.errors import InputError
from opsloom.identity.access import (
    BOOTSTRAP_USER,
    ROLES,
    Identity,
    IdentityError,
    TokenNotFoundError,
    UnknownUserError,
    User,
    effective_roles,
)
from opsloom.store.identity import TokenRecord

T = TypeVar("T")

users_cli = typer.Typer(help="Manage users and their roles.", no_args_is_help=True)
groups_cli = typer.Typer(
    help="Manage groups (approval stages can be assigned to a group).", no_args_is_help=True
)
tokens_cli = typer.Typer(help="Manage API tokens (stored hashed).", no_args_is_help=True)

UserArgument = Annotated[str, typer.Argument(help="User id (login name).")]
RoleArgument = Annotated[str, typer.Argument(help=f"One of: {', '.join(ROLES)}.")]
GroupArgument = Annotated[str, typer.Argument(help="Group name.")]


def cli_actor() -> str:
    """Who the CLI acts as in the audit log: ``cli:<os user>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container running as a bare uid)
        name = f"uid{os.getuid()}"
    return f"cli:{name}"


def with_identity(
    db: str | None, call: Callable[[Identity], Awaitable[T]], *, create: bool = False
) -> T:
    """Open the store, run ``call`` with an :class:`Identity` over it, close it.

    Unknown users and tokens and invalid names or roles exit with status 2, a refused change
    (a taken id) with status 1. Only with ``create`` (adding a user) is a new database made.
    """

    async def go(app: App) -> T:
        try:
            return await call(app.identity)
        except (UnknownUserError, TokenNotFoundError, InputError) as exc:
            fail(str(exc), 2)
        except IdentityError as exc:
            fail(str(exc), 1)

    return client(db, go, create=create)


def _time(value: str | None) -> str:
    return "-" if value is None else value.replace("+00:00", "Z")


# --- users ---------------------------------------------------------------------------------


@users_cli.command("add")
def users_add(
    user: UserArgument,
    role: Annotated[
        list[str] | None, typer.Option("--role", "-r", help="Role to grant (repeatable).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    slack_id: Annotated[
        str | None, typer.Option("--slack-id", help="Slack member id (for chat approvals).")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a user (with --role for each role to grant)."""
    added = with_identity(
        db,
        lambda identity: identity.add_user(
            user, name=name, email=email, slack_id=slack_id, roles=role or [], actor=cli_actor()
        ),
        create=True,
    )
    if as_json:
        print_json(added.to_dict())
    else:
        out.print(f"user {added.id} added with roles: {', '.join(sorted(added.roles)) or 'none'}")


@users_cli.command("set")
def users_set(
    user: UserArgument,
    name: Annotated[str | None, typer.Option(help="Display name ('' clears it).")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address ('' clears it).")] = None,
    slack_id: Annotated[
        str | None, typer.Option("--slack-id", help="Slack member id ('' clears it).")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a user's name, e-mail or Slack id."""
    updated = with_identity(
        db,
        lambda identity: identity.update_user(
            user, name=name, email=email, slack_id=slack_id, actor=cli_actor()
        ),
    )
    if as_json:
        print_json(_user_json(updated))
    else:
        out.print(f"user {updated.id} updated", highlight=False)


@users_cli.command("list")
def users_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List users with their roles and groups."""
    users = with_identity(db, lambda identity: identity.list_users())
    if as_json:
        print_json([_user_json(user) for user in users])
        return
    table = Table("id", "name", "roles", "effective", "groups", "status")
    for user in users:
        table.add_row(
            user.id,
            user.name or "",
            ", ".join(sorted(user.roles)),
            ", ".join(sorted(effective_roles(user.roles))),
            ", ".join(sorted(user.groups)),
            "disabled" if user.disabled else "active",
        )
    out.print(table)


@users_cli.command("show")
def users_show(user: UserArgument, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show a user: roles (granted and effective), groups and tokens."""

    async def fetch(identity: Identity) -> tuple[User, list[TokenRecord]]:
        found = await identity.get_user(user)
        if found is None:
            raise UnknownUserError(f"no user {user!r}")
        return found, await identity.tokens(user)

    found, tokens = with_identity(db, fetch)
    data = _user_json(found)
    data["tokens"] = [token.to_dict() for token in tokens]
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{found.id}[/bold]  {found.name or ''}", highlight=False)
    for label in ("email", "slack_id"):
        if data[label]:
            out.print(f"{label}: {data[label]}", highlight=False)
    out.print(f"status: {'disabled' if found.disabled else 'active'}")
    out.print(f"roles: {', '.join(data['roles']) or 'none'}")
    out.print(f"effective roles: {', '.join(data['effective_roles']) or 'none'}")
    out.print(f"groups: {', '.join(data['groups']) or 'none'}")
    out.print(_tokens_table(tokens))


def _user_json(user: User) -> dict[str, Any]:
    data = user.to_dict()
    data["effective_roles"] = [] if user.disabled else sorted(effective_roles(user.roles))
    return data


@users_cli.command("disable")
def users_disable(user: UserArgument, db: DbOption = None) -> None:
    """Disable a user: their tokens stop working and they hold no role."""
    changed = with_identity(db, lambda identity: identity.disable(user, actor=cli_actor()))
    out.print(f"user {user} {'disabled' if changed else 'was already disabled'}")


@users_cli.command("enable")
def users_enable(user: UserArgument, db: DbOption = None) -> None:
    """Enable a disabled user again."""
    changed = with_identity(db, lambda identity: identity.enable(user, actor=cli_actor()))
    out.print(f"user {user} {'enabled' if changed else 'was already enabled'}")


@users_cli.command("grant")
def users_grant(user: UserArgument, role: RoleArgument, db: DbOption = None) -> None:
    """Grant a role to a user."""
    changed = with_identity(db, lambda identity: identity.grant(user, role, actor=cli_actor()))
    out.print(f"{user} {'now holds' if changed else 'already held'} the role {role}")


@users_cli.command("revoke")
def users_revoke(user: UserArgument, role: RoleArgument, db: DbOption = None) -> None:
    """Revoke a role from a user."""
    changed = with_identity(db, lambda identity: identity.revoke(user, role, actor=cli_actor()))
    out.print(f"{user} {'no longer holds' if changed else 'did not hold'} the role {role}")


# --- groups --------------------------------------------------------------------------------


@groups_cli.command("add-member")
def groups_add_member(group: GroupArgument, user: UserArgument, db: DbOption = None) -> None:
    """Make a user a member of a group (the group exists while it has members)."""
    changed = with_identity(
        db, lambda identity: identity.add_to_group(user, group, actor=cli_actor())
    )
    out.print(f"{user} {'added to' if changed else 'was already in'} group {group}")


@groups_cli.command("remove-member")
def groups_remove_member(group: GroupArgument, user: UserArgument, db: DbOption = None) -> None:
    """Remove a user from a group."""
    changed = with_identity(
        db, lambda identity: identity.remove_from_group(user, group, actor=cli_actor())
    )
    out.print(f"{user} {'removed from' if changed else 'was not in'} group {group}")


@groups_cli.command("list")
def groups_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List groups and their members."""
    groups = with_identity(db, lambda identity: identity.groups())
    if as_json:
        print_json(groups)
        return
    table = Table("group", "members")
    for group, members in groups.items():
        table.add_row(group, ", ".join(members))
    out.print(table)


# --- tokens --------------------------------------------------------------------------------


@tokens_cli.command("create")
def tokens_create(
    user: UserArgument,
    name: Annotated[str, typer.Option(help="A label for the token (ci, laptop…).")] = "cli",
    expires: Annotated[
        float | None,
        typer.Option("--expires", help="Expire after this many seconds (default: never).", min=1),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API token for a user and print it (it cannot be shown again)."""

    record, text = with_identity(
        db,
        lambda identity: identity.issue_token(
            user, name=name, actor=cli_actor(), expires_in=expires
        ),
    )
    if as_json:
        print_json({**record.to_dict(), "token": text})
        return
    err.print(
        f"token {record.id} for {user} created; it is shown only now, store it safely:",
        highlight=False,
    )
    sys.stdout.write(text + "\n")


@tokens_cli.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List API tokens (never their text)."""
    tokens = with_identity(db, lambda identity: identity.tokens(user))
    if as_json:
        print_json([token.to_dict() for token in tokens])
    else:
        out.print(_tokens_table(tokens))


@tokens_cli.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (see `tokens list`).")],
    db: DbOption = None,
) -> None:
    """Revoke an API token for good."""
    changed = with_identity(db, lambda identity: identity.revoke_token(token_id, actor=cli_actor()))
    out.print(f"token {token_id} {'revoked' if changed else 'was already revoked'}")


def _tokens_table(tokens: list[TokenRecord]) -> Table:
    table = Table("id", "user", "name", "created", "expires", "last used", "revoked")
    for token in tokens:
        data = token.to_dict()
        table.add_row(
            token.id,
            token.user,
            token.name,
            _time(data["created_at"]),
            _time(data["expires_at"]),
            _time(data["last_used_at"]),
            _time(data["revoked_at"]),
        )
    return table


# --- first start ---------------------------------------------------------------------------


async def announce_first_admin(app: App) -> str | None:
    """In a new database, create the first admin and print its token once (for ``up``).

    Returns the token (None when the database had users already and nothing was printed).
    """
    token = await app.identity.bootstrap_admin()
    if token is not None:
        sys.stdout.write(
            f"new database: created the admin user {BOOTSTRAP_USER!r}; its API token, shown "
            f"only now: {token}\n"
        )
        sys.stdout.flush()
    return token
