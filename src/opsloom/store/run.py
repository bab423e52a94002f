"""The run, job and lease operations of :class:`~opsloom.store.base.Store`, written once.

Fenced writes (``record_step``, ``suspend``, ``finish_run`` …) are plain methods that queue
their operation at call time: the writer applies them in call order.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from opsloom.codec import decode, encode
from opsloom.errors import LeaseLostError, RunNotFoundError, RunStateError
from opsloom.model import ErrorInfo, RunRecord, RunStatus, SignalRecord, StepRecord
from opsloom.model.run import TERMINAL, Fence, NewRun, sources_of
from opsloom.store.base import SLOT_MARK, HeartbeatResult, RunFilter, RunSpan
from opsloom.store.event import restore_subscriptions
from opsloom.store.job import (
    SET_ASIDE,
    check_fence,
    close_unstarted,
    fenced_upsert_step,
    fetch_labels,
    fetch_run,
    fetch_signals,
    fetch_steps,
    finish,
    insert_run,
    insert_run_later,
    nudge,
    requeue,
    set_labels,
    upsert_step,
)
from opsloom.store.rollup import reason_of
from opsloom.store.rows import (
    PAUSED,
    QUARANTINED,
    RUN_COLUMNS,
    SINGLETON_UPSERT,
    run_from_row,
    step_order,
)
from opsloom.store.runquery import RUN_ORDER, TEXT, run_where
from opsloom.store.tx import CONTROL, DONE, WORK, Later, Transactions, Tx

_CANCELLED_UNSTARTED = encode(
    ErrorInfo(
        "RunCancelledError",
        "the run was cancelled before it started",
        "",
        {"code": "run_cancelled"},
    ).to_dict(),
    what="run error",
)


_CANCELLED_QUARANTINED = encode(
    ErrorInfo(
        "RunCancelledError",
        "the run was cancelled while quarantined (its compensations did not run)",
        "",
        {"code": "run_cancelled"},
    ).to_dict(),
    what="run error",
)
#: A run whose worker vanished this many times while executing it is quarantined.
QUARANTINE_AFTER = 5


class RunOps(Transactions):
    """Runs, jobs, leases, singletons and the fenced writes of the worker running a run."""

    #: Recoveries after which a run is quarantined (0: never); the application sets it.
    quarantine_after: int = QUARANTINE_AFTER

    # --- runs --------------------------------------------------------------------------------

    async def create_run(
        self, new: NewRun, now: float, *, lease: tuple[str, float] | None = None
    ) -> tuple[RunRecord, bool]:
        async def create(tx: Tx) -> tuple[RunRecord, bool] | Later:
            if tx.pipelined and not new.labels:
                return await insert_run_later(tx, new, now, lease)
            created = await insert_run(tx, new, now, lease, refusable=True)
            if created is not None:
                return created, True
            run = await fetch_run(tx, new.id)
            assert run is not None
            return run, False

        # A run created under a lease is executed by its creator: no one to wake.
        written = self.write(create, () if lease is not None else WORK)
        return await cast("Awaitable[tuple[RunRecord, bool]]", written)

    async def get_run(self, run_id: str, *, with_steps: bool = False) -> RunRecord | None:
        async def get(tx: Tx) -> RunRecord | None:
            run = await fetch_run(tx, run_id)
            if run is not None and with_steps:
                steps = await fetch_steps(tx, [run_id])
                run.steps = sorted(steps.get(run_id, {}).values(), key=step_order)
            if run is not None:
                run.labels = (await fetch_labels(tx, [run_id])).get(run_id, {})
            return run

        return await self.read(get)

    async def signals_since(self, run_id: str, seq: int) -> list[SignalRecord]:
        async def since(tx: Tx) -> list[SignalRecord]:
            rows = await tx.all(
                "SELECT id, run_id, name, payload, created_at, consumed_seq FROM signals "
                "WHERE run_id = ? AND (consumed_seq IS NULL OR consumed_seq >= ?) ORDER BY id",
                (run_id, seq),
            )
            return [
                SignalRecord(
                    id=row[0],
                    run_id=row[1],
                    name=row[2],
                    payload=decode(row[3]),
                    created_at=row[4],
                    consumed_seq=row[5],
                )
                for row in rows
            ]

        return await self.read(since)

    async def status_of(self, run_id: str) -> RunStatus | None:
        row = await self.read(lambda tx: tx.one("SELECT status FROM runs WHERE id = ?", (run_id,)))
        return None if row is None else RunStatus(row[0])

    async def ended_runs(self, run_ids: list[str]) -> list[RunRecord]:
        async def ended(tx: Tx) -> list[RunRecord]:
            among, ids = tx.among("id", run_ids)
            rows = await tx.all(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE completed_at IS NOT NULL AND {among}", ids
            )
            runs = [run_from_row(row) for row in rows]
            labels = await fetch_labels(tx, [run.id for run in runs])
            for run in runs:
                run.labels = labels.get(run.id, {})
            return runs

        return await self.read(ended) if run_ids else []

    async def run_spans(self, run_ids: list[str]) -> list[RunSpan]:
        async def spans(tx: Tx) -> list[RunSpan]:
            among, ids = tx.among("id", run_ids)
            rows = await tx.all(
                f"SELECT id, status, created_at, started_at, completed_at FROM runs WHERE {among}",
                ids,
            )
            return [RunSpan(*row) for row in rows]

        return await self.read(spans) if run_ids else []

    async def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        async def fetch(tx: Tx) -> list[RunRecord]:
            where, params = run_where(flt, TEXT[tx.dialect])
            rows = await tx.all(
                f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY {RUN_ORDER} LIMIT ?",
                (*params, flt.limit),
            )
            runs = [run_from_row(row) for row in rows]
            labels = await fetch_labels(tx, [run.id for run in runs])
            for run in runs:
                run.labels = labels.get(run.id, {})
            return runs

        return await self.read(fetch)

    async def count_runs(self, flt: RunFilter) -> dict[RunStatus, int]:
        async def count(tx: Tx) -> dict[RunStatus, int]:
            where, params = run_where(flt, TEXT[tx.dialect], paged=False)
            rows = await tx.all(
                f"SELECT status, COUNT(*) FROM runs {where} GROUP BY status", params
            )
            return {RunStatus(status): n for status, n in rows}

        return await self.read(count)

    async def request_cancel(self, run_id: str, now: float) -> list[str]:
        async def cancel(tx: Tx) -> list[str]:
            run = await fetch_run(tx, run_id)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if run.status.terminal:
                raise RunStateError(f"run {run_id!r} is already {run.status}")
            rows = await tx.all(
                "WITH RECURSIVE tree(id) AS (SELECT CAST(? AS TEXT) UNION ALL "
                "SELECT r.id FROM runs r JOIN tree t ON r.parent_id = t.id) "
                "SELECT runs.id FROM tree JOIN runs ON runs.id = tree.id "
                "WHERE runs.completed_at IS NULL",
                (run_id,),
            )
            ids = [row[0] for row in rows]
            # Runs that never started (queued, perhaps behind a concurrency key or paused)
            # have nothing to stop or undo: they are cancelled at once.
            await close_unstarted(tx, ids, now, _CANCELLED_UNSTARTED)
            await close_unstarted(tx, ids, now, _CANCELLED_QUARANTINED, SET_ASIDE)
            # jobs before runs: the lock order every transaction of the store follows.
            among, params = tx.among("run_id", ids)
            await tx.execute(
                "UPDATE jobs SET nudged = 1, blocked = 0, available_at = "
                f"CASE WHEN owner IS NULL THEN ? ELSE available_at END WHERE {among}",
                (now, *params),
            )
            among, params = tx.among("id", ids)
            await tx.execute(
                "UPDATE runs SET cancel_requested = 1, paused = NULL, paused_at = NULL, "
                f"updated_at = ? WHERE {among}",
                (now, *params),
            )
            return ids

        return await self.write(cancel, (*DONE, *CONTROL))

    async def retry_run(self, run_id: str, now: float) -> RunRecord:
        async def retry(tx: Tx) -> RunRecord:
            run = await fetch_run(tx, run_id)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if run.status not in (RunStatus.FAILED, RunStatus.TIMED_OUT):
                raise RunStateError(
                    f"run {run_id!r} is {run.status}; only failed or timed-out runs can be retried"
                )
            await tx.execute(
                "DELETE FROM steps WHERE run_id = ? AND status <> 'completed'", (run_id,)
            )
            row = await tx.one(
                "UPDATE runs SET status = 'pending', error = NULL, output = NULL, "
                "deadline = NULL, completed_at = NULL, cancel_requested = 0, updated_at = ? "
                "WHERE id = ? AND status IN ('failed', 'timed_out') "
                "RETURNING concurrency_key, concurrency_limit",
                (now, run_id),
            )
            if row is None:  # finished differently since it was read
                raise RunStateError(f"run {run_id!r} can no longer be retried")
            await tx.execute(
                "INSERT INTO jobs (run_id, kind, priority, available_at, concurrency_key, "
                "concurrency_limit) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, f"{run.workflow}@{run.version}", run.priority, now, row[0], row[1]),
            )
            await restore_subscriptions(tx, run_id, now)
            fetched = await fetch_run(tx, run_id)
            assert fetched is not None
            return fetched

        return await self.write(retry, WORK)

    async def requeue_run(self, run_id: str, now: float) -> RunRecord:
        async def release(tx: Tx) -> RunRecord:
            run = await fetch_run(tx, run_id)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if run.quarantined_at is None or run.status.terminal:
                raise RunStateError(f"run {run_id!r} is {run.status}, not quarantined")
            # A run paused while quarantined stays paused.
            await tx.execute(
                "UPDATE jobs SET blocked = ?, available_at = ? WHERE run_id = ? AND blocked = ?",
                (PAUSED if run.paused else 0, now, run_id, QUARANTINED),
            )
            await tx.execute(
                "UPDATE runs SET quarantined_at = NULL, recovered = 0, updated_at = ? WHERE id = ?",
                (now, run_id),
            )
            fetched = await fetch_run(tx, run_id)
            assert fetched is not None
            return fetched

        return await self.write(release, WORK)

    async def send_signal(self, run_id: str, name: str, payload: bytes, now: float) -> int:
        async def send(tx: Tx) -> int | Later:
            if tx.pipelined:
                return await _send_signal_later(tx, run_id, name, payload, now)
            row = await tx.one("SELECT status FROM runs WHERE id = ?", (run_id,))
            if row is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if RunStatus(row[0]).terminal:
                raise RunStateError(f"run {run_id!r} is already {row[0]}; signal {name!r} refused")
            inserted = await tx.one(
                "INSERT INTO signals (run_id, name, payload, created_at) VALUES (?, ?, ?, ?) "
                "RETURNING id",
                (run_id, name, payload, now),
            )
            assert inserted is not None
            await nudge(tx, [run_id], now)
            return int(inserted[0])

        return await cast("Awaitable[int]", self.write(send, WORK))

    async def pending_signals(self, run_id: str) -> list[SignalRecord]:
        found = await self.read(lambda tx: fetch_signals(tx, [run_id]))
        return found.get(run_id, [])

    # --- jobs and leases ----------------------------------------------------------------------

    async def next_wake(self, kinds: frozenset[str]) -> float | None:
        async def earliest(tx: Tx) -> float | None:
            among, params = tx.among("kind", sorted(kinds))
            row = await tx.one(
                "SELECT min(available_at) FROM jobs WHERE owner IS NULL AND blocked = 0 "
                f"AND available_at IS NOT NULL AND {among}",
                params,
            )
            return None if row is None or row[0] is None else float(row[0])

        return await self.read(earliest) if kinds else None

    async def heartbeat(self, owner: str, run_ids: list[str], until: float) -> HeartbeatResult:
        async def beat(tx: Tx) -> HeartbeatResult:
            # Only runs the worker still executes are extended: a lease it holds on a run it
            # gave up on (after a failed write) expires and the run is recovered elsewhere.
            among, params = tx.among("run_id", run_ids)
            await tx.execute(
                f"UPDATE jobs SET lease_expires_at = ? WHERE owner = ? AND {among}",
                (until, owner, *params),
            )
            rows = await tx.all(
                "SELECT j.run_id, r.cancel_requested, j.blocked FROM jobs j JOIN runs r "
                "ON r.id = j.run_id WHERE j.owner = ?",
                (owner,),
            )
            held = {row[0] for row in rows}
            return HeartbeatResult(
                lost=frozenset(set(run_ids) - held),
                cancel_requested=frozenset(run_id for run_id, cancel, _ in rows if cancel),
                pause_requested=frozenset(
                    run_id for run_id, _, blocked in rows if blocked == PAUSED
                ),
            )

        return await self.write(beat)

    async def reap_expired(self, now: float) -> list[str]:
        async def reap(tx: Tx) -> list[str]:
            # SKIP LOCKED: a job whose owner is writing right now is not expired in practice.
            rows = await tx.all(
                "SELECT run_id FROM jobs WHERE owner IS NOT NULL AND lease_expires_at < ? "
                "ORDER BY run_id" + tx.lock("FOR UPDATE SKIP LOCKED"),
                (now,),
            )
            ids = [row[0] for row in rows]
            await requeue(tx, ids, now, recovered=True, quarantine_after=self.quarantine_after)
            return ids

        return await self.write(reap, WORK)

    async def release(self, owner: str, now: float) -> int:
        async def give_back(tx: Tx) -> int:
            rows = await tx.all(
                "SELECT run_id FROM jobs WHERE owner = ? ORDER BY run_id" + tx.lock("FOR UPDATE"),
                (owner,),
            )
            await requeue(tx, [row[0] for row in rows], now, recovered=False)
            await tx.execute("DELETE FROM singletons WHERE owner = ?", (owner,))
            return len(rows)

        return await self.write(give_back, WORK)

    async def worker_slot_free(self, identity: str) -> bool:
        return False

    async def keep_worker_slots(self) -> None:
        return None

    async def recover_owned(self, identity: str, owner: str, now: float) -> list[str]:
        prefix = identity + SLOT_MARK

        async def recover(tx: Tx) -> list[str]:
            rows = await tx.all(
                "SELECT run_id FROM jobs WHERE owner IS NOT NULL AND owner <> ? "
                "AND substr(owner, 1, ?) = ? ORDER BY run_id" + tx.lock("FOR UPDATE"),
                (owner, len(prefix), prefix),
            )
            ids = [row[0] for row in rows]
            await requeue(tx, ids, now, recovered=True, quarantine_after=self.quarantine_after)
            return ids

        return await self.write(recover, WORK)

    async def reap_orphans(self, now: float) -> list[str]:
        rows = await self.read(
            lambda tx: tx.all(
                "SELECT DISTINCT owner FROM jobs WHERE owner IS NOT NULL "
                "UNION SELECT owner FROM singletons"
            )
        )
        by_slot: dict[str, list[str]] = {}
        for (owner,) in rows:
            identity, mark, _ = owner.rpartition(SLOT_MARK)
            if mark:
                by_slot.setdefault(identity, []).append(owner)
        # Exact owners, not their slot: a new holder of a dead slot keeps what it claimed.
        dead = [
            owner
            for identity, owners in sorted(by_slot.items())
            if await self.worker_slot_free(identity)
            for owner in owners
        ]
        if not dead:
            return []

        async def reap(tx: Tx) -> list[str]:
            among, params = tx.among("owner", dead)
            rows = await tx.all(
                f"SELECT run_id FROM jobs WHERE {among} ORDER BY run_id"
                + tx.lock("FOR UPDATE SKIP LOCKED"),
                params,
            )
            ids = [row[0] for row in rows]
            await requeue(tx, ids, now, recovered=True, quarantine_after=self.quarantine_after)
            # A dead reaper or scheduler is replaced now, not when its singleton expires.
            await tx.execute(f"DELETE FROM singletons WHERE {among}", params)
            return ids

        return await self.write(reap, WORK)

    async def hold_singleton(self, name: str, owner: str, now: float, ttl: float) -> bool:
        async def hold(tx: Tx) -> bool:
            return await tx.one(SINGLETON_UPSERT, (name, owner, now + ttl, now)) is not None

        return await self.write(hold)

    # --- fenced writes -----------------------------------------------------------------------

    def record_step(self, fence: Fence, step: StepRecord) -> Awaitable[None]:
        # One fenced upsert (a refused one only reads the fence to say why).
        # Its answer may be read after the rest of its batch is sent (a Later): the writer
        # checks it before committing and resolves the caller's future with None.
        written = self.write(lambda tx: fenced_upsert_step(tx, fence, step), one_statement=True)
        return cast("Awaitable[None]", written)

    def set_labels(
        self, fence: Fence, step: StepRecord, labels: dict[str, str | None]
    ) -> Awaitable[None]:
        async def label(tx: Tx) -> None:
            await check_fence(tx, fence)
            await set_labels(tx, fence.run_id, labels)
            await upsert_step(tx, step)

        return self.write(label)

    def record_steps(self, fence: Fence, steps: list[StepRecord]) -> Awaitable[None]:
        async def record(tx: Tx) -> None:
            await check_fence(tx, fence)
            for step in steps:
                await upsert_step(tx, step)

        return self.write(record)

    def consume_signal(self, fence: Fence, signal_id: int, step: StepRecord) -> Awaitable[None]:
        async def consume(tx: Tx) -> None:
            await check_fence(tx, fence)
            await tx.execute(
                "UPDATE signals SET consumed_seq = ? WHERE id = ? AND run_id = ?",
                (step.seq, signal_id, fence.run_id),
            )
            await upsert_step(tx, step)

        return self.write(consume)

    def start_child(
        self, fence: Fence, step: StepRecord, child: NewRun, now: float
    ) -> Awaitable[None]:
        async def start(tx: Tx) -> None:
            await check_fence(tx, fence)
            await upsert_step(tx, step)
            await insert_run(tx, child, now)

        return self.write(start, WORK)

    async def child_outcome(self, child_id: str) -> RunRecord | None:
        return await self.read(lambda tx: fetch_run(tx, child_id))

    def suspend(self, fence: Fence, wake_at: float | None, now: float) -> Awaitable[None]:
        async def park(tx: Tx) -> None:
            row = await tx.one(
                "UPDATE jobs SET owner = NULL, lease_expires_at = NULL, nudged = 0, "
                "available_at = CASE WHEN nudged = 1 THEN ? ELSE CAST(? AS DOUBLE PRECISION) END "
                "WHERE run_id = ? AND owner = ? AND token = ? RETURNING available_at",
                (now, wake_at, fence.run_id, fence.owner, fence.token),
            )
            if row is None:
                raise LeaseLostError(f"lease on run {fence.run_id!r} lost")
            # A run that may go on at once (nudged, drained) is pending, not waiting.
            ready = row[0] is not None and row[0] <= now
            await tx.execute(
                "UPDATE runs SET status = ?, updated_at = ? WHERE id = ? AND status = 'running'",
                ("pending" if ready else "waiting", now, fence.run_id),
            )

        return self.write(park, () if wake_at is None else WORK)

    def finish_run(
        self,
        fence: Fence,
        status: RunStatus,
        output: bytes | None,
        error: dict[str, Any] | None,
        now: float,
    ) -> Awaitable[None]:
        if not status.terminal:
            raise ValueError(f"finish_run needs a terminal status, not {status}")
        blob = None if error is None else encode(error, what="run error")
        sources = sources_of(status)
        reason = None if status is RunStatus.COMPLETED else reason_of(error)
        return self.write(
            lambda tx: finish(tx, fence, status, output, blob, now, sources, reason), DONE
        )


_ENDED = "', '".join(sorted(status.value for status in TERMINAL))
#: ``send_signal`` in one statement (PostgreSQL): the run's status, and the new signal's id
#: (None when the run has ended: nothing was written).
_SEND_SIGNAL = (
    "WITH run AS (SELECT status FROM runs WHERE id = ?), "
    "sent AS (INSERT INTO signals (run_id, name, payload, created_at) "
    f"SELECT ?, ?, ?, ? FROM run WHERE status NOT IN ('{_ENDED}') RETURNING id), "
    "nudged AS (UPDATE jobs SET nudged = 1, available_at = CASE WHEN owner IS NULL AND "
    "token > 0 THEN ? ELSE available_at END WHERE run_id = ? AND EXISTS (SELECT FROM sent)) "
    "SELECT run.status, (SELECT id FROM sent) FROM run"
)


async def _send_signal_later(tx: Tx, run_id: str, name: str, payload: bytes, now: float) -> Later:
    """``send_signal`` in a pipelined batch: one statement, its answer read with the batch's."""
    answer = await tx.later(_SEND_SIGNAL, (run_id, run_id, name, payload, now, now, run_id))

    async def sent() -> int:
        rows = await answer.rows()
        if not rows:
            raise RunNotFoundError(f"no run {run_id!r}")
        status, signal_id = rows[0]
        if signal_id is None:
            raise RunStateError(f"run {run_id!r} is already {status}; signal {name!r} refused")
        return int(signal_id)

    return Later(sent)
