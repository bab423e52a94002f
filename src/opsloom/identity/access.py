"""Who may do what: users, groups, roles and API tokens.

Four roles, from least to most power: ``viewer`` reads, ``operator`` starts, signals, cancels
and retries runs and sends events, ``approver`` decides the human tasks assigned to them or
their groups, ``admin`` manages users and tokens and may do everything. Roles imply others:
``admin`` implies all of them; ``operator`` and ``approver`` each imply ``viewer``.

API tokens are random strings shown once, when created; the store keeps only their SHA-256,
so a copy of the database gives no usable token. Every change (a user added or disabled, a
role granted or revoked, a membership, a token created or revoked) is written together with
its entry in the audit log.

Example:
    >>> identity = Identity(app.store, app.clock)                       # doctest: +SKIP
    >>> await identity.add_user("alice", roles=["approver"], actor="cli:root")
    >>> token = await identity.create_token("alice", name="laptop", actor="cli:root")
    >>> (await identity.authenticate(token)).has("viewer")
    True
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from opsloom.clock import Clock
from opsloom.errors import InputError, OpsloomError
from opsloom.store.audit import AuditDraft
from opsloom.store.base import Store
from opsloom.store.identity import NewToken, TokenRecord, User, UserConflict

__all__ = [
    "BOOTSTRAP_USER",
    "ROLES",
    "AccessDeniedError",
    "Identity",
    "IdentityError",
    "InvalidNameError",
    "Principal",
    "TokenNotFoundError",
    "TokenRecord",
    "UnknownRoleError",
    "UnknownUserError",
    "User",
    "UserExistsError",
    "effective_roles",
    "hash_token",
]

ROLES = ("viewer", "operator", "approver", "admin")

_IMPLIES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"viewer"}),
    "operator": frozenset({"operator", "viewer"}),
    "approver": frozenset({"approver", "viewer"}),
    "admin": frozenset(ROLES),
}

#: The user ``bootstrap_admin`` creates in a new database.
BOOTSTRAP_USER = "admin"
#: Who the first admin's creation is attributed to in the audit log.
BOOTSTRAP_ACTOR = "system:bootstrap"

#: Ids of users and groups: no colon, so they never look like ``cli:…`` or ``system:…`` actors.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_TOKEN_PREFIX = "opsloom_"
#: Longest bearer value worth hashing; anything longer is refused outright.
_MAX_TOKEN_LENGTH = 512
#: ``last_used_at`` is written at most this often per token, not on every request.
_TOUCH_SECONDS = 60.0


# --- errors --------------------------------------------------------------------------------


class IdentityError(OpsloomError):
    """A user, group, role or token operation cannot be done."""

    code = "identity_error"


class UnknownUserError(IdentityError):
    """No user with that id exists."""

    code = "user_not_found"


class UserExistsError(IdentityError):
    """A user with that id (or that Slack id) exists already."""

    code = "user_exists"


class TokenNotFoundError(IdentityError):
    """No API token with that id exists."""

    code = "token_not_found"


class UnknownRoleError(InputError):
    """The role is not one of viewer, operator, approver, admin."""

    code = "unknown_role"


class InvalidNameError(InputError):
    """A user or group id is not a valid name."""

    code = "invalid_name"


class AccessDeniedError(IdentityError):
    """The caller is authenticated but lacks the role the operation needs."""

    code = "forbidden"

    def __init__(self, message: str, *, role: str) -> None:
        super().__init__(message)
        self.role = role


# --- principals ----------------------------------------------------------------------------


def check_role(role: str) -> str:
    """``role`` itself when it is one of :data:`ROLES`; ``UnknownRoleError`` otherwise."""
    if role not in _IMPLIES:
        raise UnknownRoleError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return role


def effective_roles(roles: Iterable[str]) -> frozenset[str]:
    """The granted roles with every role they imply."""
    out: set[str] = set()
    for role in roles:
        out |= _IMPLIES[check_role(role)]
    return frozenset(out)


@dataclass(frozen=True)
class Principal:
    """Who is acting, as the API and the approvals see them.

    Attributes:
        user: the user id (login name).
        roles: effective roles (granted ones and those they imply).
        groups: the groups the user belongs to.
    """

    user: str
    roles: frozenset[str]
    groups: frozenset[str] = frozenset()

    def has(self, role: str) -> bool:
        """Whether the principal holds ``role`` (``UnknownRoleError`` for a misspelt role)."""
        return check_role(role) in self.roles


def principal_of(user: User) -> Principal:
    """The principal of a stored user; a disabled user holds no role."""
    roles = frozenset() if user.disabled else effective_roles(user.roles)
    return Principal(user=user.id, roles=roles, groups=user.groups)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) of a token's text: all the store ever keeps of it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(value: str, what: str) -> str:
    """``value`` when it is a valid user or group id; ``InvalidNameError`` otherwise."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidNameError(
            f"invalid {what} {value!r}: use 1-128 letters, digits and . _ @ + -, "
            "starting with a letter or digit"
        )
    return value


def _check_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor.strip():
        raise InputError("every change needs an actor (who is making it)")
    return actor


# --- the service ---------------------------------------------------------------------------


class Identity:
    """Users, groups, roles and tokens over a store; used by the API, the CLI and approvals.

    Args:
        store: an open store.
        clock: dates changes, checks token expiry.
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def _draft(self, actor: str, action: str, subject: str, **data: Any) -> AuditDraft:
        return AuditDraft(_check_actor(actor), action, subject, data, self._clock.now())

    # --- users -------------------------------------------------------------------------------

    async def add_user(
        self,
        user: str,
        *,
        name: str | None = None,
        email: str | None = None,
        slack_id: str | None = None,
        roles: Iterable[str] = (),
        actor: str,
    ) -> User:
        """Create a user with directly granted ``roles``.

        Raises:
            UserExistsError: the id, or the Slack id, is taken.
            InvalidNameError / UnknownRoleError: bad id or role.
        """
        check_name(user, "user id")
        granted = frozenset(check_role(role) for role in roles)
        now = self._clock.now()
        record = User(
            id=user,
            name=name,
            email=email,
            slack_id=slack_id or None,
            roles=granted,
            created_at=now,
            updated_at=now,
        )
        draft = self._draft(
            actor,
            "user.add",
            f"user:{user}",
            name=name,
            email=email,
            slack_id=record.slack_id,
            roles=sorted(granted),
        )
        conflict = await self._store.create_user(record, [draft])
        if conflict is UserConflict.SLACK_ID_TAKEN:
            raise UserExistsError(f"another user has the Slack id {slack_id!r}")
        if conflict is not None:
            raise UserExistsError(f"user {user!r} exists already")
        return record

    async def update_user(
        self,
        user: str,
        *,
        name: str | None = None,
        email: str | None = None,
        slack_id: str | None = None,
        actor: str,
    ) -> User:
        """Change a user's name, e-mail or Slack id: None keeps a field, ``""`` clears it.

        Raises:
            UnknownUserError: no such user.
            UserExistsError: another user has that Slack id.
        """
        found = await self._store.get_user(user)
        if found is None:
            raise UnknownUserError(f"no user {user!r}")
        new_name = found.name if name is None else name or None
        new_email = found.email if email is None else email or None
        new_slack_id = found.slack_id if slack_id is None else slack_id or None
        changes = {
            field: value
            for field, value in (
                ("name", new_name),
                ("email", new_email),
                ("slack_id", new_slack_id),
            )
            if value != getattr(found, field)
        }
        if not changes:
            return found
        updated = replace(
            found,
            name=new_name,
            email=new_email,
            slack_id=new_slack_id,
            updated_at=self._clock.now(),
        )
        draft = self._draft(actor, "user.update", f"user:{user}", **changes)
        conflict = await self._store.update_user(updated, draft)
        if conflict is UserConflict.MISSING:
            raise UnknownUserError(f"no user {user!r}")
        if conflict is not None:
            raise UserExistsError(f"another user has the Slack id {slack_id!r}")
        return updated

    async def get_user(self, user: str) -> User | None:
        """One user (with direct roles and groups), or None."""
        return await self._store.get_user(user)

    async def user_by_slack_id(self, slack_id: str) -> User | None:
        """The user with this Slack id, or None (for chat buttons and commands)."""
        return await self._store.user_by_slack_id(slack_id)

    async def list_users(self) -> list[User]:
        """Every user, by id."""
        return await self._store.list_users()

    async def principal(self, user: str) -> Principal:
        """The principal of a user (no role when disabled); ``UnknownUserError`` if none."""
        found = await self._store.get_user(user)
        if found is None:
            raise UnknownUserError(f"no user {user!r}")
        return principal_of(found)

    async def disable(self, user: str, *, actor: str) -> bool:
        """Disable a user: their tokens stop working and they hold no role. Whether it changed."""
        return await self._set_disabled(user, True, actor)

    async def enable(self, user: str, *, actor: str) -> bool:
        """Enable a disabled user again. Whether it changed."""
        return await self._set_disabled(user, False, actor)

    async def _set_disabled(self, user: str, disabled: bool, actor: str) -> bool:
        action = "user.disable" if disabled else "user.enable"
        changed = await self._store.set_user_disabled(
            user, disabled, self._draft(actor, action, f"user:{user}")
        )
        return self._changed(changed, user)

    async def grant(self, user: str, role: str, *, actor: str) -> bool:
        """Grant ``role`` to ``user``; whether they did not hold it directly before."""
        draft = self._draft(actor, "role.grant", f"user:{user}", role=check_role(role))
        return self._changed(await self._store.change_role(user, role, True, draft), user)

    async def revoke(self, user: str, role: str, *, actor: str) -> bool:
        """Revoke a directly granted ``role``; whether ``user`` held it."""
        draft = self._draft(actor, "role.revoke", f"user:{user}", role=check_role(role))
        return self._changed(await self._store.change_role(user, role, False, draft), user)

    # --- groups ------------------------------------------------------------------------------

    async def add_to_group(self, user: str, group: str, *, actor: str) -> bool:
        """Make ``user`` a member of ``group``; whether they were not one already."""
        draft = self._draft(actor, "group.add", f"group:{check_name(group, 'group')}", user=user)
        return self._changed(await self._store.change_membership(user, group, True, draft), user)

    async def remove_from_group(self, user: str, group: str, *, actor: str) -> bool:
        """Remove ``user`` from ``group``; whether they were a member."""
        draft = self._draft(actor, "group.remove", f"group:{group}", user=user)
        return self._changed(await self._store.change_membership(user, group, False, draft), user)

    async def members(self, group: str) -> list[str]:
        """The ids of the members of ``group``, sorted (disabled users included)."""
        return await self._store.group_members(group)

    async def groups(self) -> dict[str, list[str]]:
        """Every group with members, and their ids."""
        return await self._store.list_groups()

    # --- tokens ------------------------------------------------------------------------------

    async def create_token(
        self, user: str, *, name: str, actor: str, expires_at: float | None = None
    ) -> str:
        """A new API token for ``user``: its text, which is never shown again."""
        _, text = await self.issue_token(user, name=name, actor=actor, expires_at=expires_at)
        return text

    async def issue_token(
        self,
        user: str,
        *,
        name: str,
        actor: str,
        expires_at: float | None = None,
        expires_in: float | None = None,
    ) -> tuple[TokenRecord, str]:
        """Like :meth:`create_token`, also returning the stored record (for its id).

        ``expires_in`` (seconds from now) is another way to give ``expires_at``.
        """
        now = self._clock.now()
        if expires_in is not None:
            expires_at = now + expires_in
        if expires_at is not None and expires_at <= now:
            raise InputError("a token must expire in the future")
        name = name.strip() if isinstance(name, str) else ""
        if not name or len(name) > 100:
            raise InputError("a token needs a name (a label of at most 100 characters)")
        new, text = _new_token(user, name, now, expires_at)
        draft = self._draft(
            actor, "token.create", f"token:{new.id}", user=user, name=name, expires_at=expires_at
        )
        if not await self._store.create_token(new, draft):
            raise UnknownUserError(f"no user {user!r}")
        record = TokenRecord(new.id, user, name, now, expires_at)
        return record, text

    async def tokens(self, user: str | None = None) -> list[TokenRecord]:
        """Every token (of ``user``), oldest first; never their text."""
        return await self._store.list_tokens(user)

    async def authenticate(self, token: str) -> Principal | None:
        """The principal a bearer token acts as; None when unknown, revoked or expired.

        A token of a disabled or removed user is refused too.
        """
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            return None
        record = await self._store.token_by_hash(hash_token(token))
        now = self._clock.now()
        if record is None or not record.active(now):
            return None
        user = await self._store.get_user(record.user)
        if user is None or user.disabled:
            return None
        if record.last_used_at is None or now - record.last_used_at >= _TOUCH_SECONDS:
            await self._store.touch_token(record.id, now)
        return principal_of(user)

    async def revoke_token(self, token_id: str, *, actor: str) -> bool:
        """Revoke a token for good; whether it was active (``TokenNotFoundError`` if none)."""
        found = await self._store.get_token(token_id)
        user = None if found is None else found.user
        draft = self._draft(actor, "token.revoke", f"token:{token_id}", user=user)
        changed = await self._store.revoke_token(token_id, draft)
        if changed is None:
            raise TokenNotFoundError(f"no API token {token_id!r}")
        return changed

    # --- first start -------------------------------------------------------------------------

    async def bootstrap_admin(self) -> str | None:
        """Create the first admin (:data:`BOOTSTRAP_USER`) and a token for it in a new database.

        Returns the token's text, or None when the database has users already (nothing is
        changed then). Safe when several processes start on a new database at once: one of
        them creates the admin.
        """
        now = self._clock.now()
        admin = User(
            id=BOOTSTRAP_USER,
            name="Administrator",
            roles=frozenset({"admin"}),
            created_at=now,
            updated_at=now,
        )
        new, text = _new_token(BOOTSTRAP_USER, "bootstrap", now, None)
        audit = [
            self._draft(BOOTSTRAP_ACTOR, "user.add", f"user:{BOOTSTRAP_USER}", roles=["admin"]),
            self._draft(
                BOOTSTRAP_ACTOR,
                "token.create",
                f"token:{new.id}",
                user=BOOTSTRAP_USER,
                name="bootstrap",
                expires_at=None,
            ),
        ]
        conflict = await self._store.create_user(admin, audit, token=new, first=True)
        return text if conflict is None else None

    @staticmethod
    def _changed(changed: bool | None, user: str) -> bool:
        if changed is None:
            raise UnknownUserError(f"no user {user!r}")
        return changed


def _new_token(user: str, name: str, now: float, expires_at: float | None) -> tuple[NewToken, str]:
    text = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = secrets.token_hex(8)
    return NewToken(token_id, user, name, hash_token(text), now, expires_at), text
