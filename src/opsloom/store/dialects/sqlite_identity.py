"""Users, roles, groups, API tokens and the audit log in the SQLite store (a mixin of
:class:`SqliteStore`).

Every change goes through the group-commit writer, whose transactions start with ``BEGIN
IMMEDIATE``: one process at a time reads the audit head and appends after it, so the chain
cannot fork. A change and its audit entry are written by one operation, in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from opsloom.store.audit import (
    HEAD,
    INSERT_ENTRY,
    MOVE_HEAD,
    AuditDraft,
    AuditEntry,
    entries_query,
    entry_from_row,
)
from opsloom.store.identity import (
    ALL_MEMBERS,
    ALL_ROLES,
    ANY_USER,
    DELETE_MEMBER,
    DELETE_ROLE,
    GROUPS_OF,
    INSERT_MEMBER,
    INSERT_ROLE,
    INSERT_TOKEN,
    INSERT_USER,
    MEMBERS,
    REVOKE_TOKEN,
    ROLES_OF,
    SELECT_TOKEN,
    SELECT_TOKENS,
    SELECT_USER,
    SELECT_USER_BY_SLACK_ID,
    SELECT_USERS,
    SET_DISABLED,
    SET_PROFILE,
    SLACK_ID_OF_OTHER,
    SLACK_ID_TAKEN,
    TOKEN_BY_HASH,
    TOKENS_OF,
    TOUCH_TOKEN,
    USER_EXISTS,
    NewToken,
    TokenRecord,
    User,
    UserConflict,
    groups_from_rows,
    token_from_row,
    user_from_row,
)


def append_audit_entry(conn: sqlite3.Connection, draft: AuditDraft) -> AuditEntry:
    """Append ``draft`` after the current head, inside the caller's write transaction.

    For store operations of other aggregates (a decision, a delegation) that record their
    audit entry in the transaction of the change itself.
    """
    seq, prev_hash = conn.execute(HEAD).fetchone()
    entry = draft.seal(int(seq) + 1, str(prev_hash))
    conn.execute(INSERT_ENTRY, entry.params())
    conn.execute(MOVE_HEAD, (entry.seq, entry.hash))
    return entry


def _user(conn: sqlite3.Connection, row: tuple[Any, ...] | None) -> User | None:
    if row is None:
        return None
    roles = [r[0] for r in conn.execute(ROLES_OF, (row[0],))]
    groups = [g[0] for g in conn.execute(GROUPS_OF, (row[0],))]
    return user_from_row(row, roles, groups)


def _exists(conn: sqlite3.Connection, user_id: str) -> bool:
    return conn.execute(USER_EXISTS, (user_id,)).fetchone() is not None


class SqliteIdentity:
    """Identity and audit operations; reads on the reader connection, writes through the writer."""

    def _read(self) -> sqlite3.Connection:  # provided by SqliteStore
        raise NotImplementedError

    def _write(self, op: Any) -> Any:  # provided by SqliteStore
        raise NotImplementedError

    # --- users -------------------------------------------------------------------------------

    async def create_user(
        self,
        user: User,
        audit: Sequence[AuditDraft],
        *,
        token: NewToken | None = None,
        first: bool = False,
    ) -> UserConflict | None:
        def op(conn: sqlite3.Connection) -> UserConflict | None:
            if first and conn.execute(ANY_USER).fetchone() is not None:
                return UserConflict.NOT_FIRST
            if _exists(conn, user.id):
                return UserConflict.EXISTS
            if (
                user.slack_id is not None
                and conn.execute(SLACK_ID_TAKEN, (user.slack_id,)).fetchone()
            ):
                return UserConflict.SLACK_ID_TAKEN
            conn.execute(INSERT_USER, user.params())
            actor = audit[0].actor if audit else "system"
            for role in sorted(user.roles):
                conn.execute(INSERT_ROLE, (user.id, role, user.created_at, actor))
            if token is not None:
                conn.execute(INSERT_TOKEN, token.params())
            for draft in audit:
                append_audit_entry(conn, draft)
            return None

        result: UserConflict | None = await self._write(op)
        return result

    async def get_user(self, user_id: str) -> User | None:
        conn = self._read()
        return _user(conn, conn.execute(SELECT_USER, (user_id,)).fetchone())

    async def user_by_slack_id(self, slack_id: str) -> User | None:
        conn = self._read()
        return _user(conn, conn.execute(SELECT_USER_BY_SLACK_ID, (slack_id,)).fetchone())

    async def list_users(self) -> list[User]:
        conn = self._read()
        roles: dict[str, list[str]] = {}
        for user_id, role in conn.execute(ALL_ROLES):
            roles.setdefault(user_id, []).append(role)
        groups: dict[str, list[str]] = {}
        for group, user_id in conn.execute(ALL_MEMBERS):
            groups.setdefault(user_id, []).append(group)
        return [
            user_from_row(row, roles.get(row[0]), groups.get(row[0]))
            for row in conn.execute(SELECT_USERS)
        ]

    async def update_user(self, user: User, audit: AuditDraft) -> UserConflict | None:
        def op(conn: sqlite3.Connection) -> UserConflict | None:
            if not _exists(conn, user.id):
                return UserConflict.MISSING
            if (
                user.slack_id is not None
                and conn.execute(SLACK_ID_OF_OTHER, (user.slack_id, user.id)).fetchone()
            ):
                return UserConflict.SLACK_ID_TAKEN
            params = (user.name, user.email, user.slack_id, audit.at, user.id)
            conn.execute(SET_PROFILE, params)
            append_audit_entry(conn, audit)
            return None

        result: UserConflict | None = await self._write(op)
        return result

    async def set_user_disabled(
        self, user_id: str, disabled: bool, audit: AuditDraft
    ) -> bool | None:
        def op(conn: sqlite3.Connection) -> bool | None:
            if not _exists(conn, user_id):
                return None
            flag = int(disabled)
            if conn.execute(SET_DISABLED, (flag, audit.at, user_id, flag)).rowcount != 1:
                return False
            append_audit_entry(conn, audit)
            return True

        result: bool | None = await self._write(op)
        return result

    async def change_role(
        self, user_id: str, role: str, granted: bool, audit: AuditDraft
    ) -> bool | None:
        def op(conn: sqlite3.Connection) -> bool | None:
            if not _exists(conn, user_id):
                return None
            if granted:
                cur = conn.execute(INSERT_ROLE, (user_id, role, audit.at, audit.actor))
            else:
                cur = conn.execute(DELETE_ROLE, (user_id, role))
            if cur.rowcount != 1:
                return False
            append_audit_entry(conn, audit)
            return True

        result: bool | None = await self._write(op)
        return result

    # --- groups ------------------------------------------------------------------------------

    async def change_membership(
        self, user_id: str, group: str, member: bool, audit: AuditDraft
    ) -> bool | None:
        def op(conn: sqlite3.Connection) -> bool | None:
            if not _exists(conn, user_id):
                return None
            if member:
                cur = conn.execute(INSERT_MEMBER, (group, user_id, audit.at, audit.actor))
            else:
                cur = conn.execute(DELETE_MEMBER, (group, user_id))
            if cur.rowcount != 1:
                return False
            append_audit_entry(conn, audit)
            return True

        result: bool | None = await self._write(op)
        return result

    async def group_members(self, group: str) -> list[str]:
        return [row[0] for row in self._read().execute(MEMBERS, (group,))]

    async def list_groups(self) -> dict[str, list[str]]:
        return groups_from_rows(self._read().execute(ALL_MEMBERS).fetchall())

    # --- tokens ------------------------------------------------------------------------------

    async def create_token(self, token: NewToken, audit: AuditDraft) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            if not _exists(conn, token.user):
                return False
            conn.execute(INSERT_TOKEN, token.params())
            append_audit_entry(conn, audit)
            return True

        result: bool = await self._write(op)
        return result

    async def get_token(self, token_id: str) -> TokenRecord | None:
        row = self._read().execute(SELECT_TOKEN, (token_id,)).fetchone()
        return None if row is None else token_from_row(row)

    async def token_by_hash(self, digest: str) -> TokenRecord | None:
        row = self._read().execute(TOKEN_BY_HASH, (digest,)).fetchone()
        return None if row is None else token_from_row(row)

    async def list_tokens(self, user_id: str | None = None) -> list[TokenRecord]:
        conn = self._read()
        rows = (
            conn.execute(SELECT_TOKENS) if user_id is None else conn.execute(TOKENS_OF, (user_id,))
        )
        return [token_from_row(row) for row in rows]

    async def revoke_token(self, token_id: str, audit: AuditDraft) -> bool | None:
        def op(conn: sqlite3.Connection) -> bool | None:
            if conn.execute(SELECT_TOKEN, (token_id,)).fetchone() is None:
                return None
            if conn.execute(REVOKE_TOKEN, (audit.at, token_id)).rowcount != 1:
                return False
            append_audit_entry(conn, audit)
            return True

        result: bool | None = await self._write(op)
        return result

    async def touch_token(self, token_id: str, now: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(TOUCH_TOKEN, (now, token_id))

        await self._write(op)

    # --- audit log ---------------------------------------------------------------------------

    async def append_audit(self, draft: AuditDraft) -> AuditEntry:
        def op(conn: sqlite3.Connection) -> AuditEntry:
            return append_audit_entry(conn, draft)

        result: AuditEntry = await self._write(op)
        return result

    async def audit_entries(
        self, *, after_seq: int = 0, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        text, params = entries_query(since, limit)
        rows = self._read().execute(text, (after_seq, *params)).fetchall()
        return [entry_from_row(row) for row in rows]

    async def audit_head(self) -> tuple[int, str]:
        seq, digest = self._read().execute(HEAD).fetchone()
        return int(seq), str(digest)
