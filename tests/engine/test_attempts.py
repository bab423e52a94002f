"""Every failed attempt of a step is kept in its history; retries are bounded in time too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from engine_waits import eventually, parked

from opsloom import App, Context, FakeClock, RetryPolicy, RunFailedError


async def test_attempts__a_retried_step_keeps_why_each_attempt_failed(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    tries: list[int] = []

    @app.step(name="flaky", retry=RetryPolicy(attempts=4, initial_delay=30, jitter=0))
    async def flaky() -> str:
        tries.append(len(tries) + 1)
        if len(tries) == 1:
            raise ConnectionError("refused")
        if len(tries) == 2:
            raise TimeoutError("slow")
        return "ok"

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        return await ctx.step(flaky)

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)  # waiting for the second attempt
        clock.advance(31)
        await eventually(lambda: asyncio.sleep(0, len(tries) == 2))
        await parked(app, handle.run_id)  # waiting for the third
        clock.advance(61)
        assert await handle.result(timeout=10) == "ok"
        (step,) = (await app.get_run(handle.run_id)).steps
    assert step.attempts == 3 and step.error is not None
    log = step.error["attempts"]
    assert [(a["attempt"], a["type"], a["message"]) for a in log] == [
        (1, "ConnectionError", "refused"),
        (2, "TimeoutError", "slow"),
    ]
    assert all("Error" in a["traceback"] and a["failed_at"] >= a["started_at"] for a in log)
    assert log[1]["started_at"] - log[0]["started_at"] >= 30


async def test_attempts__no_retry_starts_past_max_total(make_app: Callable[..., App]) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    tries: list[float] = []

    policy = RetryPolicy(attempts=100, initial_delay=60, backoff=1, jitter=0, max_total=150)

    @app.step(name="down", retry=policy)
    async def down() -> None:
        tries.append(clock.now())
        raise ConnectionError("still down")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.step(down)

    async with app:
        handle = await app.start("wf")
        for done in (1, 2):
            await eventually(lambda done=done: asyncio.sleep(0, len(tries) == done))
            await parked(app, handle.run_id)
            clock.advance(61)
        with pytest.raises(RunFailedError) as info:
            await handle.result(timeout=10)
    assert len(tries) == 3, "a fourth attempt would start 180 s after the first"
    assert info.value.error is not None and info.value.error["data"]["attempts"] == 3


def test_retry_policy__max_total_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_total"):
        RetryPolicy(max_total=0)
