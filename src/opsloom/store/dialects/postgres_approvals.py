"""Approvals in the PostgreSQL store (a mixin of :class:`PostgresStore`).

A change locks the request row (``SELECT … FOR UPDATE``) before it reads the stages and votes:
two processes deciding on one request at once are serialised, so the second one sees the
first one's vote and no vote is lost or counted twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from psycopg import AsyncConnection

from opsloom.errors import OpsloomError
from opsloom.model import RunStatus
from opsloom.model.approval import ApprovalChange, ApprovalLinkRow, ApprovalState, ChangeFn
from opsloom.store.approval import (
    INSERT_LINK,
    INSERT_SIGNAL,
    INSERT_VOTE,
    RUN_STATUS,
    SELECT_CLARIFICATIONS,
    SELECT_IDS,
    SELECT_LINK,
    SELECT_REQUEST,
    SELECT_STAGES,
    SELECT_VOTES,
    UPSERT_CLARIFICATION,
    UPSERT_REQUEST,
    UPSERT_STAGE,
    USE_LINK,
    clarification_from_row,
    clarification_params,
    dumps,
    link_from_row,
    link_params,
    request_from_row,
    request_params,
    signal_name,
    stage_from_row,
    stage_params,
    vote_from_row,
    vote_params,
)
from opsloom.store.dialects import postgres_sql as q
from opsloom.store.dialects.postgres_writer import WORK
from opsloom.store.rows import pg

Conn = AsyncConnection[Any]
T = TypeVar("T")


async def _load(conn: Conn, request_id: str, *, lock: bool = False) -> ApprovalState | None:
    text = pg(SELECT_REQUEST) + (" FOR UPDATE" if lock else "")
    row = await (await conn.execute(text, (request_id,))).fetchone()
    if row is None:
        return None
    stages = await (await conn.execute(pg(SELECT_STAGES), (request_id,))).fetchall()
    votes = await (await conn.execute(pg(SELECT_VOTES), (request_id,))).fetchall()
    notes = await (await conn.execute(pg(SELECT_CLARIFICATIONS), (request_id,))).fetchall()
    return ApprovalState(
        request_from_row(row),
        [stage_from_row(r) for r in stages],
        [vote_from_row(r) for r in votes],
        [clarification_from_row(r) for r in notes],
    )


async def _save(conn: Conn, change: ApprovalChange, now: float) -> None:
    state = change.state
    await conn.execute(pg(UPSERT_REQUEST), request_params(state.request))
    for stage in state.stages:
        await conn.execute(pg(UPSERT_STAGE), stage_params(stage))
    for clarification in state.clarifications:
        await conn.execute(pg(UPSERT_CLARIFICATION), clarification_params(clarification))
    for vote in change.new_votes:
        await conn.execute(pg(INSERT_VOTE), vote_params(vote))
    run_id = state.request.run_id
    if change.signal and run_id is not None:
        row = await (await conn.execute(pg(RUN_STATUS), (run_id,))).fetchone()
        if row is not None and not RunStatus(row[0]).terminal:
            payload = dumps({"request": state.request.id, "status": state.request.status})
            await conn.execute(
                pg(INSERT_SIGNAL), (run_id, signal_name(state.request.id), payload.encode(), now)
            )
            await q.nudge(conn, [run_id], now)


class PostgresApprovals:
    """Approval operations; reads on the pool, writes through the group-commit writer."""

    async def _read(  # provided by PostgresStore
        self, fn: Callable[[Conn], Awaitable[T]], *, transaction: bool = False
    ) -> T:
        raise NotImplementedError

    def _write(self, op: Any, notify: tuple[str, ...] = ()) -> Any:  # provided by PostgresStore
        raise NotImplementedError

    async def create_approval(self, state: ApprovalState, now: float) -> ApprovalState:
        async def op(conn: Conn) -> ApprovalState:
            stored = await _load(conn, state.request.id, lock=True)
            if stored is not None:
                return stored  # created before: a step that ran again
            await _save(conn, ApprovalChange(state), now)
            return state

        result: ApprovalState = await self._write(op)
        return result

    async def get_approval(self, request_id: str) -> ApprovalState | None:
        async def fetch(conn: Conn) -> ApprovalState | None:
            return await _load(conn, request_id)

        return await self._read(fetch, transaction=True)

    async def list_approvals(self, status: str | None, limit: int) -> list[ApprovalState]:
        async def fetch(conn: Conn) -> list[ApprovalState]:
            if status is None:
                cur = await conn.execute(pg(SELECT_IDS.format(where="")), (limit,))
            else:
                text = pg(SELECT_IDS.format(where="WHERE status = ?"))
                cur = await conn.execute(text, (status, limit))
            found = [await _load(conn, row[0]) for row in await cur.fetchall()]
            return [state for state in found if state is not None]

        return await self._read(fetch, transaction=True)

    async def change_approval(
        self, request_id: str, change: ChangeFn, now: float
    ) -> ApprovalChange | None:
        async def op(conn: Conn) -> ApprovalChange | OpsloomError | None:
            state = await _load(conn, request_id, lock=True)
            if state is None:
                return None
            try:
                done = change(state)
            except OpsloomError as exc:
                return exc  # a refusal, found before anything was written
            await _save(conn, done, now)
            return done

        result: ApprovalChange | OpsloomError | None = await self._write(op, WORK)
        if isinstance(result, OpsloomError):
            raise result
        return result

    async def save_approval_link(self, link: ApprovalLinkRow) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(pg(INSERT_LINK), link_params(link))

        await self._write(op)

    async def get_approval_link(self, token_hash: str) -> ApprovalLinkRow | None:
        async def fetch(conn: Conn) -> ApprovalLinkRow | None:
            row = await (await conn.execute(pg(SELECT_LINK), (token_hash,))).fetchone()
            return None if row is None else link_from_row(row)

        return await self._read(fetch)

    async def use_approval_link(self, token_hash: str, now: float) -> ApprovalLinkRow | None:
        async def op(conn: Conn) -> ApprovalLinkRow | None:
            cur = await conn.execute(pg(USE_LINK), (now, token_hash, now))
            if cur.rowcount != 1:
                return None
            row = await (await conn.execute(pg(SELECT_LINK), (token_hash,))).fetchone()
            return None if row is None else link_from_row(row)

        result: ApprovalLinkRow | None = await self._write(op)
        return result
