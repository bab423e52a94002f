"""Awaiting a run's result: what the caller gets, however long it agrees to wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from opsloom import App, Context, RunNotFoundError


def register(app: App) -> None:
    @app.workflow(name="double")
    async def double(ctx: Context, x: int) -> int:
        return 2 * x


async def test_result__of_an_ended_run_needs_no_time_to_wait(
    make_app: Callable[..., App],
) -> None:
    worker = make_app()
    register(worker)
    async with worker:
        handle = await worker.start("double", 21)
        assert await handle.result(timeout=10) == 42
    client = make_app(client=True)
    register(client)
    async with client:
        # Asked together: none of them waits for the others' look-ups.
        outcomes = await asyncio.gather(
            *(client.result(handle.run_id, timeout=0) for _ in range(5)),
            client.result("no-such-run", timeout=0),
            return_exceptions=True,
        )
    assert outcomes[:5] == [42] * 5
    assert isinstance(outcomes[5], RunNotFoundError)


async def test_result__of_an_open_run_times_out(make_app: Callable[..., App]) -> None:
    client = make_app(client=True)
    register(client)
    async with client:
        handle = await client.start("double", 1)
        with pytest.raises(TimeoutError, match="did not end within 0"):
            await handle.result(timeout=0)
        with pytest.raises(TimeoutError, match=r"did not end within 0\.01s"):
            await handle.result(timeout=0.01)
