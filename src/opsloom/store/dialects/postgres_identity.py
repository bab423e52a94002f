"""Users, roles, groups, API tokens and the audit log in the PostgreSQL store (a mixin of
:class:`PostgresStore`).

Writes go through the group-commit writer, one connection per process; processes on other
machines append to the same log, so an appender locks the audit head row (``FOR UPDATE``)
before reading it: the next appender waits until this transaction commits and then sees its
entry, and the chain cannot fork. A change and its audit entry share one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from psycopg import AsyncConnection

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
from opsloom.store.rows import pg

Conn = AsyncConnection[Any]
T = TypeVar("T")


async def _one(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    cur = await conn.execute(pg(query), params)
    row: tuple[Any, ...] | None = await cur.fetchone()
    return row


async def _all(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    cur = await conn.execute(pg(query), params)
    return await cur.fetchall()


async def _rowcount(conn: Conn, query: str, params: tuple[Any, ...]) -> int:
    cur = await conn.execute(pg(query), params)
    return cur.rowcount


async def append_audit_entry(conn: Conn, draft: AuditDraft) -> AuditEntry:
    """Append ``draft`` after the current head, inside the caller's write transaction.

    The head row stays locked until that transaction ends. For store operations of other
    aggregates that record their audit entry in the transaction of the change itself.
    """
    row = await _one(conn, HEAD + " FOR UPDATE")
    assert row is not None, "audit_head is created by migration 0008"
    entry = draft.seal(int(row[0]) + 1, str(row[1]))
    await conn.execute(pg(INSERT_ENTRY), entry.params())
    await conn.execute(pg(MOVE_HEAD), (entry.seq, entry.hash))
    return entry


async def _user(conn: Conn, row: tuple[Any, ...] | None) -> User | None:
    if row is None:
        return None
    roles = [r[0] for r in await _all(conn, ROLES_OF, (row[0],))]
    groups = [g[0] for g in await _all(conn, GROUPS_OF, (row[0],))]
    return user_from_row(row, roles, groups)


async def _exists(conn: Conn, user_id: str) -> bool:
    return await _one(conn, USER_EXISTS, (user_id,)) is not None


class PostgresIdentity:
    """Identity and audit operations; reads on the pool, writes through the group-commit writer."""

    async def _read(  # provided by PostgresStore
        self, fn: Callable[[Conn], Awaitable[T]], *, transaction: bool = False
    ) -> T:
        raise NotImplementedError

    def _write(self, op: Any, notify: tuple[str, ...] = ()) -> Any:  # provided by PostgresStore
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
        async def op(conn: Conn) -> UserConflict | None:
            if first:
                # Two processes bootstrapping a new database at once: the second waits here
                # for the first to commit, then finds its user.
                await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
                if await _one(conn, ANY_USER) is not None:
                    return UserConflict.NOT_FIRST
            if await _exists(conn, user.id):
                return UserConflict.EXISTS
            if user.slack_id is not None and await _one(conn, SLACK_ID_TAKEN, (user.slack_id,)):
                return UserConflict.SLACK_ID_TAKEN
            await conn.execute(pg(INSERT_USER), user.params())
            actor = audit[0].actor if audit else "system"
            for role in sorted(user.roles):
                await conn.execute(pg(INSERT_ROLE), (user.id, role, user.created_at, actor))
            if token is not None:
                await conn.execute(pg(INSERT_TOKEN), token.params())
            for draft in audit:
                await append_audit_entry(conn, draft)
            return None

        result: UserConflict | None = await self._write(op)
        return result

    async def get_user(self, user_id: str) -> User | None:
        async def fetch(conn: Conn) -> User | None:
            return await _user(conn, await _one(conn, SELECT_USER, (user_id,)))

        return await self._read(fetch)

    async def user_by_slack_id(self, slack_id: str) -> User | None:
        async def fetch(conn: Conn) -> User | None:
            return await _user(conn, await _one(conn, SELECT_USER_BY_SLACK_ID, (slack_id,)))

        return await self._read(fetch)

    async def list_users(self) -> list[User]:
        async def fetch(conn: Conn) -> list[User]:
            roles: dict[str, list[str]] = {}
            for user_id, role in await _all(conn, ALL_ROLES):
                roles.setdefault(user_id, []).append(role)
            groups: dict[str, list[str]] = {}
            for group, user_id in await _all(conn, ALL_MEMBERS):
                groups.setdefault(user_id, []).append(group)
            return [
                user_from_row(row, roles.get(row[0]), groups.get(row[0]))
                for row in await _all(conn, SELECT_USERS)
            ]

        # One snapshot, so a user's roles and groups are those of the listed user.
        return await self._read(fetch, transaction=True)

    async def update_user(self, user: User, audit: AuditDraft) -> UserConflict | None:
        async def op(conn: Conn) -> UserConflict | None:
            if not await _exists(conn, user.id):
                return UserConflict.MISSING
            if user.slack_id is not None and await _one(
                conn, SLACK_ID_OF_OTHER, (user.slack_id, user.id)
            ):
                return UserConflict.SLACK_ID_TAKEN
            params = (user.name, user.email, user.slack_id, audit.at, user.id)
            await conn.execute(pg(SET_PROFILE), params)
            await append_audit_entry(conn, audit)
            return None

        result: UserConflict | None = await self._write(op)
        return result

    async def set_user_disabled(
        self, user_id: str, disabled: bool, audit: AuditDraft
    ) -> bool | None:
        async def op(conn: Conn) -> bool | None:
            if not await _exists(conn, user_id):
                return None
            flag = int(disabled)
            if await _rowcount(conn, SET_DISABLED, (flag, audit.at, user_id, flag)) != 1:
                return False
            await append_audit_entry(conn, audit)
            return True

        result: bool | None = await self._write(op)
        return result

    async def change_role(
        self, user_id: str, role: str, granted: bool, audit: AuditDraft
    ) -> bool | None:
        async def op(conn: Conn) -> bool | None:
            if not await _exists(conn, user_id):
                return None
            if granted:
                count = await _rowcount(conn, INSERT_ROLE, (user_id, role, audit.at, audit.actor))
            else:
                count = await _rowcount(conn, DELETE_ROLE, (user_id, role))
            if count != 1:
                return False
            await append_audit_entry(conn, audit)
            return True

        result: bool | None = await self._write(op)
        return result

    # --- groups ------------------------------------------------------------------------------

    async def change_membership(
        self, user_id: str, group: str, member: bool, audit: AuditDraft
    ) -> bool | None:
        async def op(conn: Conn) -> bool | None:
            if not await _exists(conn, user_id):
                return None
            if member:
                params = (group, user_id, audit.at, audit.actor)
                count = await _rowcount(conn, INSERT_MEMBER, params)
            else:
                count = await _rowcount(conn, DELETE_MEMBER, (group, user_id))
            if count != 1:
                return False
            await append_audit_entry(conn, audit)
            return True

        result: bool | None = await self._write(op)
        return result

    async def group_members(self, group: str) -> list[str]:
        async def fetch(conn: Conn) -> list[str]:
            return [row[0] for row in await _all(conn, MEMBERS, (group,))]

        return await self._read(fetch)

    async def list_groups(self) -> dict[str, list[str]]:
        async def fetch(conn: Conn) -> dict[str, list[str]]:
            return groups_from_rows(await _all(conn, ALL_MEMBERS))

        return await self._read(fetch)

    # --- tokens ------------------------------------------------------------------------------

    async def create_token(self, token: NewToken, audit: AuditDraft) -> bool:
        async def op(conn: Conn) -> bool:
            if not await _exists(conn, token.user):
                return False
            await conn.execute(pg(INSERT_TOKEN), token.params())
            await append_audit_entry(conn, audit)
            return True

        result: bool = await self._write(op)
        return result

    async def get_token(self, token_id: str) -> TokenRecord | None:
        async def fetch(conn: Conn) -> TokenRecord | None:
            row = await _one(conn, SELECT_TOKEN, (token_id,))
            return None if row is None else token_from_row(row)

        return await self._read(fetch)

    async def token_by_hash(self, digest: str) -> TokenRecord | None:
        async def fetch(conn: Conn) -> TokenRecord | None:
            row = await _one(conn, TOKEN_BY_HASH, (digest,))
            return None if row is None else token_from_row(row)

        return await self._read(fetch)

    async def list_tokens(self, user_id: str | None = None) -> list[TokenRecord]:
        async def fetch(conn: Conn) -> list[TokenRecord]:
            if user_id is None:
                rows = await _all(conn, SELECT_TOKENS)
            else:
                rows = await _all(conn, TOKENS_OF, (user_id,))
            return [token_from_row(row) for row in rows]

        return await self._read(fetch)

    async def revoke_token(self, token_id: str, audit: AuditDraft) -> bool | None:
        async def op(conn: Conn) -> bool | None:
            if await _one(conn, SELECT_TOKEN, (token_id,)) is None:
                return None
            if await _rowcount(conn, REVOKE_TOKEN, (audit.at, token_id)) != 1:
                return False
            await append_audit_entry(conn, audit)
            return True

        result: bool | None = await self._write(op)
        return result

    async def touch_token(self, token_id: str, now: float) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(pg(TOUCH_TOKEN), (now, token_id))

        await self._write(op)

    # --- audit log ---------------------------------------------------------------------------

    async def append_audit(self, draft: AuditDraft) -> AuditEntry:
        async def op(conn: Conn) -> AuditEntry:
            return await append_audit_entry(conn, draft)

        result: AuditEntry = await self._write(op)
        return result

    async def audit_entries(
        self, *, after_seq: int = 0, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        text, params = entries_query(since, limit)

        async def fetch(conn: Conn) -> list[AuditEntry]:
            return [entry_from_row(row) for row in await _all(conn, text, (after_seq, *params))]

        return await self._read(fetch)

    async def audit_head(self) -> tuple[int, str]:
        async def fetch(conn: Conn) -> tuple[int, str]:
            row = await _one(conn, HEAD)
            assert row is not None, "audit_head is created by migration 0008"
            return int(row[0]), str(row[1])

        return await self._read(fetch)
