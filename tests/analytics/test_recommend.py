"""Recommendations from run history: retries, timeouts, contention and dominant steps."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from opsloom import App, Context, FakeClock, RetryPolicy, RunFailedError
from opsloom.analytics.recommend import step_advice, workflow_advice
from opsloom.api import create_api
from opsloom.engine.registry import WorkflowSpec
from opsloom.settings import Settings
from opsloom.store.rollup import BUCKETS, FailureCell, RunCell, StepCell, bucket_of


def histogram(seconds: float, count: int) -> tuple[int, ...]:
    counts = [0] * BUCKETS
    counts[bucket_of(seconds)] = count
    return tuple(counts)


def step(name: str, status: str, steps: int, retried: int, attempts: int, seconds: float = 1.0):
    return StepCell("w", name, status, steps, retried, attempts, seconds, histogram(0.1, steps))


def by_kind(found: list[Any]) -> dict[tuple[str, str | None], Any]:
    return {(r.kind, r.step): r for r in found}


def test_step_advice__retries_that_never_help_and_retries_that_rescue() -> None:
    cells = [
        step("flaky", "completed", 20, 8, 28),
        step("flaky", "failed", 4, 4, 8),
        step("doomed", "completed", 10, 0, 10),
        step("doomed", "failed", 5, 5, 15),
        step("fine", "completed", 10, 0, 10),
    ]
    failures = [FailureCell("w", "1", "doomed", "KeyError", "no key <value>", 5)]
    found = by_kind(step_advice(cells, failures))
    assert set(found) == {("retries_rescue", "flaky"), ("retries_never_help", "doomed")}
    doomed = found[("retries_never_help", "doomed")]
    assert doomed.suggestion == {"retry": {"attempts": 1}} and doomed.weight == 10
    assert doomed.evidence["top_failure"]["type"] == "KeyError"
    flaky = found[("retries_rescue", "flaky")]
    assert flaky.suggestion == {"retry": {"attempts": 3}}
    assert flaky.evidence["rescue_rate"] == round(8 / 12, 4)


def test_step_advice__a_step_that_fails_on_its_timeout() -> None:
    cells = [
        StepCell("w", "slow", "completed", 40, 0, 40, 80.0, histogram(2.0, 40)),
        StepCell("w", "slow", "failed", 5, 0, 5, 25.0, histogram(5.0, 5)),
        StepCell("w", "odd", "completed", 40, 0, 40, 80.0, histogram(2.0, 40)),
        StepCell("w", "odd", "failed", 5, 0, 5, 25.0, histogram(5.0, 5)),
    ]
    failures = [
        FailureCell("w", "1", "slow", "StepTimeoutError", "step <value> timed out", 4),
        FailureCell("w", "1", "slow", "KeyError", "no key <value>", 1),
        FailureCell("w", "1", "odd", "StepTimeoutError", "step <value> timed out", 2),
    ]
    [found] = step_advice(cells, failures)
    p99 = found.evidence["completed_p99_s"]
    assert 2.0 / 2**0.25 < p99 < 2.0 * 2**0.25, "in the bucket of 2 s (a fourth of an octave)"
    suggested = math.ceil(3 * p99)
    assert found.to_dict() == {
        "kind": "step_timeouts_hit",
        "workflow": "w",
        "step": "slow",
        "message": (
            "step 'slow' of 'w': 4 of 45 steps failed on their timeout; its completed attempts "
            f"take {p99:.3g} s at p99: a timeout of {suggested} s leaves them room (if the step's "
            "is shorter)"
        ),
        "suggestion": {"step_timeout": suggested},
        "evidence": {
            "timed_out": 4,
            "steps": 45,
            "completed_p50_s": found.evidence["completed_p50_s"],
            "completed_p99_s": p99,
        },
    }, "odd: two timeouts say nothing yet"


def test_workflow_advice__timeout_contention_and_dominant_step() -> None:
    runs = [
        RunCell(("w", "1"), "completed", "duration", 20, 20.0, histogram(1.0, 20)),
        RunCell(("w", "1"), "completed", "wait", 20, 600.0, histogram(30.0, 20)),
        RunCell(("calm", "1"), "completed", "duration", 20, 20.0, histogram(1.0, 20)),
        RunCell(("calm", "1"), "completed", "wait", 20, 0.2, histogram(0.01, 20)),
        RunCell(("rare", "1"), "completed", "duration", 3, 3.0, histogram(1.0, 3)),
    ]
    steps = [step("big", "completed", 20, 0, 20, 18.0), step("small", "completed", 20, 0, 20, 2.0)]

    def flow(ctx: Context) -> None:
        return None

    specs = {
        "w": WorkflowSpec(fn=flow, name="w", version="1", timeout=3600.0, concurrency=2),
        "calm": WorkflowSpec(fn=flow, name="calm", version="1", timeout=5.0),
    }
    found = workflow_advice(runs, steps, specs)
    assert {(r.kind, r.workflow) for r in found} == {
        ("timeout_far_above_p99", "w"),
        ("queue_contention", "w"),
        ("dominant_step", "w"),
    }, "calm: its timeout is fine and it does not wait; rare: too few runs"
    advice = {r.kind: r for r in found}
    assert advice["timeout_far_above_p99"].suggestion == {"timeout": 4}
    assert advice["queue_contention"].suggestion == {"concurrency": 4}
    assert advice["dominant_step"].step == "big"
    assert advice["dominant_step"].evidence["share"] == 0.9


async def test_recommend__from_the_history_over_the_api(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = make_app(clock=clock)

    @app.step(name="doomed", retry=RetryPolicy(attempts=3, initial_delay=0.0, jitter=0.0))
    async def doomed(n: int) -> None:
        raise LookupError(f"no host number {n}")

    @app.workflow(name="lookup")
    async def lookup(ctx: Context, n: int) -> None:
        await ctx.step(doomed, n)

    api = create_api(app, Settings(api_token="tok"))
    async with app:
        for n in range(4):
            with pytest.raises(RunFailedError):
                await (await app.start("lookup", n)).result(timeout=10)
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answer = await http.get(
                "/api/v1/analytics/recommend?since=1h", headers={"Authorization": "Bearer tok"}
            )
    assert answer.status_code == 200, answer.text
    [advice] = answer.json()
    assert advice["kind"] == "retries_never_help" and advice["step"] == "doomed"
    assert advice["evidence"]["failed"] == 4 and advice["evidence"]["failed_attempts"] == 12
    assert advice["evidence"]["top_failure"]["type"] == "LookupError"
