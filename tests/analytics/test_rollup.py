"""Rollups: histograms close to the exact percentiles, and an upgrade rolls the history up."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from opsloom.analytics.report import percentile, report
from opsloom.codec import encode
from opsloom.store.dialects.sqlite import APPLICATION_ID, SqliteStore
from opsloom.store.migration import migrations
from opsloom.store.rollup import (
    BOUNDS,
    BUCKETS,
    ROLLUP_VERSION,
    SHARDS,
    Finished,
    FinishedStep,
    bucket_of,
    bucket_percentile,
    sqlite_batched,
    upserts,
)


def test_rollup__histogram_percentiles_are_within_ten_percent() -> None:
    rng = random.Random(3)
    for scale in (0.004, 0.3, 12.0, 5000.0):
        values = sorted(scale * rng.lognormvariate(0, 0.8) for _ in range(5000))
        counts = [0] * BUCKETS
        for value in values:
            counts[bucket_of(value)] += 1
        for q in (50, 95, 99):
            exact = percentile(values, q)
            assert exact is not None
            assert bucket_percentile(counts, q) == pytest.approx(exact, rel=0.1)
    assert bucket_percentile([0] * BUCKETS, 50) is None
    assert bucket_of(0.0) == 0 and bucket_of(BOUNDS[-1] * 10) == BUCKETS - 1


def build_old(path: Path, now: float) -> None:
    """A store as the release before rollups left it, with three finished runs and one open."""
    conn = sqlite3.connect(path)
    for migration in migrations("sqlite")[: ROLLUP_VERSION - 1]:
        conn.executescript(f"BEGIN; {migration.sql}; COMMIT;")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {ROLLUP_VERSION - 1}")
    error = encode({"type": "KeyError", "message": "no key 'abc' in 12 tries"})
    runs = [
        ("a", "completed", None, now - 100, now - 99, now - 90),
        ("b", "completed", None, now - 100, now - 98, now - 88),
        ("c", "failed", error, now - 50, now - 50, now - 45),
        ("d", "running", None, now - 10, now - 10, None),
    ]
    for run_id, status, err, created, started, completed in runs:
        conn.execute(
            "INSERT INTO runs (id, workflow, version, status, error, created_at, started_at, "
            "updated_at, completed_at) VALUES (?, 'wf', '1', ?, ?, ?, ?, ?, ?)",
            (run_id, status, err, created, started, created, completed),
        )
        conn.execute(
            "INSERT INTO steps (run_id, seq, kind, name, status, error, attempts, started_at, "
            "completed_at) VALUES (?, 1, 'step', 'fetch', ?, ?, ?, ?, ?)",
            (
                run_id,
                "failed" if status == "failed" else "completed",
                err,
                2 if run_id == "b" else 1,
                started,
                started + 1,
            ),
        )
    conn.commit()
    conn.close()


async def test_rollup__upgrade_rolls_up_the_finished_history(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    path = tmp_path / "old.db"
    build_old(path, now)
    store = SqliteStore(f"sqlite:///{path}")
    await store.open()
    try:
        summary = await report(store, "summary", now, 3600)
        steps = await report(store, "steps", now, 3 * 86400)
    finally:
        await store.close()
    assert isinstance(summary, dict) and isinstance(steps, list)
    assert summary["runs"] == 3 and summary["by_status"] == {"completed": 2, "failed": 1}
    assert summary["duration_s"]["p50"] == pytest.approx(9.0, rel=0.1)
    assert summary["failure_reasons"] == [
        {"type": "KeyError", "message": "no key <value> in <n> tries", "count": 1}
    ]
    [fetch] = steps
    assert (fetch["count"], fetch["failed"], fetch["retry_rate"]) == (
        3,
        1,
        pytest.approx(1 / 3, abs=1e-4),
    )


def _rollup_tables(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: sorted(
            tuple(round(v, 6) if isinstance(v, float) else v for v in row)
            for row in conn.execute(f"SELECT * FROM {table}")
        )
        for table in ("run_rollups", "step_rollups", "failure_rollups")
    }


def test_rollup__batched_for_sqlite_gives_what_an_upsert_per_run_gives() -> None:
    rng = random.Random(7)
    now = 1_700_000_000.0
    runs = []
    for n in range(300):
        completed = now + rng.choice([0, 10, 4000, 90_000])  # other hours and days too
        created = completed - rng.lognormvariate(0, 1.5)
        started = None if n % 17 == 0 else created + rng.random() / 10
        failed = n % 5 == 0
        error = encode({"type": "KeyError", "message": f"no key {n}"})
        steps = [
            FinishedStep(
                rng.choice(["fetch", "notify"]),
                "failed" if failed and i == 0 else "completed",
                rng.choice([1, 1, 2]),
                None if started is None else started + i,
                None if started is None else started + i + rng.random(),
                error if failed and i == 0 else None,
            )
            for i in range(rng.randint(0, 3))
        ]
        reason = ("KeyError", "no key <n>") if failed else None
        status = "failed" if failed else "completed"
        wf = rng.choice(["wf", "other"])
        runs.append(
            (Finished(wf, "1", status, created, started, completed, steps, reason), n % SHARDS)
        )
    conns = [sqlite3.connect(":memory:") for _ in range(2)]
    for conn in conns:
        for migration in migrations("sqlite"):
            for statement in migration.statements():
                conn.execute(statement)
    for run, shard in runs:
        for sql, params in upserts(run, shard):
            conns[0].execute(sql, params)
    batch = sqlite_batched(runs)
    for sql, params in batch:
        conns[1].execute(sql, params)
    one_by_one, gathered = (_rollup_tables(conn) for conn in conns)
    assert one_by_one == gathered
    assert len(one_by_one["run_rollups"]) > 10
    assert len(batch) < sum(len(upserts(run, shard)) for run, shard in runs) / 2
