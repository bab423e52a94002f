"""Approvals in the SQLite store (a mixin of :class:`SqliteStore`).

A change runs inside the single writer's transaction, so no other write (from this process or,
through ``BEGIN IMMEDIATE``, from another) can come between reading a request and writing it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

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
from opsloom.store.dialects.sqlite_sql import _nudge


def _load(conn: sqlite3.Connection, request_id: str) -> ApprovalState | None:
    row = conn.execute(SELECT_REQUEST, (request_id,)).fetchone()
    if row is None:
        return None
    return ApprovalState(
        request_from_row(row),
        [stage_from_row(r) for r in conn.execute(SELECT_STAGES, (request_id,))],
        [vote_from_row(r) for r in conn.execute(SELECT_VOTES, (request_id,))],
        [clarification_from_row(r) for r in conn.execute(SELECT_CLARIFICATIONS, (request_id,))],
    )


def _save(conn: sqlite3.Connection, change: ApprovalChange, now: float) -> None:
    state = change.state
    conn.execute(UPSERT_REQUEST, request_params(state.request))
    for stage in state.stages:
        conn.execute(UPSERT_STAGE, stage_params(stage))
    for clarification in state.clarifications:
        conn.execute(UPSERT_CLARIFICATION, clarification_params(clarification))
    for vote in change.new_votes:
        conn.execute(INSERT_VOTE, vote_params(vote))
    run_id = state.request.run_id
    if change.signal and run_id is not None:
        row = conn.execute(RUN_STATUS, (run_id,)).fetchone()
        if row is not None and not RunStatus(row[0]).terminal:
            payload = dumps({"request": state.request.id, "status": state.request.status}).encode()
            conn.execute(INSERT_SIGNAL, (run_id, signal_name(state.request.id), payload, now))
            _nudge(conn, [run_id], now)


class SqliteApprovals:
    """Approval operations; reads on the reader connection, writes through the writer."""

    def _read(self) -> sqlite3.Connection:  # provided by SqliteStore
        raise NotImplementedError

    def _write(self, op: Any) -> Any:  # provided by SqliteStore
        raise NotImplementedError

    async def create_approval(self, state: ApprovalState, now: float) -> ApprovalState:
        def op(conn: sqlite3.Connection) -> ApprovalState:
            stored = _load(conn, state.request.id)
            if stored is not None:
                return stored  # created before: a step that ran again
            _save(conn, ApprovalChange(state), now)
            return state

        result: ApprovalState = await self._write(op)
        return result

    async def get_approval(self, request_id: str) -> ApprovalState | None:
        return _load(self._read(), request_id)

    async def list_approvals(self, status: str | None, limit: int) -> list[ApprovalState]:
        conn = self._read()
        if status is None:
            rows = conn.execute(SELECT_IDS.format(where=""), (limit,)).fetchall()
        else:
            where = "WHERE status = ?"
            rows = conn.execute(SELECT_IDS.format(where=where), (status, limit)).fetchall()
        found = [_load(conn, row[0]) for row in rows]
        return [state for state in found if state is not None]

    async def change_approval(
        self, request_id: str, change: ChangeFn, now: float
    ) -> ApprovalChange | None:
        def op(conn: sqlite3.Connection) -> ApprovalChange | OpsloomError | None:
            state = _load(conn, request_id)
            if state is None:
                return None
            try:
                done = change(state)
            except OpsloomError as exc:
                # A refusal is found before anything is written; returned, not raised, so
                # that the rest of the writer's batch is not replayed because of it.
                return exc
            _save(conn, done, now)
            return done

        result: ApprovalChange | OpsloomError | None = await self._write(op)
        if isinstance(result, OpsloomError):
            raise result
        return result

    async def save_approval_link(self, link: ApprovalLinkRow) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(INSERT_LINK, link_params(link))

        await self._write(op)

    async def get_approval_link(self, token_hash: str) -> ApprovalLinkRow | None:
        row = self._read().execute(SELECT_LINK, (token_hash,)).fetchone()
        return None if row is None else link_from_row(row)

    async def use_approval_link(self, token_hash: str, now: float) -> ApprovalLinkRow | None:
        def op(conn: sqlite3.Connection) -> ApprovalLinkRow | None:
            if conn.execute(USE_LINK, (now, token_hash, now)).rowcount != 1:
                return None
            return link_from_row(conn.execute(SELECT_LINK, (token_hash,)).fetchone())

        result: ApprovalLinkRow | None = await self._write(op)
        return result
