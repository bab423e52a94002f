"""The workflows the benchmark runs, in one place for the embedded and the subprocess worker.

On SQLite, W1-W3 build their own :class:`~opsloom.App` with :func:`build` (embedded worker, a
fresh database). W4, and every workload on PostgreSQL, run ``opsloom worker --app flows:app``
from this folder, which loads ``app`` below; the CLI gives it its database and worker options.
"""

from __future__ import annotations

import asyncio
import os
import time

import pg_count

from opsloom import App, Context, WorkerOptions, current_step

#: How long the middle step of W4's workflow takes: the kill lands inside it.
CRASH_STEP_SECONDS = 2.0


async def add_one(x: int) -> int:
    return x + 1


async def chain(ctx: Context, x: int) -> int:
    """W1: three sequential steps."""
    x = await ctx.step(add_one, x)
    x = await ctx.step(add_one, x)
    return await ctx.step(add_one, x)


async def fanout(ctx: Context, width: int) -> int:
    """W2: ``width`` steps in parallel, then their sum."""
    results = await ctx.gather(*(ctx.step(add_one, i) for i in range(width)))
    return sum(results)


async def waiting(ctx: Context, i: int) -> bool:
    """W3: park until signal "go" arrives; report whether it carried this run's number."""
    return bool(await ctx.wait_for("go") == i)


async def logged_step(log_path: str, number: int, seconds: float) -> int:
    """Append "<run_id> <number> <pid>" on entry: a body that is run twice shows up twice.

    One ``write(2)`` on an ``O_APPEND`` descriptor, so lines of concurrent steps (and of two
    worker processes) never interleave.
    """
    line = f"{current_step().run_id} {number} {os.getpid()}\n".encode()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    if seconds > 0:
        await asyncio.sleep(seconds)
    return number


async def crash(ctx: Context, log_path: str) -> int:
    """W4: three logged steps; the second one is slow enough to be killed half-way."""
    await ctx.step(logged_step, log_path, 1, 0.0)
    await ctx.step(logged_step, log_path, 2, CRASH_STEP_SECONDS)
    return await ctx.step(logged_step, log_path, 3, 0.0)


def stamp() -> float:
    """The wall clock when this step body starts (the client compares it with its own)."""
    return time.time()


async def pickup(ctx: Context) -> float:
    """Idle pickup latency: one step that tells when a worker began executing the run."""
    return float(await ctx.step(stamp))


def build(
    database_url: str | None = None,
    *,
    worker: WorkerOptions | None = WorkerOptions(),
    synchronous: str | None = None,
) -> App:
    """An App with the benchmark's workflows registered."""
    app = App(database_url, worker=worker, sqlite_synchronous=synchronous)
    if os.environ.get("BENCH_OBSERVE") == "1":
        # What ``opsloom up`` attaches: the cost of watching the engine, for A/B runs.
        from opsloom.analytics.metrics import Metrics

        app.observe(Metrics())
    app.step(name="add_one")(add_one)
    app.step(name="logged_step")(logged_step)
    app.step(name="stamp")(stamp)
    for fn in (chain, fanout, waiting, crash, pickup):
        app.workflow(name=fn.__name__)(fn)
    return app


#: For ``opsloom worker --app flows:app`` (W4); constructing an App does no I/O.
app = build()
# With BENCH_PG_COUNT set, the worker process counts its statements (see pg_count.py).
pg_count.install_from_env()
