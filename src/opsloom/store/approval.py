"""Approvals in the store: SQL, row mapping and the approval operations.

A request is read and written as one :class:`~opsloom.model.approval.ApprovalState` (the
request row, its stages, votes and clarifications). Every change goes through
``Store.change_approval``: the state is loaded under a lock (``FOR UPDATE`` on PostgreSQL;
SQLite has a single writer), a pure function computes the new state
(:mod:`opsloom.approvals.flow`), and the state is written back, with the signal that wakes the
waiting run, in the same transaction. Locking the request row serialises two processes deciding
on one request: the second sees the first one's vote, and no vote is lost or counted twice.

A request may have a companion run that tells its approvers (``<request id>.notices``, see
:mod:`opsloom.approvals.notice`): it is created with the request, and every change of the
request wakes it in the change's own transaction, so no change goes untold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from opsloom.errors import OpsloomError
from opsloom.model import RunStatus
from opsloom.model.approval import (
    ApprovalChange,
    ApprovalClarificationRow,
    ApprovalLinkRow,
    ApprovalRequestRow,
    ApprovalStageRow,
    ApprovalState,
    ApprovalVoteRow,
    ChangeFn,
    RequestStatus,
    StageStatus,
)
from opsloom.model.run import NewRun
from opsloom.store.audit import AuditDraft, AuditOps, append_audit_entry
from opsloom.store.job import insert_run, nudge
from opsloom.store.tx import WORK, Row, Tx


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def loads(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


REQUEST_COLUMNS = (
    "id, run_id, title, requester, subject, risk, impact, status, decided_by, reason, "
    "created_at, decided_at, updated_at, started_by, starter_may_decide, distinct_approvers"
)
STAGE_COLUMNS = (
    "id, request_id, position, name, phase, mode, quorum, ladder, level, sla, on_sla, status, "
    "opened_at, deadline, paused_at, escalations, delegations, decided_at, decided_by, comment, "
    "delegated_as"
)
VOTE_COLUMNS = "stage_id, request_id, voter, approve, comment, on_behalf_of, voted_at"
CLARIFICATION_COLUMNS = (
    "id, request_id, stage_id, asked_by, question, asked_at, answer, answered_by, answered_at"
)
LINK_COLUMNS = "token_hash, request_id, stage_id, user_id, approve, created_at, expires_at, used_at"


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _upsert(table: str, columns: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    updates = ", ".join(f"{c} = excluded.{c}" for c in names[1:])
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({_marks(len(names))}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}"
    )


SELECT_REQUEST = f"SELECT {REQUEST_COLUMNS} FROM approval_requests WHERE id = ?"
SELECT_STAGES = (
    f"SELECT {STAGE_COLUMNS} FROM approval_stages WHERE request_id = ? ORDER BY position"
)
SELECT_VOTES = (
    f"SELECT {VOTE_COLUMNS} FROM approval_votes WHERE request_id = ? ORDER BY voted_at, voter"
)
SELECT_CLARIFICATIONS = (
    f"SELECT {CLARIFICATION_COLUMNS} FROM approval_clarifications WHERE request_id = ? "
    "ORDER BY asked_at, id"
)
#: Request ids, newest first; ``{where}`` is empty or a status filter.
SELECT_IDS = "SELECT id FROM approval_requests {where} ORDER BY created_at DESC, id LIMIT ?"
UPSERT_REQUEST = _upsert("approval_requests", REQUEST_COLUMNS)
UPSERT_STAGE = _upsert("approval_stages", STAGE_COLUMNS)
UPSERT_CLARIFICATION = _upsert("approval_clarifications", CLARIFICATION_COLUMNS)
INSERT_VOTE = f"INSERT INTO approval_votes ({VOTE_COLUMNS}) VALUES ({_marks(7)})"
INSERT_LINK = f"INSERT INTO approval_links ({LINK_COLUMNS}) VALUES ({_marks(8)})"
#: Single use: of two clicks on one link, one finds it unused.
USE_LINK = (
    "UPDATE approval_links SET used_at = ? "
    "WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?"
)
SELECT_LINK = f"SELECT {LINK_COLUMNS} FROM approval_links WHERE token_hash = ?"
RUN_STATUS = "SELECT status FROM runs WHERE id = ?"
INSERT_SIGNAL = "INSERT INTO signals (run_id, name, payload, created_at) VALUES (?, ?, ?, ?)"


def request_from_row(row: Row) -> ApprovalRequestRow:
    (id_, run_id, title, requester, subject, risk, impact, status, by, reason, c, d, u) = row[:13]
    starter, starter_may_decide, distinct = row[13:16]
    return ApprovalRequestRow(
        id_,
        run_id,
        title,
        requester,
        loads(subject),
        risk,
        impact,
        RequestStatus(status),
        by,
        reason,
        float(c),
        None if d is None else float(d),
        float(u),
        started_by=starter,
        starter_may_decide=bool(starter_may_decide),
        distinct_approvers=bool(distinct),
    )


def request_params(r: ApprovalRequestRow) -> tuple[Any, ...]:
    return (
        r.id,
        r.run_id,
        r.title,
        r.requester,
        dumps(r.subject),
        r.risk,
        r.impact,
        r.status,
        r.decided_by,
        r.reason,
        r.created_at,
        r.decided_at,
        r.updated_at,
        r.started_by,
        int(r.starter_may_decide),
        int(r.distinct_approvers),
    )


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def stage_from_row(row: Row) -> ApprovalStageRow:
    return ApprovalStageRow(
        id=row[0],
        request_id=row[1],
        position=int(row[2]),
        name=row[3],
        phase=int(row[4]),
        mode=row[5],
        quorum=int(row[6]),
        ladder=loads(row[7]),
        level=int(row[8]),
        sla=_opt(row[9]),
        on_sla=row[10],
        status=StageStatus(row[11]),
        opened_at=_opt(row[12]),
        deadline=_opt(row[13]),
        paused_at=_opt(row[14]),
        escalations=int(row[15]),
        delegations=loads(row[16]),
        decided_at=_opt(row[17]),
        decided_by=row[18],
        comment=row[19],
        delegated_as=loads(row[20]),
    )


def stage_params(s: ApprovalStageRow) -> tuple[Any, ...]:
    return (
        s.id,
        s.request_id,
        s.position,
        s.name,
        s.phase,
        s.mode,
        s.quorum,
        dumps(s.ladder),
        s.level,
        s.sla,
        s.on_sla,
        s.status,
        s.opened_at,
        s.deadline,
        s.paused_at,
        s.escalations,
        dumps(s.delegations),
        s.decided_at,
        s.decided_by,
        s.comment,
        dumps(s.delegated_as),
    )


def vote_from_row(row: Row) -> ApprovalVoteRow:
    return ApprovalVoteRow(row[0], row[1], row[2], bool(row[3]), row[4], row[5], float(row[6]))


def vote_params(v: ApprovalVoteRow) -> tuple[Any, ...]:
    return (
        v.stage_id,
        v.request_id,
        v.voter,
        int(v.approve),
        v.comment,
        v.on_behalf_of,
        v.voted_at,
    )


def clarification_from_row(row: Row) -> ApprovalClarificationRow:
    return ApprovalClarificationRow(
        row[0], row[1], row[2], row[3], row[4], float(row[5]), row[6], row[7], _opt(row[8])
    )


def clarification_params(c: ApprovalClarificationRow) -> tuple[Any, ...]:
    return (
        c.id,
        c.request_id,
        c.stage_id,
        c.asked_by,
        c.question,
        c.asked_at,
        c.answer,
        c.answered_by,
        c.answered_at,
    )


def link_from_row(row: Row) -> ApprovalLinkRow:
    return ApprovalLinkRow(
        row[0], row[1], row[2], row[3], bool(row[4]), float(row[5]), float(row[6]), _opt(row[7])
    )


def link_params(link: ApprovalLinkRow) -> tuple[Any, ...]:
    return (
        link.token_hash,
        link.request_id,
        link.stage_id,
        link.user,
        int(link.approve),
        link.created_at,
        link.expires_at,
        link.used_at,
    )


def signal_name(request_id: str) -> str:
    """The signal that wakes the run waiting for a request."""
    return f"approval:{request_id}"


#: The signal that wakes a request's notices run after a change.
NOTICE_SIGNAL = "approval-notice"


def notices_run(request_id: str) -> str:
    """The id of the run that tells a request's approvers (when notices are configured)."""
    return f"{request_id}.notices"


async def _wake(tx: Tx, run_id: str, name: str, payload: bytes, now: float) -> None:
    """Signal ``run_id`` and wake it, unless it does not exist or has ended."""
    row = await tx.one(RUN_STATUS, (run_id,))
    if row is not None and not RunStatus(row[0]).terminal:
        await tx.execute(INSERT_SIGNAL, (run_id, name, payload, now))
        await nudge(tx, [run_id], now)


async def _load(tx: Tx, request_id: str, *, lock: bool = False) -> ApprovalState | None:
    row = await tx.one(SELECT_REQUEST + (tx.lock("FOR UPDATE") if lock else ""), (request_id,))
    if row is None:
        return None
    return ApprovalState(
        request_from_row(row),
        [stage_from_row(r) for r in await tx.all(SELECT_STAGES, (request_id,))],
        [vote_from_row(r) for r in await tx.all(SELECT_VOTES, (request_id,))],
        [clarification_from_row(r) for r in await tx.all(SELECT_CLARIFICATIONS, (request_id,))],
    )


async def _save(tx: Tx, change: ApprovalChange, now: float) -> None:
    state = change.state
    await tx.execute(UPSERT_REQUEST, request_params(state.request))
    for stage in state.stages:
        await tx.execute(UPSERT_STAGE, stage_params(stage))
    for clarification in state.clarifications:
        await tx.execute(UPSERT_CLARIFICATION, clarification_params(clarification))
    for vote in change.new_votes:
        await tx.execute(INSERT_VOTE, vote_params(vote))
    run_id = state.request.run_id
    payload = dumps({"request": state.request.id, "status": state.request.status}).encode()
    if change.signal and run_id is not None:
        await _wake(tx, run_id, signal_name(state.request.id), payload, now)
    # Every change, a vote short of its quorum or a delegation too: messages show them.
    await _wake(tx, notices_run(state.request.id), NOTICE_SIGNAL, payload, now)


async def _list(tx: Tx, status: str | None, limit: int) -> list[ApprovalState]:
    if status is None:
        rows = await tx.all(SELECT_IDS.format(where=""), (limit,))
    else:
        rows = await tx.all(SELECT_IDS.format(where="WHERE status = ?"), (status, limit))
    found = [await _load(tx, row[0]) for row in rows]
    return [state for state in found if state is not None]


class ApprovalOps(AuditOps):
    """The approval operations of :class:`~opsloom.store.base.Store`."""

    async def create_approval(
        self, state: ApprovalState, now: float, *, runs: Sequence[NewRun] = ()
    ) -> ApprovalState:
        async def create(tx: Tx) -> ApprovalState:
            stored = await _load(tx, state.request.id, lock=True)
            if stored is not None:
                return stored  # created before: a step that ran again
            await _save(tx, ApprovalChange(state), now)
            for new in runs:
                await insert_run(tx, new, now)
            return state

        return await self.write(create, WORK if runs else ())

    async def get_approval(self, request_id: str) -> ApprovalState | None:
        return await self.read(lambda tx: _load(tx, request_id), snapshot=True)

    async def list_approvals(self, status: str | None, limit: int) -> list[ApprovalState]:
        return await self.read(lambda tx: _list(tx, status, limit), snapshot=True)

    async def change_approval(
        self,
        request_id: str,
        change: ChangeFn,
        now: float,
        *,
        audit: Callable[[ApprovalChange], Sequence[AuditDraft]] | None = None,
    ) -> ApprovalChange | None:
        key = self.audit_seal_key() if audit is not None else None

        async def apply(tx: Tx) -> ApprovalChange | OpsloomError | None:
            state = await _load(tx, request_id, lock=True)
            if state is None:
                return None
            try:
                done = change(state)
                drafts = () if audit is None else audit(done)
            except OpsloomError as exc:
                # A refusal is found before anything is written; returned, not raised, so
                # that the rest of the writer's batch is not replayed because of it.
                return exc
            await _save(tx, done, now)
            # The change and its audit entries commit together: a crash between them could
            # otherwise leave a decision that the audit log never heard of.
            for draft in drafts:
                await append_audit_entry(tx, draft, key)
            return done

        result = await self.write(apply, WORK)
        if isinstance(result, OpsloomError):
            raise result
        return result

    async def save_approval_link(self, link: ApprovalLinkRow) -> None:
        await self.write(lambda tx: tx.execute(INSERT_LINK, link_params(link)))

    async def get_approval_link(self, token_hash: str) -> ApprovalLinkRow | None:
        row = await self.read(lambda tx: tx.one(SELECT_LINK, (token_hash,)))
        return None if row is None else link_from_row(row)

    async def use_approval_link(self, token_hash: str, now: float) -> ApprovalLinkRow | None:
        async def use(tx: Tx) -> ApprovalLinkRow | None:
            if await tx.execute(USE_LINK, (now, token_hash, now)) != 1:
                return None
            row = await tx.one(SELECT_LINK, (token_hash,))
            return None if row is None else link_from_row(row)

        return await self.write(use)
