"""Steps: checkpointing, retries, timeouts, idempotency keys, sync functions."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from engine_waits import eventually, parked

from opsloom import (
    App,
    Context,
    FakeClock,
    RetryPolicy,
    RunFailedError,
    RunStatus,
    StepFailedError,
    current_step,
)
from opsloom.model import StepStatus


async def test_chain__runs_steps_in_order_and_records_each(app: App) -> None:
    @app.step()
    async def add_one(x: int) -> int:
        return x + 1

    @app.workflow(name="chain")
    async def chain(ctx: Context, x: int) -> int:
        for _ in range(3):
            x = await ctx.step(add_one, x)
        return x

    async with app:
        handle = await app.start("chain", 1)
        assert await handle.result(timeout=10) == 4
        run = await app.get_run(handle.run_id)
    assert run.status is RunStatus.COMPLETED and run.output == 4 and run.input == 1
    assert [(s.seq, s.name, s.output) for s in run.steps] == [
        (1, "test_chain__runs_steps_in_order_and_records_each.<locals>.add_one", 2),
        (2, "test_chain__runs_steps_in_order_and_records_each.<locals>.add_one", 3),
        (3, "test_chain__runs_steps_in_order_and_records_each.<locals>.add_one", 4),
    ]
    assert run.started_at is not None and run.completed_at is not None


async def test_start__same_run_id_returns_the_existing_run(app: App) -> None:
    calls: list[int] = []

    @app.workflow(name="once")
    async def once(ctx: Context, x: int) -> int:
        calls.append(x)
        return x

    async with app:
        first = await app.start("once", 1, run_id="fixed")
        second = await app.start("once", 2, run_id="fixed")
        assert first.created and not second.created
        assert await second.result(timeout=10) == 1
    assert calls == [1]


async def test_step__result_is_stored_as_json(app: App) -> None:
    @app.step()
    async def pair() -> tuple[int, int]:
        return (1, 2)

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> bool:
        value = await ctx.step(pair)
        return value == [1, 2]  # the same value the replay will see

    async with app:
        assert await (await app.start("wf")).result(timeout=10) is True


async def test_retry__follows_the_policy_with_durable_delays(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    attempts: list[float] = []

    @app.step(retry=RetryPolicy(attempts=3, initial_delay=10, backoff=3, jitter=0))
    async def flaky() -> str:
        attempts.append(clock.now())
        if len(attempts) < 3:
            raise ConnectionError(f"try {len(attempts)}")
        return "ok"

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        return await ctx.step(flaky)

    async with app:
        handle = await app.start("wf")
        await parked(app, handle.run_id)
        run = await app.get_run(handle.run_id)
        assert run.steps[0].status is StepStatus.RETRYING and run.steps[0].attempts == 1
        assert run.steps[0].wake_at == attempts[0] + 10
        clock.advance(9)
        await parked(app, handle.run_id)
        assert len(attempts) == 1
        clock.advance(1)
        await eventually(lambda: asyncio.sleep(0, len(attempts) == 2))
        await parked(app, handle.run_id)
        assert (await app.get_run(handle.run_id)).steps[0].wake_at == (attempts[1] + 30)
        clock.advance(30)
        assert await handle.result(timeout=10) == "ok"
    assert [t - attempts[0] for t in attempts] == [0, 10, 40]


async def test_retry__exhausted_fails_the_run_with_type_message_traceback(app: App) -> None:
    @app.step(retry=RetryPolicy(attempts=2, initial_delay=0))
    async def broken() -> None:
        raise ValueError("bad value 42")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.step(broken)

    async with app:
        handle = await app.start("wf")
        with pytest.raises(RunFailedError) as info:
            await handle.result(timeout=10)
        run = await app.get_run(handle.run_id)
    assert info.value.status == "failed"
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "ValueError" and run.error["message"] == "bad value 42"
    assert "raise ValueError" in run.error["traceback"]
    assert run.error["data"]["attempts"] == 2
    assert run.steps[0].status is StepStatus.FAILED and run.steps[0].attempts == 2


async def test_retry__non_retryable_types_fail_at_once(app: App) -> None:
    calls: list[int] = []

    @app.step(retry=RetryPolicy(attempts=5, initial_delay=0, non_retryable=("KeyError",)))
    async def lookup() -> None:
        calls.append(1)
        raise KeyError("missing")

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        try:
            await ctx.step(lookup)
        except StepFailedError as exc:
            return exc.error_type
        return "no error"

    async with app:
        assert await (await app.start("wf")).result(timeout=10) == "KeyError"
    assert calls == [1]


async def test_step__timeout_is_an_attempt_failure(app: App) -> None:
    @app.step(retry=RetryPolicy(attempts=1), timeout=0.05)
    async def hangs() -> None:
        await asyncio.Event().wait()

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.step(hangs)

    async with app:
        handle = await app.start("wf")
        with pytest.raises(RunFailedError):
            await handle.result(timeout=10)
        run = await app.get_run(handle.run_id)
    assert run.error is not None and run.error["type"] == "StepTimeoutError"
    assert "timed out after 0.05s" in run.error["message"]


async def test_step__sync_function_runs_in_a_thread(app: App) -> None:
    loop_thread = threading.get_ident()

    @app.step()
    def blocking() -> bool:
        return threading.get_ident() != loop_thread

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> bool:
        return await ctx.step(blocking)

    async with app:
        assert await (await app.start("wf")).result(timeout=10) is True


async def test_step__idempotency_key_is_stable_across_attempts(app: App) -> None:
    seen: list[tuple[str, int]] = []

    @app.step(retry=RetryPolicy(attempts=3, initial_delay=0))
    async def charge() -> str:
        info = current_step()
        seen.append((info.idempotency_key, info.attempt))
        if info.attempt < 3:
            raise TimeoutError("remote did not answer")
        return info.idempotency_key

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> str:
        await ctx.step(charge)
        return await ctx.step(charge)

    async with app:
        handle = await app.start("wf", run_id="pay-1")
        assert await handle.result(timeout=10) == "pay-1:2"
    assert seen == [
        ("pay-1:1", 1),
        ("pay-1:1", 2),
        ("pay-1:1", 3),
        ("pay-1:2", 1),
        ("pay-1:2", 2),
        ("pay-1:2", 3),
    ]
    with pytest.raises(RuntimeError):
        current_step()


async def test_step__non_serialisable_result_fails_the_run_clearly(app: App) -> None:
    @app.step()
    async def returns_object() -> object:
        return object()

    @app.workflow(name="wf")
    async def wf(ctx: Context) -> None:
        await ctx.step(returns_object)

    async with app:
        handle = await app.start("wf")
        with pytest.raises(RunFailedError):
            await handle.result(timeout=10)
        run = await app.get_run(handle.run_id)
    assert run.error is not None and run.error["type"] == "SerializationError"
    assert "is not JSON-serialisable" in run.error["message"]
    assert run.error["data"]["attempts"] == 1  # not retried: it cannot get better


async def test_step__a_run_it_starts_is_not_inside_it(app: App) -> None:
    # The started run may execute in this process at once, in a task made from the step's
    # code: its workflow code still runs in no step, and its own steps see only themselves.
    seen: list[str | None] = []

    @app.step()
    async def inner() -> str:
        return current_step().idempotency_key

    @app.workflow(name="started")
    async def started(ctx: Context) -> str:
        try:
            seen.append(current_step().idempotency_key)
        except RuntimeError:
            seen.append(None)
        return await ctx.step(inner)

    @app.step()
    async def launch() -> str:
        handle = await app.start("started", run_id="child-1")
        return handle.run_id

    @app.workflow(name="launcher")
    async def launcher(ctx: Context) -> str:
        return await ctx.step(launch)

    async with app:
        handle = await app.start("launcher", run_id="launcher-1")
        assert await handle.result(timeout=10) == "child-1"
        assert await app.result("child-1", timeout=10) == "child-1:1"
    assert seen == [None]
