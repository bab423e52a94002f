"""Users, roles, groups and API tokens as the store keeps them: records and neutral SQL.

Each change of an identity is written with its audit entry in one transaction, and only when
something
actually changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opsloom.clock import to_datetime
from opsloom.store.audit import AuditDraft, AuditOps, append_audit_entry
from opsloom.store.tx import Row, Tx

USER_COLUMNS = "id, name, email, slack_id, disabled, created_at, updated_at"
SELECT_USER = f"SELECT {USER_COLUMNS} FROM users WHERE id = ?"
SELECT_USER_BY_SLACK_ID = f"SELECT {USER_COLUMNS} FROM users WHERE slack_id = ?"
SELECT_USERS = f"SELECT {USER_COLUMNS} FROM users ORDER BY id"
ANY_USER = "SELECT 1 FROM users LIMIT 1"
USER_EXISTS = "SELECT 1 FROM users WHERE id = ?"
SLACK_ID_TAKEN = "SELECT 1 FROM users WHERE slack_id = ?"
INSERT_USER = f"INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
SET_DISABLED = "UPDATE users SET disabled = ?, updated_at = ? WHERE id = ? AND disabled <> ?"
SET_PROFILE = "UPDATE users SET name = ?, email = ?, slack_id = ?, updated_at = ? WHERE id = ?"
SLACK_ID_OF_OTHER = "SELECT 1 FROM users WHERE slack_id = ? AND id <> ?"

ROLES_OF = "SELECT role FROM user_roles WHERE user_id = ? ORDER BY role"
ALL_ROLES = "SELECT user_id, role FROM user_roles"
INSERT_ROLE = (
    "INSERT INTO user_roles (user_id, role, granted_at, granted_by) VALUES (?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
DELETE_ROLE = "DELETE FROM user_roles WHERE user_id = ? AND role = ?"

GROUPS_OF = "SELECT group_name FROM group_members WHERE user_id = ? ORDER BY group_name"
MEMBERS = "SELECT user_id FROM group_members WHERE group_name = ? ORDER BY user_id"
ALL_MEMBERS = "SELECT group_name, user_id FROM group_members ORDER BY group_name, user_id"
INSERT_MEMBER = (
    "INSERT INTO group_members (group_name, user_id, added_at, added_by) VALUES (?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
DELETE_MEMBER = "DELETE FROM group_members WHERE group_name = ? AND user_id = ?"

TOKEN_COLUMNS = "id, user_id, name, created_at, expires_at, revoked_at, last_used_at"
INSERT_TOKEN = (
    "INSERT INTO api_tokens (id, user_id, name, hash, created_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
SELECT_TOKEN = f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?"
TOKEN_BY_HASH = f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?"
SELECT_TOKENS = f"SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"
TOKENS_OF = f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = ? ORDER BY created_at, id"
REVOKE_TOKEN = "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
TOUCH_TOKEN = "UPDATE api_tokens SET last_used_at = ? WHERE id = ?"


class UserConflict(StrEnum):
    """Why a user was not created (or changed)."""

    EXISTS = "exists"  # a user with that id exists
    SLACK_ID_TAKEN = "slack_id_taken"  # another user has that Slack id
    NOT_FIRST = "not_first"  # the first-user-only creation found users already
    MISSING = "missing"  # no user with that id (to change)


@dataclass(frozen=True, slots=True)
class User:
    """A person (or automation) that acts through the API, the CLI or chat.

    Attributes:
        id: the login name, unique and permanent (users are disabled, never deleted).
        name / email / slack_id: how to show and reach them; ``slack_id`` is unique.
        disabled: a disabled user's tokens are refused and they hold no role.
        roles: the roles granted directly (see ``opsloom.identity.access`` for implied ones).
        groups: the groups the user is a member of.
        created_at / updated_at: epoch seconds.
    """

    id: str
    name: str | None = None
    email: str | None = None
    slack_id: str | None = None
    disabled: bool = False
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    created_at: float = 0.0
    updated_at: float = 0.0

    def params(self) -> tuple[Any, ...]:
        """The values of an INSERT, in :data:`USER_COLUMNS` order."""
        return (
            self.id,
            self.name,
            self.email,
            self.slack_id,
            int(self.disabled),
            self.created_at,
            self.updated_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON form (times as ISO 8601 UTC)."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "slack_id": self.slack_id,
            "disabled": self.disabled,
            "roles": sorted(self.roles),
            "groups": sorted(self.groups),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def user_from_row(
    row: tuple[Any, ...], roles: list[str] | None = None, groups: list[str] | None = None
) -> User:
    """A user from a row of :data:`USER_COLUMNS` plus its roles and groups."""
    id_, name, email, slack_id, disabled, created_at, updated_at = row
    return User(
        id=id_,
        name=name,
        email=email,
        slack_id=slack_id,
        disabled=bool(disabled),
        roles=frozenset(roles or ()),
        groups=frozenset(groups or ()),
        created_at=float(created_at),
        updated_at=float(updated_at),
    )


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token to store: its id, owner, label and the SHA-256 (hex) of its text."""

    id: str
    user: str
    name: str
    hash: str
    created_at: float
    expires_at: float | None = None

    def params(self) -> tuple[Any, ...]:
        """The values of :data:`INSERT_TOKEN`."""
        return (self.id, self.user, self.name, self.hash, self.created_at, self.expires_at)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored API token, without its hash.

    Attributes:
        id: public identifier (listing, revoking); not a secret.
        user: the user the token acts as.
        name: a label (``ci``, ``laptop``).
        created_at / expires_at / revoked_at / last_used_at: epoch seconds or None.
    """

    id: str
    user: str
    name: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None

    def active(self, now: float) -> bool:
        """Whether the token is neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON form (times as ISO 8601 UTC)."""
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "last_used_at": _iso(self.last_used_at),
        }


def token_from_row(row: Row) -> TokenRecord:
    """A token from a row of :data:`TOKEN_COLUMNS`."""
    id_, user, name, created_at, expires_at, revoked_at, last_used_at = row
    return TokenRecord(
        id=id_,
        user=user,
        name=name,
        created_at=float(created_at),
        expires_at=_float(expires_at),
        revoked_at=_float(revoked_at),
        last_used_at=_float(last_used_at),
    )


def groups_from_rows(rows: list[Row]) -> dict[str, list[str]]:
    """``{group: [user, …]}`` from rows of (group_name, user_id) ordered by group."""
    groups: dict[str, list[str]] = {}
    for group, user in rows:
        groups.setdefault(group, []).append(user)
    return groups


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _iso(ts: float | None) -> str | None:
    moment = to_datetime(ts)
    return None if moment is None else moment.isoformat()


async def _user(tx: Tx, row: Row | None) -> User | None:
    if row is None:
        return None
    roles = [r[0] for r in await tx.all(ROLES_OF, (row[0],))]
    groups = [g[0] for g in await tx.all(GROUPS_OF, (row[0],))]
    return user_from_row(row, roles, groups)


async def _exists(tx: Tx, user_id: str) -> bool:
    return await tx.one(USER_EXISTS, (user_id,)) is not None


async def _list_users(tx: Tx) -> list[User]:
    roles: dict[str, list[str]] = {}
    for user_id, role in await tx.all(ALL_ROLES):
        roles.setdefault(user_id, []).append(role)
    groups: dict[str, list[str]] = {}
    for group, user_id in await tx.all(ALL_MEMBERS):
        groups.setdefault(user_id, []).append(group)
    return [
        user_from_row(row, roles.get(row[0]), groups.get(row[0]))
        for row in await tx.all(SELECT_USERS)
    ]


async def _audited(
    tx: Tx, user_id: str, sql: str, params: Row, audit: AuditDraft, key: bytes | None
) -> bool | None:
    """Run ``sql`` on an existing user: None (no user), False (nothing changed) or True."""
    if not await _exists(tx, user_id):
        return None
    if await tx.execute(sql, params) != 1:
        return False
    await append_audit_entry(tx, audit, key)
    return True


class IdentityOps(AuditOps):
    """The user, group and token operations of :class:`~opsloom.store.base.Store`."""

    async def create_user(
        self,
        user: User,
        audit: Sequence[AuditDraft],
        *,
        token: NewToken | None = None,
        first: bool = False,
    ) -> UserConflict | None:
        key = self.audit_seal_key()

        async def create(tx: Tx) -> UserConflict | None:
            if first:
                # Two processes bootstrapping a new database at once: the second waits here
                # for the first to commit, then finds its user (SQLite's writer is alone).
                lock = tx.lock("IN SHARE ROW EXCLUSIVE MODE")
                if lock:
                    await tx.execute(f"LOCK TABLE users{lock}")
                if await tx.one(ANY_USER) is not None:
                    return UserConflict.NOT_FIRST
            if await _exists(tx, user.id):
                return UserConflict.EXISTS
            if user.slack_id is not None and await tx.one(SLACK_ID_TAKEN, (user.slack_id,)):
                return UserConflict.SLACK_ID_TAKEN
            await tx.execute(INSERT_USER, user.params())
            actor = audit[0].actor if audit else "system"
            for role in sorted(user.roles):
                await tx.execute(INSERT_ROLE, (user.id, role, user.created_at, actor))
            if token is not None:
                await tx.execute(INSERT_TOKEN, token.params())
            for draft in audit:
                await append_audit_entry(tx, draft, key)
            return None

        return await self.write(create)

    async def get_user(self, user_id: str) -> User | None:
        return await self.read(lambda tx: _one_user(tx, SELECT_USER, user_id))

    async def user_by_slack_id(self, slack_id: str) -> User | None:
        return await self.read(lambda tx: _one_user(tx, SELECT_USER_BY_SLACK_ID, slack_id))

    async def list_users(self) -> list[User]:
        # One snapshot, so a user's roles and groups are those of the listed user.
        return await self.read(_list_users, snapshot=True)

    async def update_user(self, user: User, audit: AuditDraft) -> UserConflict | None:
        key = self.audit_seal_key()

        async def update(tx: Tx) -> UserConflict | None:
            if not await _exists(tx, user.id):
                return UserConflict.MISSING
            if user.slack_id is not None and await tx.one(
                SLACK_ID_OF_OTHER, (user.slack_id, user.id)
            ):
                return UserConflict.SLACK_ID_TAKEN
            await tx.execute(SET_PROFILE, (user.name, user.email, user.slack_id, audit.at, user.id))
            await append_audit_entry(tx, audit, key)
            return None

        return await self.write(update)

    async def set_user_disabled(
        self, user_id: str, disabled: bool, audit: AuditDraft
    ) -> bool | None:
        flag = int(disabled)
        return await self._change(user_id, SET_DISABLED, (flag, audit.at, user_id, flag), audit)

    async def change_role(
        self, user_id: str, role: str, granted: bool, audit: AuditDraft
    ) -> bool | None:
        if granted:
            params = (user_id, role, audit.at, audit.actor)
            return await self._change(user_id, INSERT_ROLE, params, audit)
        return await self._change(user_id, DELETE_ROLE, (user_id, role), audit)

    async def change_membership(
        self, user_id: str, group: str, member: bool, audit: AuditDraft
    ) -> bool | None:
        if member:
            params = (group, user_id, audit.at, audit.actor)
            return await self._change(user_id, INSERT_MEMBER, params, audit)
        return await self._change(user_id, DELETE_MEMBER, (group, user_id), audit)

    def _change(
        self, user_id: str, sql: str, params: Row, audit: AuditDraft
    ) -> Awaitable[bool | None]:
        key = self.audit_seal_key()
        return self.write(lambda tx: _audited(tx, user_id, sql, params, audit, key))

    async def group_members(self, group: str) -> list[str]:
        return [row[0] for row in await self.read(lambda tx: tx.all(MEMBERS, (group,)))]

    async def list_groups(self) -> dict[str, list[str]]:
        return groups_from_rows(await self.read(lambda tx: tx.all(ALL_MEMBERS)))

    async def create_token(self, token: NewToken, audit: AuditDraft) -> bool:
        key = self.audit_seal_key()

        async def create(tx: Tx) -> bool:
            if not await _exists(tx, token.user):
                return False
            await tx.execute(INSERT_TOKEN, token.params())
            await append_audit_entry(tx, audit, key)
            return True

        return await self.write(create)

    async def get_token(self, token_id: str) -> TokenRecord | None:
        row = await self.read(lambda tx: tx.one(SELECT_TOKEN, (token_id,)))
        return None if row is None else token_from_row(row)

    async def token_by_hash(self, digest: str) -> TokenRecord | None:
        row = await self.read(lambda tx: tx.one(TOKEN_BY_HASH, (digest,)))
        return None if row is None else token_from_row(row)

    async def list_tokens(self, user_id: str | None = None) -> list[TokenRecord]:
        text, params = (SELECT_TOKENS, ()) if user_id is None else (TOKENS_OF, (user_id,))
        return [token_from_row(row) for row in await self.read(lambda tx: tx.all(text, params))]

    async def revoke_token(self, token_id: str, audit: AuditDraft) -> bool | None:
        key = self.audit_seal_key()

        async def revoke(tx: Tx) -> bool | None:
            if await tx.one(SELECT_TOKEN, (token_id,)) is None:
                return None
            if await tx.execute(REVOKE_TOKEN, (audit.at, token_id)) != 1:
                return False
            await append_audit_entry(tx, audit, key)
            return True

        return await self.write(revoke)

    async def touch_token(self, token_id: str, now: float) -> None:
        await self.write(lambda tx: tx.execute(TOUCH_TOKEN, (now, token_id)))


async def _one_user(tx: Tx, query: str, key: str) -> User | None:
    return await _user(tx, await tx.one(query, (key,)))
