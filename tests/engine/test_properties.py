"""Property-based tests: retry schedules and replay determinism over generated workflows."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsloom import App, Context, RetryPolicy, RunStatus, WorkerOptions

policies = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 50),
    initial_delay=st.floats(0, 100, allow_nan=False),
    backoff=st.floats(1, 10, allow_nan=False),
    max_delay=st.floats(0, 3600, allow_nan=False),
    jitter=st.floats(0, 1, allow_nan=False),
)


@given(policy=policies, attempt=st.integers(1, 500), rand=st.floats(0, 1, exclude_max=True))
def test_retry_delay__within_bounds(policy: RetryPolicy, attempt: int, rand: float) -> None:
    delay = policy.delay(attempt, rand)
    assert 0 <= delay <= policy.max_delay
    assert delay <= policy.base_delay(attempt)
    assert delay >= policy.base_delay(attempt) * (1 - policy.jitter) - 1e-9


@given(policy=policies, attempt=st.integers(1, 500))
def test_retry_delay__base_never_shrinks(policy: RetryPolicy, attempt: int) -> None:
    assert policy.base_delay(attempt + 1) >= policy.base_delay(attempt)


@given(policy=policies, attempt=st.integers(1, 50), retry_after=st.floats(0, 10_000))
def test_retry_delay__honours_retry_after(
    policy: RetryPolicy, attempt: int, retry_after: float
) -> None:
    plain = policy.delay(attempt, 0.5)
    assert policy.delay(attempt, 0.5, retry_after) == max(plain, retry_after)


# --- replay determinism --------------------------------------------------------------------

op = st.one_of(
    st.tuples(st.just("step"), st.integers(-5, 5)),
    st.tuples(st.just("gather"), st.lists(st.integers(-5, 5), min_size=1, max_size=4)),
    st.tuples(st.just("branch"), st.just(0)),
    st.tuples(st.just("value"), st.just(0)),
    st.tuples(st.just("wait"), st.just(0)),
    st.tuples(st.just("sleep"), st.just(0)),
)
programs = st.lists(op, min_size=1, max_size=12)


def expected(program: list[tuple[str, Any]]) -> int:
    y = 0
    for kind, arg in program:
        if kind == "step":
            y += arg
        elif kind == "gather":
            y += sum(arg)
        elif kind == "branch":
            y += 1 if y % 2 == 0 else 2
    return y


async def run_program(program: list[tuple[str, Any]], url: str) -> tuple[Any, int, int]:
    app = App(url, worker=WorkerOptions(poll_seconds=0.02))
    calls = 0

    @app.step(name="add", retry=RetryPolicy(attempts=1))
    async def add(y: int, k: int) -> int:
        nonlocal calls
        calls += 1
        return y + k

    @app.workflow(name="program")
    async def workflow(ctx: Context, ops: list[list[Any]]) -> int:
        y = 0
        for kind, arg in ops:
            if kind == "step":
                y = await ctx.step(add, y, arg)
            elif kind == "gather":
                parts = await ctx.gather(*[ctx.step(add, 0, k) for k in arg])
                y += sum(parts)
            elif kind == "branch":
                y = await ctx.step(add, y, 1 if y % 2 == 0 else 2)
            elif kind == "value":
                ctx.random()
            elif kind == "wait":
                await ctx.wait_for("go")
            elif kind == "sleep":
                await ctx.sleep(0)
        return y

    waits = sum(1 for kind, _ in program if kind == "wait")
    async with app:
        handle = await app.start("program", [list(o) for o in program])
        for _ in range(waits):
            await app.signal(handle.run_id, "go")
        output = await handle.result(timeout=30)
        run = await app.get_run(handle.run_id)
    assert run.status is RunStatus.COMPLETED
    recorded = sum(1 for s in run.steps if s.name == "add")
    return output, calls, recorded


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs)
def test_replay__any_program_gives_the_pure_result_and_runs_each_step_once(
    program: list[tuple[str, Any]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        output, calls, recorded = asyncio.run(run_program(program, f"sqlite:///{folder}/p.db"))
    assert output == expected(program)
    steps = sum(1 for kind, arg in program if kind in ("step", "branch")) + sum(
        len(arg) for kind, arg in program if kind == "gather"
    )
    assert recorded == steps
    assert calls == steps, "a replay re-ran a recorded step"
