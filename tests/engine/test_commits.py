"""Flushes to disk per run on SQLite: each is a commit that wrote, and each costs an fsync.

A run started by the process whose worker executes it is created already leased (one commit),
each step's record is one commit, and the last step's record shares its commit with the run's
completion. Background loops may add commits of their own, never remove any: the fewest seen
over a few runs is what a run needs.
"""

from __future__ import annotations

from pathlib import Path

from opsloom import App, Context, FakeClock, WorkerOptions
from opsloom.store.dialects.sqlite import SqliteStore

RUNS = 5


async def fewest_commits(path: Path, steps: int) -> int:
    """The fewest commits that wrote, over a few runs of ``steps`` steps one after another."""
    # No reaper and no heartbeat while counting.
    options = WorkerOptions(concurrency=8, reap_seconds=None, heartbeat_seconds=3600)
    path.mkdir()
    app = App(f"sqlite:///{path / 'opsloom.db'}", worker=options, clock=FakeClock())

    @app.step(name="count")
    async def count(done: int) -> int:
        return done + 1

    @app.workflow(name="sequence")
    async def sequence(ctx: Context, length: int) -> int:
        done = 0
        while done < length:
            done = await ctx.step(count, done)
        return done

    counts = []
    async with app:
        store = app.store
        assert isinstance(store, SqliteStore)
        for _ in range(RUNS):
            before = store.durable_commits
            handle = await app.start("sequence", steps)
            assert await handle.result(timeout=30) == steps
            counts.append(store.durable_commits - before)
    return min(counts)


async def test_commits__a_run_started_where_it_executes_takes_one_more_than_its_steps(
    tmp_path: Path,
) -> None:
    # Start and lease; one per step, the last with the completion.
    assert [await fewest_commits(tmp_path / str(n), n) for n in (1, 3)] == [2, 4]
