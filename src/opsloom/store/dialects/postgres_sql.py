"""SQL of the PostgreSQL store: statements run inside a transaction, and row mapping.

Locks are always taken on ``jobs`` rows before ``runs`` rows, so that the writer and the
claims of other workers never wait for each other in a cycle. A fence check locks the job row
(``FOR SHARE``) until the transaction commits: a claim cannot take the run over between the
check and the write it guards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from opsloom.codec import decode
from opsloom.errors import LeaseLostError, RunStateError
from opsloom.model import RunRecord, RunStatus, SignalRecord, StepKind, StepRecord, StepStatus
from opsloom.model.run import Fence, NewRun
from opsloom.store.base import Claim
from opsloom.store.rows import (
    JOB_INSERT_COLUMNS,
    RUN_COLUMNS,
    RUN_INSERT_COLUMNS,
    STEP_COLUMNS,
    job_insert_params,
    run_from_row,
    run_insert_params,
    step_params,
)

Conn = AsyncConnection[Any]


async def insert_run(
    conn: Conn, new: NewRun, now: float, lease: tuple[str, float] | None = None
) -> bool:
    cur = await conn.execute(
        f"INSERT INTO runs ({RUN_INSERT_COLUMNS}) VALUES ({', '.join(['%s'] * 15)}) "
        "ON CONFLICT (id) DO NOTHING",
        run_insert_params(new, now, lease),
    )
    if cur.rowcount != 1:
        return False
    await conn.execute(
        f"INSERT INTO jobs ({JOB_INSERT_COLUMNS}) VALUES ({', '.join(['%s'] * 9)})",
        job_insert_params(new, now, lease),
    )
    return True


async def check_fence(conn: Conn, fence: Fence) -> None:
    cur = await conn.execute(
        "SELECT 1 FROM jobs WHERE run_id = %s AND owner = %s AND token = %s FOR SHARE",
        (fence.run_id, fence.owner, fence.token),
    )
    if await cur.fetchone() is None:
        raise LeaseLostError(f"lease on run {fence.run_id!r} lost: write rejected")


_UPSERT_STEP = (
    "INSERT INTO steps (run_id, seq, kind, name, status, output, error, attempts, wake_at, "
    "started_at, completed_at) {source} "
    "ON CONFLICT (run_id, seq) DO UPDATE SET status = excluded.status, "
    "output = excluded.output, error = excluded.error, attempts = excluded.attempts, "
    "wake_at = excluded.wake_at, completed_at = excluded.completed_at "
    "WHERE steps.status NOT IN ('completed', 'failed')"
)
# The fence is checked (and its job row locked) by the insert itself: one round trip.
_FENCED_UPSERT_STEP = "WITH fence AS (SELECT 1 FROM jobs WHERE run_id = %s AND owner = %s " + (
    "AND token = %s FOR SHARE) "
    + _UPSERT_STEP.format(
        source="SELECT %s::text, %s::integer, %s::text, %s::text, %s::text, %s::bytea, "
        "%s::bytea, %s::integer, %s::float8, %s::float8, %s::float8 FROM fence"
    )
)
_PLAIN_UPSERT_STEP = _UPSERT_STEP.format(
    source="VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


async def upsert_step(conn: Conn, step: StepRecord) -> None:
    await conn.execute(_PLAIN_UPSERT_STEP, step_params(step))


async def fenced_upsert_step(conn: Conn, fence: Fence, step: StepRecord) -> None:
    cur = await conn.execute(
        _FENCED_UPSERT_STEP, (fence.run_id, fence.owner, fence.token, *step_params(step))
    )
    if cur.rowcount != 1:
        # Either the lease is gone, or the entry was already final (a duplicate completion,
        # which is ignored so that a completion is recorded exactly once).
        await check_fence(conn, fence)


async def nudge(conn: Conn, run_ids: Sequence[str], now: float) -> None:
    """Wake parked runs now; a run that is executing re-checks before it parks."""
    await conn.execute(
        "UPDATE jobs SET nudged = 1, available_at = CASE WHEN owner IS NULL THEN %s "
        "ELSE available_at END WHERE run_id = ANY(%s)",
        (now, list(run_ids)),
    )


async def requeue(conn: Conn, run_ids: Sequence[str], now: float, *, recovered: bool) -> None:
    ids = list(run_ids)
    if not ids:
        return
    await conn.execute(
        "UPDATE jobs SET owner = NULL, lease_expires_at = NULL, available_at = %s "
        "WHERE run_id = ANY(%s)",
        (now, ids),
    )
    await conn.execute(
        "UPDATE runs SET status = 'pending', updated_at = %s, recovered = recovered + %s "
        "WHERE id = ANY(%s) AND status IN ('running', 'waiting')",
        (now, int(recovered), ids),
    )


async def lock_key(conn: Conn, key: str) -> None:
    """Serialise admission decisions on one concurrency key until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))


# Finishing a run in one round trip: its job goes (the fence), the run closes, its event
# subscriptions go and its trigger key is freed. Every part is keyed on the deleted job, so a
# refused fence changes nothing.
_FINISH = (
    "WITH job AS (DELETE FROM jobs WHERE run_id = %(run)s AND owner = %(owner)s "
    "AND token = %(token)s RETURNING run_id), "
    "run AS (UPDATE runs SET status = %(status)s, output = %(output)s, error = %(error)s, "
    "completed_at = %(now)s, updated_at = %(now)s WHERE id IN (SELECT run_id FROM job) "
    "AND status = ANY(%(sources)s) RETURNING parent_id, concurrency_key), "
    "subs AS (DELETE FROM subscriptions WHERE run_id IN (SELECT run_id FROM job) RETURNING id), "
    "filters AS (DELETE FROM subscription_filters "
    "WHERE subscription_id IN (SELECT id FROM subs)), "
    "keys AS (UPDATE trigger_runs SET closed_at = %(now)s "
    "WHERE run_id IN (SELECT run_id FROM job) AND closed_at IS NULL) "
    "SELECT (SELECT count(*) FROM job), (SELECT count(*) FROM run), "
    "(SELECT parent_id FROM run), (SELECT concurrency_key FROM run)"
)


async def finish(
    conn: Conn,
    fence: Fence,
    status: RunStatus,
    output: bytes | None,
    error: bytes | None,
    now: float,
    sources: Sequence[str],
) -> None:
    """Close a run under its fence (``LeaseLostError``, ``RunStateError``) and what hangs on it."""
    cur = await conn.execute(
        _FINISH,
        {
            "run": fence.run_id,
            "owner": fence.owner,
            "token": fence.token,
            "status": str(status),
            "output": output,
            "error": error,
            "now": now,
            "sources": list(sources),
        },
    )
    row = await cur.fetchone()
    assert row is not None
    jobs, runs, parent_id, concurrency_key = row
    if jobs != 1:
        raise LeaseLostError(f"lease on run {fence.run_id!r} lost: write rejected")
    if runs != 1:
        # The job is already gone in this transaction: the writer rolls the operation back.
        raise RunStateError(f"run {fence.run_id!r} cannot become {status}")
    if parent_id is not None:
        await nudge(conn, [parent_id], now)
    if concurrency_key is not None:
        # As in close_run: taken after the run is closed, so no job stays blocked.
        await lock_key(conn, concurrency_key)
        await conn.execute(
            "UPDATE jobs SET blocked = 0 WHERE blocked = 1 AND concurrency_key = %s",
            (concurrency_key,),
        )


Row = tuple[str, str | None, int | None]


async def claim(
    conn: Conn, owner: str, kinds: list[str], limit: int, now: float, lease_until: float
) -> list[Claim]:
    """Lease ready jobs; runs inside the caller's transaction.

    Rows are locked a few at a time, in queue order, skipping those another claim holds:
    locking a whole look-ahead window at once would hide its extra rows from concurrent
    claims until this one commits. Like the SQLite store, a claim examines at most
    ``limit * 2 + 8`` ready jobs, so jobs held back by a concurrency limit do not starve the
    rest of the batch.
    """
    chosen: list[str] = []
    admitted: list[str] = []
    blocked: list[str] = []
    open_per_key: dict[str, int] = {}
    busy: set[str] = set()
    examined: list[str] = []
    window = limit * 2 + 8
    while len(chosen) < limit and len(examined) < window:
        ask = min(limit - len(chosen), window - len(examined))
        cur = await conn.execute(
            "SELECT run_id, concurrency_key, concurrency_limit FROM jobs "
            "WHERE owner IS NULL AND blocked = 0 AND available_at IS NOT NULL "
            "AND available_at <= %s AND kind = ANY(%s) AND run_id <> ALL(%s) "
            "ORDER BY priority DESC, available_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (now, kinds, examined, ask),
        )
        rows: list[Row] = await cur.fetchall()
        examined.extend(row[0] for row in rows)
        await _count_open(conn, rows, open_per_key, busy)
        took, kept_back = _admit(rows, ask, open_per_key, busy)
        chosen.extend(took)
        taken = set(took)
        admitted.extend(row[0] for row in rows if row[0] in taken and row[1] is not None)
        blocked.extend(kept_back)
        if len(rows) < ask:
            break
    if blocked:
        await conn.execute("UPDATE jobs SET blocked = 1 WHERE run_id = ANY(%s)", (blocked,))
    if not chosen:
        return []
    if admitted:
        await conn.execute(
            "UPDATE jobs SET concurrency_key = NULL WHERE run_id = ANY(%s)", (admitted,)
        )
    cur = await conn.execute(
        "UPDATE jobs SET owner = %s, token = token + 1, lease_expires_at = %s, nudged = 0 "
        "WHERE run_id = ANY(%s) RETURNING run_id, token",
        (owner, lease_until, chosen),
    )
    tokens: dict[str, int] = {run_id: token for run_id, token in await cur.fetchall()}
    await conn.execute(
        "UPDATE runs SET status = 'running', updated_at = %s, "
        "started_at = coalesce(started_at, %s) "
        "WHERE id = ANY(%s) AND status IN ('pending', 'waiting')",
        (now, now, chosen),
    )
    cur = await conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ANY(%s)", (chosen,))
    runs = {row[0]: run_from_row(row) for row in await cur.fetchall()}
    histories = await fetch_steps(conn, chosen)
    signals = await fetch_signals(conn, chosen)
    return [
        Claim(
            run=runs[run_id],
            fence=Fence(run_id, owner, tokens[run_id]),
            history=histories.get(run_id, {}),
            signals=signals.get(run_id, []),
        )
        for run_id in chosen
        if run_id in runs
    ]


async def _count_open(
    conn: Conn, rows: list[Row], open_per_key: dict[str, int], busy: set[str]
) -> None:
    """Lock the concurrency keys of ``rows`` not seen yet and count their open runs."""
    keys = sorted({key for _, key, _ in rows if key is not None} - busy - set(open_per_key))
    if not keys:
        return
    # Try-locks only: a key another transaction is deciding on is left for the next claim,
    # and a claim never waits for a lock while it holds job rows (no deadlock).
    cur = await conn.execute(
        "SELECT key FROM unnest(%s::text[]) AS key WHERE pg_try_advisory_xact_lock(hashtext(key))",
        (keys,),
    )
    held = [row[0] for row in await cur.fetchall()]
    busy.update(set(keys) - set(held))
    if not held:
        return
    cur = await conn.execute(
        "SELECT concurrency_key, count(*) FROM runs WHERE concurrency_key = ANY(%s) "
        "AND completed_at IS NULL AND started_at IS NOT NULL GROUP BY concurrency_key",
        (held,),
    )
    open_per_key.update({key: 0 for key in held})
    open_per_key.update({key: int(n) for key, n in await cur.fetchall()})


def _admit(
    rows: list[Row], want: int, open_per_key: dict[str, int], busy: set[str]
) -> tuple[list[str], list[str]]:
    """Which rows to take and which to mark blocked, in queue order (counts are updated)."""
    take: list[str] = []
    block: list[str] = []
    for run_id, key, key_limit in rows:
        if len(take) >= want:
            break
        if key is not None:
            if key in busy:
                continue  # another worker is admitting runs of this key right now
            if key_limit is not None and open_per_key[key] >= key_limit:
                block.append(run_id)
                continue
            open_per_key[key] += 1
        take.append(run_id)
    return take, block


async def fetch_run(conn: Conn, run_id: str) -> RunRecord | None:
    cur = await conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,))
    row = await cur.fetchone()
    return None if row is None else run_from_row(row)


async def fetch_steps(conn: Conn, run_ids: Sequence[str]) -> dict[str, dict[int, StepRecord]]:
    out: dict[str, dict[int, StepRecord]] = {}
    cur = await conn.execute(
        f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ANY(%s)", (list(run_ids),)
    )
    for row in await cur.fetchall():
        step = StepRecord(
            run_id=row[0],
            seq=row[1],
            kind=StepKind(row[2]),
            name=row[3],
            status=StepStatus(row[4]),
            output=decode(row[5]),
            error=decode(row[6]),
            attempts=row[7],
            wake_at=row[8],
            started_at=row[9],
            completed_at=row[10],
        )
        out.setdefault(step.run_id, {})[step.seq] = step
    return out


async def fetch_signals(conn: Conn, run_ids: Sequence[str]) -> dict[str, list[SignalRecord]]:
    out: dict[str, list[SignalRecord]] = {}
    cur = await conn.execute(
        "SELECT id, run_id, name, payload, created_at FROM signals "
        "WHERE consumed_seq IS NULL AND run_id = ANY(%s) ORDER BY id",
        (list(run_ids),),
    )
    for row in await cur.fetchall():
        out.setdefault(row[1], []).append(
            SignalRecord(
                id=row[0], run_id=row[1], name=row[2], payload=decode(row[3]), created_at=row[4]
            )
        )
    return out
