"""Concurrency keys under load: slots that free while claims are in flight are never lost.

Many keys, many runs per key, limits of one and two, steps that finish at once and steps that
wait for a signal: every run completes, and no key ever has more open runs than its limit.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from opsloom import App, Context, WorkerOptions

KEYS = 12
RUNS_PER_KEY = 8


async def test_concurrency_keys__every_run_completes_and_limits_hold(
    make_app: Callable[..., App],
) -> None:
    # poll_seconds is long on purpose: a slot freed without a wake-up shows as a stall.
    app = make_app(worker=WorkerOptions(concurrency=32, poll_seconds=30, reap_seconds=0.1))
    open_now: dict[str, int] = defaultdict(int)
    most: dict[str, int] = defaultdict(int)

    @app.step(name="hold")
    async def hold(key: str, pause: float) -> None:
        open_now[key] += 1
        most[key] = max(most[key], open_now[key])
        await asyncio.sleep(pause)
        open_now[key] -= 1

    @app.workflow(name="keyed", concurrency=2, concurrency_key=lambda data: data["key"])
    async def keyed(ctx: Context, data: dict[str, Any]) -> int:
        await ctx.step(hold, data["key"], data["pause"])
        if data["wait"]:
            await ctx.wait_for("go")
        await ctx.step(hold, data["key"], 0)
        return int(data["n"])

    @app.workflow(name="single", concurrency=1, concurrency_key=lambda data: data["key"])
    async def single(ctx: Context, data: dict[str, Any]) -> int:
        await ctx.step(hold, "s-" + data["key"], data["pause"])
        return int(data["n"])

    async with app:
        handles = []
        for n in range(RUNS_PER_KEY):
            for k in range(KEYS):
                data = {"key": f"k{k}", "n": n, "pause": (n * k % 3) / 1000, "wait": n % 3 == 0}
                handles.append(await app.start("keyed", data))
                handles.append(await app.start("single", {**data, "wait": False}))
        waiting = [h for h, (n, k) in zip(handles[::2], _grid(), strict=True) if n % 3 == 0]

        async def release() -> None:
            # Signal the waiting runs while the others are being claimed and finished.
            for handle in waiting:
                await app.signal(handle.run_id, "go", None)
                await asyncio.sleep(0)

        async with asyncio.timeout(60):
            _, results = await asyncio.gather(
                release(), asyncio.gather(*(h.result(timeout=60) for h in handles))
            )
    assert sorted(results) == sorted(n for n, _ in _grid() for _ in range(2))
    assert max(v for k, v in most.items() if not k.startswith("s-")) <= 2
    assert max(v for k, v in most.items() if k.startswith("s-")) == 1


def _grid() -> list[tuple[int, int]]:
    return [(n, k) for n in range(RUNS_PER_KEY) for k in range(KEYS)]
