"""Step hooks: what a layer on the engine runs around each attempt and at a step's failure."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from engine_waits import REPLAYING, parked

from opsloom import App, Context, RetryPolicy, StepFailedError, current_step
from opsloom.engine.registry import make_step_spec
from opsloom.model import StepStatus

#: What the hook puts in place for the step's body.
_attempt: contextvars.ContextVar[str | None] = contextvars.ContextVar("attempt", default=None)


class Mapped(Exception):
    """What the workflow sees in place of a hooked step's final failure."""


class Recording:
    """A hook that logs each call, names the attempt in a context variable, wraps results and
    turns a ValueError("fatal") into a LookupError (which the step does not retry)."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def enter(self, started: float) -> contextvars.Token[str | None]:
        attempt = current_step().attempt
        self.log.append(("enter", attempt, type(started).__name__))
        return _attempt.set(f"attempt {attempt}")

    def done(self, entered: contextvars.Token[str | None], result: Any) -> Any:
        _attempt.reset(entered)
        self.log.append(("done", result))
        return {"wrapped": result}

    def failed(self, entered: contextvars.Token[str | None], exc: BaseException) -> None:
        _attempt.reset(entered)
        self.log.append(("failed", type(exc).__name__, str(exc)))
        if str(exc) == "fatal":
            raise LookupError("replaced") from exc

    def failure(self, error: StepFailedError) -> BaseException:
        self.log.append(("failure", error.error_type, error.message, error.attempts))
        return Mapped(error.error_type, error.attempts)


async def test_hook__runs_around_each_attempt_and_maps_the_final_failure_also_on_replay(
    make_app: Callable[..., App],
) -> None:
    app = make_app(worker=REPLAYING)
    hook = Recording()
    policy = RetryPolicy(attempts=3, initial_delay=0, jitter=0, non_retryable=("LookupError",))

    async def flaky(x: int) -> int:
        hook.log.append(("body", x, _attempt.get()))
        if current_step().attempt == 1:
            raise ValueError("first")
        return x + 1

    async def broken() -> None:
        hook.log.append(("body", _attempt.get()))
        raise ValueError("fatal")

    flaky_spec = make_step_spec(flaky, "flaky", policy, None, hook)
    broken_spec = make_step_spec(broken, "broken", policy, None, hook)

    @app.workflow(name="hooked")
    async def hooked(ctx: Context, x: int) -> list[Any]:
        first = await ctx.step_with(flaky_spec, x)
        try:
            await ctx.step_with(broken_spec)
        except Mapped as exc:
            failure = list(exc.args)
        outside = _attempt.get()
        await ctx.wait_for("go")  # the run parks; the signal resumes it by replay
        return [first, failure, outside]

    async with app:
        handle = await app.start("hooked", 1)
        await parked(app, handle.run_id)
        first_run = list(hook.log)
        await app.signal(handle.run_id, "go")
        assert await handle.result(timeout=30) == [{"wrapped": 2}, ["LookupError", 1], None]
        run = await app.get_run(handle.run_id)
    assert first_run == [
        ("enter", 1, "float"),
        ("body", 1, "attempt 1"),
        ("failed", "ValueError", "first"),
        ("enter", 2, "float"),
        ("body", 1, "attempt 2"),
        ("done", 2),
        ("enter", 1, "float"),
        ("body", "attempt 1"),
        ("failed", "ValueError", "fatal"),
        ("failure", "LookupError", "replaced", 1),
    ]
    # The replay reads both steps from the history: no attempt, the failure mapped again.
    assert hook.log[len(first_run) :] == [("failure", "LookupError", "replaced", 1)]
    assert [(s.name, s.status, s.attempts, s.output) for s in run.steps[:2]] == [
        ("flaky", StepStatus.COMPLETED, 2, {"wrapped": 2}),
        ("broken", StepStatus.FAILED, 1, None),
    ]
    assert run.steps[1].error is not None and run.steps[1].error["type"] == "LookupError"


class Marking:
    """A hook whose attempts are objects of its own, found by the body in ``current_step()``."""

    def __init__(self) -> None:
        self.made: list[object] = []

    def enter(self, started: float) -> object:
        assert current_step().entered is None  # the info in place while it runs is the plain one
        self.made.append(object())
        return self.made[-1]

    def done(self, entered: object, result: Any) -> Any:
        return result

    def failed(self, entered: object, exc: BaseException) -> None:
        return None

    def failure(self, error: StepFailedError) -> BaseException:
        return error


async def test_hook__what_enter_returns_is_the_entered_of_the_step_info_the_body_sees(
    app: App,
) -> None:
    hook = Marking()
    seen: list[bool] = []

    async def body() -> int:
        step = current_step()
        seen.append(step.entered is hook.made[-1])
        return step.attempt

    async def plain() -> bool:
        return current_step().entered is None

    spec = make_step_spec(body, "body", RetryPolicy(attempts=1), None, hook)

    @app.workflow(name="marked")
    async def marked(ctx: Context) -> list[Any]:
        first = await ctx.step_with(spec)
        second = await ctx.step_with(spec)
        return [first, second, await ctx.step(plain)]

    async with app:
        handle = await app.start("marked")
        assert await handle.result(timeout=30) == [1, 1, True]
    assert seen == [True, True]
    assert len(hook.made) == 2 and hook.made[0] is not hook.made[1]
