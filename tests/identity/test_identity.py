"""Users, roles, groups and API tokens, on every store dialect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from rawsql import everything_stored, execute

from opsloom import App, FakeClock
from opsloom.identity.access import (
    BOOTSTRAP_USER,
    ROLES,
    Identity,
    InvalidNameError,
    Principal,
    TokenNotFoundError,
    UnknownRoleError,
    UnknownUserError,
    UserExistsError,
    effective_roles,
    hash_token,
)
from opsloom.identity.audit import AuditLog


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    app = App(db_url, worker=None, clock=FakeClock())
    async with app:
        yield app


@pytest.fixture
def identity(app: App) -> Identity:
    return Identity(app.store, app.clock)


def clock_of(app: App) -> FakeClock:
    assert isinstance(app.clock, FakeClock)
    return app.clock


# --- roles -------------------------------------------------------------------------------------


def test_roles__admin_implies_all_operator_and_approver_imply_viewer() -> None:
    assert effective_roles(["admin"]) == frozenset(ROLES)
    assert effective_roles(["operator"]) == {"operator", "viewer"}
    assert effective_roles(["approver"]) == {"approver", "viewer"}
    assert effective_roles(["viewer"]) == {"viewer"}
    assert effective_roles([]) == frozenset()
    with pytest.raises(UnknownRoleError):
        effective_roles(["root"])


def test_principal__has_checks_effective_roles_and_refuses_typos() -> None:
    principal = Principal("alice", effective_roles(["approver"]), frozenset({"oncall"}))
    assert principal.has("approver") and principal.has("viewer")
    assert not principal.has("operator")
    with pytest.raises(UnknownRoleError):
        principal.has("approve")


# --- users and groups --------------------------------------------------------------------------


async def test_users__add_get_list_and_find_by_slack_id(identity: Identity) -> None:
    added = await identity.add_user(
        "alice",
        name="Alice",
        email="alice@example.com",
        slack_id="U01",
        roles=["approver"],
        actor="cli:root",
    )
    await identity.add_user("bob", roles=["viewer", "operator"], actor="cli:root")
    got = await identity.get_user("alice")
    assert got == added
    assert got.roles == {"approver"} and got.slack_id == "U01" and not got.disabled
    assert await identity.user_by_slack_id("U01") == added
    assert await identity.user_by_slack_id("U02") is None
    assert await identity.get_user("carol") is None
    assert [u.id for u in await identity.list_users()] == ["alice", "bob"]
    assert (await identity.principal("bob")).roles == {"operator", "viewer"}
    assert added.to_dict()["roles"] == ["approver"]


async def test_users__update_changes_only_what_is_given(app: App, identity: Identity) -> None:
    await identity.add_user("alice", name="Alice", email="a@x.io", actor="t")
    await identity.add_user("bob", slack_id="U2", actor="t")
    updated = await identity.update_user("alice", slack_id="U1", email="", actor="admin")
    assert (updated.name, updated.email, updated.slack_id) == ("Alice", None, "U1")
    assert await identity.get_user("alice") == updated
    assert await identity.user_by_slack_id("U1") == updated
    assert await identity.update_user("alice", name="Alice", actor="admin") == updated
    with pytest.raises(UserExistsError):
        await identity.update_user("alice", slack_id="U2", actor="admin")
    with pytest.raises(UnknownUserError):
        await identity.update_user("carol", name="C", actor="admin")
    entries = await AuditLog(app.store, app.clock).entries()
    assert [(e.action, e.data) for e in entries if e.action == "user.update"] == [
        ("user.update", {"email": None, "slack_id": "U1"})
    ]


async def test_users__taken_ids_bad_names_and_roles_are_refused(identity: Identity) -> None:
    await identity.add_user("alice", slack_id="U01", actor="t")
    with pytest.raises(UserExistsError):
        await identity.add_user("alice", actor="t")
    with pytest.raises(UserExistsError, match="Slack id"):
        await identity.add_user("bob", slack_id="U01", actor="t")
    for bad in ("", "cli:alice", "a b", "-x", "x" * 129):
        with pytest.raises(InvalidNameError):
            await identity.add_user(bad, actor="t")
    with pytest.raises(UnknownRoleError):
        await identity.add_user("carol", roles=["root"], actor="t")
    assert [u.id for u in await identity.list_users()] == ["alice"]


async def test_grant_and_revoke__change_the_principal_once(identity: Identity) -> None:
    await identity.add_user("alice", actor="t")
    assert (await identity.principal("alice")).roles == frozenset()
    assert await identity.grant("alice", "operator", actor="admin") is True
    assert await identity.grant("alice", "operator", actor="admin") is False
    assert (await identity.principal("alice")).has("viewer")
    assert await identity.revoke("alice", "operator", actor="admin") is True
    assert await identity.revoke("alice", "operator", actor="admin") is False
    assert not (await identity.principal("alice")).has("viewer")
    with pytest.raises(UnknownUserError):
        await identity.grant("nobody", "viewer", actor="admin")
    with pytest.raises(UnknownUserError):
        await identity.principal("nobody")
    with pytest.raises(UnknownRoleError):
        await identity.grant("alice", "superuser", actor="admin")


async def test_disable__removes_every_role_until_enabled(identity: Identity) -> None:
    await identity.add_user("alice", roles=["admin"], actor="t")
    assert await identity.disable("alice", actor="t") is True
    assert await identity.disable("alice", actor="t") is False
    assert (await identity.principal("alice")).roles == frozenset()
    assert await identity.enable("alice", actor="t") is True
    assert (await identity.principal("alice")).has("admin")


async def test_groups__members_and_principal_groups(identity: Identity) -> None:
    for user in ("alice", "bob"):
        await identity.add_user(user, actor="t")
    assert await identity.add_to_group("bob", "oncall", actor="t") is True
    assert await identity.add_to_group("alice", "oncall", actor="t") is True
    assert await identity.add_to_group("alice", "oncall", actor="t") is False
    await identity.add_to_group("alice", "dba", actor="t")
    assert await identity.members("oncall") == ["alice", "bob"]
    assert await identity.members("nobody-here") == []
    assert (await identity.principal("alice")).groups == {"oncall", "dba"}
    assert await identity.groups() == {"dba": ["alice"], "oncall": ["alice", "bob"]}
    assert await identity.remove_from_group("alice", "oncall", actor="t") is True
    assert await identity.remove_from_group("alice", "oncall", actor="t") is False
    assert await identity.members("oncall") == ["bob"]
    with pytest.raises(UnknownUserError):
        await identity.add_to_group("carol", "oncall", actor="t")
    with pytest.raises(InvalidNameError):
        await identity.add_to_group("bob", "on call", actor="t")


async def test_changes__are_audited_only_when_something_changed(
    app: App, identity: Identity
) -> None:
    await identity.add_user("alice", roles=["viewer"], actor="cli:root")
    await identity.grant("alice", "approver", actor="bob")
    await identity.grant("alice", "approver", actor="bob")  # no change, no entry
    await identity.add_to_group("alice", "oncall", actor="bob")
    await identity.revoke("alice", "viewer", actor="bob")
    await identity.disable("alice", actor="bob")
    entries = await AuditLog(app.store, app.clock).entries()
    assert [(e.actor, e.action, e.subject, e.data) for e in entries] == [
        (
            "cli:root",
            "user.add",
            "user:alice",
            {"name": None, "email": None, "slack_id": None, "roles": ["viewer"]},
        ),
        ("bob", "role.grant", "user:alice", {"role": "approver"}),
        ("bob", "group.add", "group:oncall", {"user": "alice"}),
        ("bob", "role.revoke", "user:alice", {"role": "viewer"}),
        ("bob", "user.disable", "user:alice", {}),
    ]


# --- tokens ------------------------------------------------------------------------------------


async def test_tokens__are_stored_hashed_never_in_plain(
    app: App, identity: Identity, db_url: str
) -> None:
    await identity.add_user("alice", roles=["operator"], actor="t")
    token = await identity.create_token("alice", name="laptop", actor="t")
    principal = await identity.authenticate(token)
    assert principal is not None and principal.user == "alice"
    await app.close()  # everything written out (SQLite: the WAL too)
    stored = everything_stored(db_url)
    assert hash_token(token).encode() in stored  # the check itself can see the database
    assert token.encode() not in stored
    secret = token.removeprefix("opsloom_")
    assert secret.encode() not in stored
    rows = execute(db_url, "SELECT hash FROM api_tokens")
    assert rows == [(hash_token(token),)]
    await app.open()


async def test_tokens__unknown_revoked_and_expired_are_refused(
    app: App, identity: Identity
) -> None:
    clock = clock_of(app)
    await identity.add_user("alice", roles=["viewer"], actor="t")
    kept = await identity.create_token("alice", name="kept", actor="t")
    record, revoked = await identity.issue_token("alice", name="gone", actor="t")
    expiring = await identity.create_token(
        "alice", name="short", actor="t", expires_at=clock.now() + 30
    )
    for token in (kept, revoked, expiring):
        assert await identity.authenticate(token) is not None
    assert await identity.revoke_token(record.id, actor="t") is True
    assert await identity.revoke_token(record.id, actor="t") is False
    assert await identity.authenticate(revoked) is None
    assert await identity.authenticate(expiring) is not None
    clock.advance(30)
    assert await identity.authenticate(expiring) is None
    assert await identity.authenticate(kept) is not None
    for bogus in ("", "opsloom_nope", kept + "x", "x" * 10_000):
        assert await identity.authenticate(bogus) is None
    with pytest.raises(TokenNotFoundError):
        await identity.revoke_token("missing", actor="t")
    with pytest.raises(UnknownUserError):
        await identity.create_token("nobody", name="x", actor="t")
    listed = {t.name: t for t in await identity.tokens("alice")}
    assert listed["gone"].revoked_at is not None
    assert listed["short"].expires_at == clock.now()
    assert not listed["short"].active(clock.now())
    assert listed["kept"].active(clock.now())


async def test_tokens__of_a_disabled_user_are_refused(identity: Identity) -> None:
    await identity.add_user("alice", roles=["admin"], actor="t")
    token = await identity.create_token("alice", name="x", actor="t")
    await identity.disable("alice", actor="t")
    assert await identity.authenticate(token) is None
    await identity.enable("alice", actor="t")
    assert await identity.authenticate(token) is not None


async def test_tokens__use_is_recorded_at_most_once_a_minute(app: App, identity: Identity) -> None:
    clock = clock_of(app)
    await identity.add_user("alice", roles=["viewer"], actor="t")
    record, token = await identity.issue_token("alice", name="x", actor="t")
    assert record.last_used_at is None
    first = clock.now()
    await identity.authenticate(token)
    clock.advance(10)
    await identity.authenticate(token)
    assert (await identity.tokens("alice"))[0].last_used_at == first
    clock.advance(60)
    await identity.authenticate(token)
    assert (await identity.tokens("alice"))[0].last_used_at == clock.now()


# --- first admin -------------------------------------------------------------------------------


async def test_bootstrap__creates_the_first_admin_once(app: App, identity: Identity) -> None:
    token = await identity.bootstrap_admin()
    assert token is not None
    principal = await identity.authenticate(token)
    assert principal == Principal(BOOTSTRAP_USER, frozenset(ROLES), frozenset())
    assert await identity.bootstrap_admin() is None
    actions = [e.action for e in await AuditLog(app.store, app.clock).entries()]
    assert actions == ["user.add", "token.create"]


async def test_bootstrap__does_nothing_when_users_exist(identity: Identity) -> None:
    await identity.add_user("alice", actor="t")
    assert await identity.bootstrap_admin() is None
    assert await identity.get_user(BOOTSTRAP_USER) is None


async def test_bootstrap__two_processes_at_once_make_one_admin(db_url: str) -> None:
    apps = [App(db_url, worker=None, clock=FakeClock()) for _ in range(2)]
    for app in apps:
        await app.open()
    try:
        tokens = await asyncio.gather(
            *(Identity(app.store, app.clock).bootstrap_admin() for app in apps)
        )
        assert len([t for t in tokens if t is not None]) == 1
        assert len(await Identity(apps[0].store, apps[0].clock).tokens()) == 1
    finally:
        for app in apps:
            await app.close()
