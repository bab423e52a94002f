"""Adaptive retries: recommendations applied to new attempts, recorded, audited, dropped."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from opsloom import App, Context, FakeClock, RetryPolicy, RunFailedError
from opsloom.analytics.adaptive import Adaptive

calls: dict[int, int] = {}


async def test_adaptive__raises_attempts_of_a_step_that_succeeds_later(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    calls.clear()

    @app.step(name="flaky", retry=RetryPolicy(attempts=2, initial_delay=0.0, jitter=0.0))
    async def flaky(n: int) -> int:
        # Even numbers answer on the second try, odd ones on the third.
        calls[n] = calls.get(n, 0) + 1
        if calls[n] < 2 + n % 2:
            raise ConnectionError(f"dependency busy for {n}")
        return n

    @app.workflow(name="call")
    async def call(ctx: Context, n: int) -> int:
        result: int = await ctx.step(flaky, n)
        return result

    async with app:
        outcomes = []
        for n in range(8):
            try:
                outcomes.append(await (await app.start("call", n)).result(timeout=10))
            except RunFailedError:
                outcomes.append(None)
        assert outcomes == [0, None, 2, None, 4, None, 6, None], "two attempts are not enough"
        adaptive = Adaptive(app.store, clock, "me", app.registry)
        assert await adaptive.run_once() == {("call", "flaky"): 3}
        assert await adaptive.run_once() == {}, "nothing changed since"
        handle = await app.start("call", 9)
        assert await handle.result(timeout=10) == 9
        run = await app.get_run(handle.run_id)
        [step] = run.steps
        assert step.attempts == 3 and step.error is not None
        assert step.error["retry_policy"] == {"attempts": 3, "adapted": True}
        entries = [e for e in await app.audit.entries() if e.action == "adaptive.retry"]
        assert [(e.actor, e.subject) for e in entries] == [("system:adaptive", "step:call/flaky")]
        assert entries[0].data["attempts"] == 3 and entries[0].data["before"] is None
        assert entries[0].data["evidence"]["kind"] == "retries_rescue"
        # Once the history behind it leaves the window, the step's own policy applies again.
        clock.advance(8 * 3600)
        assert await adaptive.run_once() == {("call", "flaky"): 0}
        assert app.registry.adapted_attempts == {}
        with pytest.raises(RunFailedError):
            await (await app.start("call", 11)).result(timeout=10)
