"""SQL of the SQLite store: statements run inside the writer's transaction, and row mapping."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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

_CHUNK = 500  # stay well below SQLite's limit on bound variables


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _insert_run(
    conn: sqlite3.Connection, new: NewRun, now: float, lease: tuple[str, float] | None = None
) -> bool:
    cur = conn.execute(
        f"INSERT INTO runs ({RUN_INSERT_COLUMNS}) VALUES ({_marks(range(15))}) "
        "ON CONFLICT (id) DO NOTHING",
        run_insert_params(new, now, lease),
    )
    if cur.rowcount != 1:
        return False
    conn.execute(
        f"INSERT INTO jobs ({JOB_INSERT_COLUMNS}) VALUES ({_marks(range(9))})",
        job_insert_params(new, now, lease),
    )
    return True


def _check_fence(conn: sqlite3.Connection, fence: Fence) -> None:
    row = conn.execute(
        "SELECT 1 FROM jobs WHERE run_id = ? AND owner = ? AND token = ?",
        (fence.run_id, fence.owner, fence.token),
    ).fetchone()
    if row is None:
        raise LeaseLostError(f"lease on run {fence.run_id!r} lost: write rejected")


_UPSERT_STEP = (
    "INSERT INTO steps (run_id, seq, kind, name, status, output, error, attempts, wake_at, "
    "started_at, completed_at) {source} "
    "ON CONFLICT (run_id, seq) DO UPDATE SET status = excluded.status, "
    "output = excluded.output, error = excluded.error, attempts = excluded.attempts, "
    "wake_at = excluded.wake_at, completed_at = excluded.completed_at "
    "WHERE steps.status NOT IN ('completed', 'failed')"
)
# The fence is checked by the insert itself: no row is written unless the lease is still held.
_FENCED_UPSERT_STEP = _UPSERT_STEP.format(
    source="SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM jobs "
    "WHERE run_id = ? AND owner = ? AND token = ?)"
)
_PLAIN_UPSERT_STEP = _UPSERT_STEP.format(source="VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _upsert_step(conn: sqlite3.Connection, step: StepRecord) -> None:
    conn.execute(_PLAIN_UPSERT_STEP, step_params(step))


def _fenced_upsert_step(conn: sqlite3.Connection, fence: Fence, step: StepRecord) -> None:
    cur = conn.execute(
        _FENCED_UPSERT_STEP, (*step_params(step), fence.run_id, fence.owner, fence.token)
    )
    if cur.rowcount != 1:
        # Either the lease is gone, or the entry was already final (a duplicate completion,
        # which is ignored so that a completion is recorded exactly once).
        _check_fence(conn, fence)


def _nudge(conn: sqlite3.Connection, run_ids: Sequence[str], now: float) -> None:
    """Wake parked runs now; a run that is executing re-checks before it parks."""
    for chunk in _chunks(run_ids):
        conn.execute(
            f"UPDATE jobs SET nudged = 1, available_at = CASE WHEN owner IS NULL THEN ? "
            f"ELSE available_at END WHERE run_id IN ({_marks(chunk)})",
            (now, *chunk),
        )


# In the updates by id below, ``+status`` keeps SQLite from walking runs_status_idx over every
# pending run instead of looking the ids up by primary key.


def _requeue(
    conn: sqlite3.Connection, run_ids: Sequence[str], now: float, *, recovered: bool
) -> None:
    for chunk in _chunks(run_ids):
        marks = _marks(chunk)
        conn.execute(
            f"UPDATE jobs SET owner = NULL, lease_expires_at = NULL, available_at = ? "
            f"WHERE run_id IN ({marks})",
            (now, *chunk),
        )
        conn.execute(
            f"UPDATE runs SET status = 'pending', updated_at = ?, "
            f"recovered = recovered + ? WHERE id IN ({marks}) "
            f"AND +status IN ('running', 'waiting')",
            (now, int(recovered), *chunk),
        )


def _close_run(
    conn: sqlite3.Connection,
    run_id: str,
    status: RunStatus,
    output: bytes | None,
    error: bytes | None,
    now: float,
    sources: Sequence[str],
) -> None:
    cur = conn.execute(
        f"UPDATE runs SET status = ?, output = ?, error = ?, completed_at = ?, updated_at = ? "
        f"WHERE id = ? AND status IN ({_marks(sources)}) RETURNING parent_id, concurrency_key",
        (str(status), output, error, now, now, run_id, *sources),
    )
    row = cur.fetchone()
    cur.close()
    if row is None:
        raise RunStateError(f"run {run_id!r} cannot become {status}")
    parent_id, concurrency_key = row
    if parent_id is not None:
        _nudge(conn, [parent_id], now)
    if concurrency_key is not None:
        conn.execute(
            "UPDATE jobs SET blocked = 0 WHERE blocked = 1 AND concurrency_key = ?",
            (concurrency_key,),
        )


def _claim(
    conn: sqlite3.Connection,
    owner: str,
    kinds: list[str],
    limit: int,
    now: float,
    lease_until: float,
) -> list[Claim]:
    # Look a little past ``limit`` so that jobs held back by a concurrency limit do not starve
    # the rest of the batch.
    rows = conn.execute(
        f"SELECT run_id, concurrency_key, concurrency_limit FROM jobs "
        # The unary + keeps SQLite from choosing jobs_due_idx for the range and then sorting
        # every ready job: walking jobs_ready_idx in order stops after LIMIT rows.
        f"WHERE owner IS NULL AND blocked = 0 AND available_at IS NOT NULL "
        f"AND +available_at <= ? AND kind IN ({_marks(kinds)}) "
        f"ORDER BY priority DESC, available_at LIMIT ?",
        (now, *kinds, limit * 2 + 8),
    ).fetchall()
    chosen: list[str] = []
    admitted: list[str] = []
    blocked: list[str] = []
    open_per_key: dict[str, int] = {}
    for run_id, key, key_limit in rows:
        if len(chosen) >= limit:
            break
        if key is not None:
            if key not in open_per_key:
                open_per_key[key] = conn.execute(
                    "SELECT count(*) FROM runs WHERE concurrency_key = ? AND completed_at IS NULL "
                    "AND started_at IS NOT NULL",
                    (key,),
                ).fetchone()[0]
            if open_per_key[key] >= key_limit:
                blocked.append(run_id)
                continue
            open_per_key[key] += 1
            admitted.append(run_id)
        chosen.append(run_id)
    for chunk in _chunks(blocked):
        conn.execute(f"UPDATE jobs SET blocked = 1 WHERE run_id IN ({_marks(chunk)})", chunk)
    if not chosen:
        return []
    for chunk in _chunks(admitted):
        conn.execute(
            f"UPDATE jobs SET concurrency_key = NULL WHERE run_id IN ({_marks(chunk)})", chunk
        )
    tokens: dict[str, int] = {}
    for chunk in _chunks(chosen):
        marks = _marks(chunk)
        for run_id, token in conn.execute(
            f"UPDATE jobs SET owner = ?, token = token + 1, lease_expires_at = ?, nudged = 0 "
            f"WHERE run_id IN ({marks}) RETURNING run_id, token",
            (owner, lease_until, *chunk),
        ):
            tokens[run_id] = token
        conn.execute(
            f"UPDATE runs SET status = 'running', updated_at = ?, "
            f"started_at = coalesce(started_at, ?) WHERE id IN ({marks}) "
            f"AND +status IN ('pending', 'waiting')",
            (now, now, *chunk),
        )
    histories = _fetch_steps(conn, chosen)
    signals = _fetch_signals(conn, chosen)
    claims: list[Claim] = []
    for chunk in _chunks(chosen):
        for row in conn.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE id IN ({_marks(chunk)})", chunk
        ):
            run = run_from_row(row)
            claims.append(
                Claim(
                    run=run,
                    fence=Fence(run.id, owner, tokens[run.id]),
                    history=histories.get(run.id, {}),
                    signals=signals.get(run.id, []),
                )
            )
    return claims


def _fetch_run(conn: sqlite3.Connection, run_id: str) -> RunRecord | None:
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else run_from_row(row)


def _fetch_steps(
    conn: sqlite3.Connection, run_ids: Sequence[str]
) -> dict[str, dict[int, StepRecord]]:
    out: dict[str, dict[int, StepRecord]] = {}
    for chunk in _chunks(run_ids):
        for row in conn.execute(
            f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id IN ({_marks(chunk)})", chunk
        ):
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


def _fetch_signals(
    conn: sqlite3.Connection, run_ids: Sequence[str]
) -> dict[str, list[SignalRecord]]:
    out: dict[str, list[SignalRecord]] = {}
    for chunk in _chunks(run_ids):
        for row in conn.execute(
            f"SELECT id, run_id, name, payload, created_at FROM signals "
            f"WHERE consumed_seq IS NULL AND run_id IN ({_marks(chunk)}) ORDER BY id",
            chunk,
        ):
            out.setdefault(row[1], []).append(
                SignalRecord(
                    id=row[0], run_id=row[1], name=row[2], payload=decode(row[3]), created_at=row[4]
                )
            )
    return out


def dump_schema(path: str | Path) -> list[tuple[str, str, str]]:
    """The schema of a SQLite file as (type, name, normalised sql) rows, for comparisons."""
    conn = sqlite3.connect(str(path))
    try:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall()
        meta = [
            ("pragma", "user_version", str(conn.execute("PRAGMA user_version").fetchone()[0])),
            ("pragma", "application_id", str(conn.execute("PRAGMA application_id").fetchone()[0])),
        ]
    finally:
        conn.close()
    return [(t, n, " ".join((s or "").split())) for t, n, s in rows] + meta
