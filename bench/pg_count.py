"""Statements and round trips a process sends to PostgreSQL, counted on the client side.

The benchmark's worker processes import ``flows.py``, which calls :func:`install_from_env`:
with ``BENCH_PG_COUNT=<folder>`` set, psycopg's async connection and cursor are wrapped so
that every SQL statement (``execute``, each row of ``executemany``, and the ``BEGIN``,
``COMMIT``, ``SAVEPOINT`` … a transaction block sends) and every round trip adds to a
counter. A round trip is a wait for the server's answers: outside pipeline mode, one per
statement; in pipeline mode, one per flush that waits for results (a fetch, a sync, the end of
the pipeline), however many statements went with it. On ``SIGUSR1`` the process
appends its counters to ``<folder>/<pid>.jsonl``, so the benchmark reads them at the start and
at the end of a phase and divides the difference by the runs of that phase. No server
extension (``pg_stat_statements``) and no server log are needed.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

COUNTS = {"statements": 0, "round_trips": 0}
_installed = False
_exiting: list[Any] = []


def install() -> None:
    """Wrap psycopg's async connection and cursor (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    from psycopg import AsyncConnection, AsyncCursor
    from psycopg._pipeline_base import BasePipeline

    wait = AsyncConnection.wait
    exec_command = AsyncConnection._exec_command
    execute = AsyncCursor.execute
    executemany = AsyncCursor.executemany

    async def counted_wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        # Neither a listening connection waiting for notifications nor the commit of an idle
        # autocommit connection (a pool handing it back) is a round trip.
        name = getattr(gen, "__name__", "")
        idle = name == "_commit_gen" and self.pgconn.transaction_status == 0
        if self._pipeline is None and name != "notifies" and not idle:
            COUNTS["round_trips"] += 1
        return await wait(self, gen, *args, **kwargs)

    sync_gen, exit_gen, fetch_gen = (
        BasePipeline._sync_gen,
        BasePipeline._exit_gen,
        BasePipeline._fetch_gen,
    )

    def counted_sync(self: Any) -> Any:
        COUNTS["round_trips"] += 1
        return sync_gen(self)

    def counted_exit(self: Any) -> Any:
        # One round trip: the Sync, with the results it waits for (its own fetch is not
        # counted again).
        COUNTS["round_trips"] += 1
        _exiting.append(self)
        try:
            return (yield from exit_gen(self))
        finally:
            _exiting.remove(self)

    def counted_fetch(self: Any, *, flush: bool) -> Any:
        if flush and self.result_queue and self not in _exiting:
            COUNTS["round_trips"] += 1
        return fetch_gen(self, flush=flush)

    def counted_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["statements"] += 1
        return exec_command(self, *args, **kwargs)

    async def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["statements"] += 1
        return await execute(self, *args, **kwargs)

    async def counted_executemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        rows = list(params_seq)
        COUNTS["statements"] += len(rows)
        return await executemany(self, query, rows, **kwargs)

    AsyncConnection.wait = counted_wait  # type: ignore[method-assign]
    BasePipeline._sync_gen = counted_sync  # type: ignore[method-assign]
    BasePipeline._exit_gen = counted_exit  # type: ignore[method-assign]
    BasePipeline._fetch_gen = counted_fetch  # type: ignore[method-assign]
    AsyncConnection._exec_command = counted_command  # type: ignore[method-assign]
    AsyncCursor.execute = counted_execute  # type: ignore[method-assign]
    AsyncCursor.executemany = counted_executemany  # type: ignore[method-assign]


def snapshot() -> dict[str, int]:
    return dict(COUNTS)


def install_from_env() -> None:
    """In a worker process: count, and append the counters to a file on ``SIGUSR1``."""
    folder = os.environ.get("BENCH_PG_COUNT")
    if not folder:
        return
    install()
    out = Path(folder) / f"{os.getpid()}.jsonl"

    def dump(signum: int, frame: Any) -> None:
        with out.open("a") as f:
            f.write(json.dumps(snapshot()) + "\n")

    signal.signal(signal.SIGUSR1, dump)


def ask(folder: Path, pids: list[int]) -> dict[int, dict[str, int]]:
    """Have each worker append its counters, then read the latest line of each."""
    import time

    before = {pid: _lines(folder, pid) for pid in pids}
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    out: dict[int, dict[str, int]] = {}
    while time.monotonic() < deadline and len(out) < len(pids):
        for pid in pids:
            lines = _lines(folder, pid)
            if len(lines) > len(before[pid]):
                out[pid] = json.loads(lines[-1])
        time.sleep(0.02)
    return out


def _lines(folder: Path, pid: int) -> list[str]:
    path = folder / f"{pid}.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def per_run(
    start: dict[int, dict[str, int]], end: dict[int, dict[str, int]], runs: int
) -> dict[str, float]:
    """Statements and round trips per run of the workers between two readings."""
    out: dict[str, float] = {}
    for key in ("statements", "round_trips"):
        total = sum(end[pid][key] - start.get(pid, {}).get(key, 0) for pid in end)
        out[f"worker_{key}_per_run"] = round(total / runs, 2) if runs else 0.0
    return out
