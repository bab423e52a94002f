"""Users, roles, groups and API tokens as the store keeps them: records and neutral SQL.

Statements use ``?`` placeholders; the PostgreSQL mixin swaps them for ``%s``. Each change of
an identity is written with its audit entry in one transaction by the dialect mixins
(``dialects/sqlite_identity.py``, ``dialects/postgres_identity.py``), and only when something
actually changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opsloom.clock import to_datetime

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


def token_from_row(row: tuple[Any, ...]) -> TokenRecord:
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


def groups_from_rows(rows: list[tuple[Any, ...]]) -> dict[str, list[str]]:
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
