"""Adaptive retries and timeouts: recommendations applied to new attempts, recorded, audited,
dropped."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable
from pathlib import Path

import pytest

from opsloom import App, Context, FakeClock, RetryPolicy, RunFailedError
from opsloom.analytics.adaptive import Adaptive, still_needed
from opsloom.engine.registry import Registry, make_step_spec
from opsloom.settings import Settings
from opsloom.store.rollup import BOUNDS, BUCKETS, StepCell

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
        adaptive = Adaptive(app.store, clock, "me", app.registry, settle_runs=4)
        assert await adaptive.run_once() == {("retry", "call", "flaky"): 3}
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
        # The history behind it leaves the window: the step has not run since, so the setting
        # stays (dropping it would only bring the failures back).
        clock.advance(8 * 3600)
        assert await adaptive.run_once() == {}
        # A window of runs under it, some of which the step's own two attempts would fail:
        # it stays.
        for n in range(20, 24):
            assert await (await app.start("call", n)).result(timeout=10) == n
        assert await adaptive.run_once() == {}
        assert app.registry.adapted_attempts == {("call", "flaky"): 3}
        # A window of runs that its own policy saves: the step's own policy applies again.
        clock.advance(8 * 3600)
        for n in range(30, 38, 2):
            assert await (await app.start("call", n)).result(timeout=10) == n
        assert await adaptive.run_once() == {("retry", "call", "flaky"): 0}
        assert app.registry.adapted_attempts == {}
        with pytest.raises(RunFailedError):
            await (await app.start("call", 11)).result(timeout=10)


async def test_adaptive__lengthens_the_timeout_of_a_step_that_fails_on_it(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    slow: set[int] = set()

    @app.step(name="fetch", retry=RetryPolicy(attempts=1), timeout=0.3)
    async def fetch(n: int) -> int:
        # Completed attempts take 10 s on the run's clock (those of n >= 100: 0.1 s).
        clock.advance(10 if n < 100 else 0.1)
        if n in slow:
            await asyncio.sleep(0.6)  # real time: twice the step's own timeout
        return n

    @app.workflow(name="call")
    async def call(ctx: Context, n: int) -> int:
        result: int = await ctx.step(fetch, n)
        return result

    async def outcome(n: int) -> tuple[int | None, dict[str, object] | None]:
        handle = await app.start("call", n)
        try:
            value = await handle.result(timeout=30)
        except RunFailedError:
            value = None
        [step] = (await app.get_run(handle.run_id)).steps
        return value, step.error

    async with app:
        slow.update({4, 5, 6, 7})
        outcomes = [(await outcome(n))[0] for n in range(7)]
        assert outcomes == [0, 1, 2, 3, None, None, None], "0.3 s cuts the slow attempts"
        adaptive = Adaptive(app.store, clock, "me", app.registry, settle_runs=3)
        changes = await adaptive.run_once()
        assert list(changes) == [("timeout", "call", "fetch")]
        suggested = changes[("timeout", "call", "fetch")]
        assert suggested >= 3 * 10, "three times the completed attempts' p99"
        assert app.registry.adapted_timeouts == {("call", "fetch"): suggested}
        assert await adaptive.run_once() == {}, "nothing changed since"
        # At most ten times the step's own timeout: 3 s, where the slow attempt fits.
        value, error = await outcome(7)
        assert value == 7
        assert error == {"timeout": {"seconds": 3.0, "adapted": True}}
        entries = [e for e in await app.audit.entries() if e.action == "adaptive.timeout"]
        assert [(e.actor, e.subject) for e in entries] == [("system:adaptive", "step:call/fetch")]
        data = entries[0].data
        assert (data["timeout"], data["before"]) == (suggested, None)
        assert data["evidence"]["kind"] == "step_timeouts_hit"
        assert data["evidence"]["timed_out"] == 3 and data["evidence"]["steps"] == 7
        # The history behind it leaves the window: the step has not run since, so the setting
        # stays; nor does it go after a window of attempts that take longer than 0.3 s.
        clock.advance(8 * 3600)
        assert await adaptive.run_once() == {}
        assert [(await outcome(n))[0] for n in range(10, 13)] == [10, 11, 12]
        assert await adaptive.run_once() == {}
        # After a window of attempts that its own timeout lets finish, that timeout applies
        # again.
        clock.advance(8 * 3600)
        assert [(await outcome(n))[0] for n in range(100, 103)] == [100, 101, 102]
        assert await adaptive.run_once() == {("timeout", "call", "fetch"): 0}
        assert app.registry.adapted_timeouts == {}
        slow.add(8)
        value, error = await outcome(8)
        assert value is None and error is not None
        assert (error["type"], "timeout" in error) == ("StepTimeoutError", False)
        dropped = [e for e in await app.audit.entries() if e.action == "adaptive.timeout"][-1]
        assert (dropped.data["timeout"], dropped.data["before"]) == (None, suggested)


def test_adapted_timeouts__only_lengthen_a_timeout_the_step_has() -> None:
    registry = Registry()
    own = make_step_spec(lambda: None, "own", RetryPolicy(), 5.0)
    none = make_step_spec(lambda: None, "none", RetryPolicy(), None)
    assert registry.timeout_for("w", own) == (5.0, False)
    registry.adapted_timeouts.update({("w", "own"): 12.0, ("w", "none"): 12.0})
    assert registry.timeout_for("w", own) == (12.0, True)
    assert registry.timeout_for("w", none) == (None, False), "never one for a step without"
    registry.adapted_timeouts[("w", "own")] = 2.0
    assert registry.timeout_for("w", own) == (5.0, False), "never shorter"
    registry.adapted_timeouts[("w", "own")] = 500.0
    assert registry.timeout_for("w", own) == (50.0, True), "at most ten times its own"
    assert registry.timeout_for("other", own) == (5.0, False), "per workflow"


def test_still_needed__only_when_a_completed_step_may_have_failed_under_its_own_policy() -> None:
    def done(steps: int, retried: int, attempts: int, seconds: float = 1.0) -> StepCell:
        counts = [0] * BUCKETS
        counts[bisect.bisect_left(BOUNDS, seconds)] = steps
        return StepCell("w", "s", "completed", steps, retried, attempts, 0.0, tuple(counts))

    two = make_step_spec(lambda: None, "s", RetryPolicy(attempts=2), 5.0)
    three = make_step_spec(lambda: None, "s", RetryPolicy(attempts=3), 5.0)
    assert still_needed("retry", done(10, 0, 10), two) is False, "no step needed a retry"
    assert still_needed("retry", done(10, 4, 14), two) is False, "each saved on its second"
    assert still_needed("retry", done(10, 4, 15), two) is True, "one needed a third"
    assert still_needed("retry", done(10, 4, 15), three) is False, "at most a third"
    assert still_needed("retry", done(10, 4, 16), three) is True, "maybe one needed a fourth"
    assert still_needed("retry", None, two) is False
    assert still_needed("timeout", done(10, 0, 10, seconds=4.0), two) is False
    assert still_needed("timeout", done(10, 0, 10, seconds=6.0), two) is True
    assert still_needed("timeout", done(10, 0, 10, seconds=1e9), two) is True, "unbounded"


async def test_adaptive__settle_runs_come_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(adaptive=True, adaptive_settle_runs=7)
    async with App(f"sqlite:///{tmp_path / 'adaptive.db'}", settings=settings) as app:
        assert app.adaptive is not None and app.adaptive.settle_runs == 7


async def test_adaptive__a_single_attempt_goes_with_its_recommendation_more_attempts_stay(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)
    async with app:
        adaptive = Adaptive(app.store, clock, "me", app.registry)
        # Neither step has run in this process, and neither recommendation is in the window.
        app.registry.adapted_attempts.update({("w", "once"): 1, ("w", "more"): 4})
        assert await adaptive.run_once() == {("retry", "w", "once"): 0}
        assert app.registry.adapted_attempts == {("w", "more"): 4}


async def test_adaptive__a_setting_found_in_force_goes_after_a_window_that_does_not_need_it(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    # The registry outlives the adaptive loop that set it (the app was closed and opened
    # again): the new loop counts its window from when it first sees the setting.
    app = make_app(clock=clock)

    @app.step(name="steady", retry=RetryPolicy(attempts=2, initial_delay=0.0, jitter=0.0))
    async def steady(n: int) -> int:
        return n

    @app.workflow(name="call")
    async def call(ctx: Context, n: int) -> int:
        result: int = await ctx.step(steady, n)
        return result

    async with app:
        app.registry.adapted_attempts[("call", "steady")] = 4
        adaptive = Adaptive(app.store, clock, "me", app.registry, settle_runs=4)
        assert await adaptive.run_once() == {}, "a window must run under it first"
        clock.advance(8 * 3600)
        for n in range(4):
            assert await (await app.start("call", n)).result(timeout=10) == n
        assert await adaptive.run_once() == {("retry", "call", "steady"): 0}
        assert app.registry.adapted_attempts == {}
