"""Recommendations from run history: retries, timeouts, contention, dominant steps and
schedules that overlap their own runs."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from opsloom import App, Context, FakeClock, RetryPolicy, RunFailedError
from opsloom.analytics.recommend import schedule_advice, step_advice, workflow_advice
from opsloom.api import create_api
from opsloom.cli.analytics import analytics_cli
from opsloom.engine.registry import WorkflowSpec
from opsloom.model.schedule import Schedule, schedule_record, tick_run_id
from opsloom.settings import Settings
from opsloom.store.base import RunSpan
from opsloom.store.rollup import BUCKETS, FailureCell, RunCell, StepCell, bucket_of

T0 = 1_800_000_000.0  # a whole minute


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


def span(tick: float, took: float | None) -> RunSpan:
    done = None if took is None else tick + took
    return RunSpan(tick_run_id("nightly", tick), "completed", tick, tick, done)


def test_schedule_advice__runs_longer_than_the_interval() -> None:
    rec = schedule_record("nightly", "report", None, Schedule(every=600), T0)
    ticks = rec.schedule().latest_ticks(T0, T0 + 6000, rec.anchor, 100)
    assert ticks == [T0 + 600 * k for k in range(1, 11)]
    now = T0 + 6000
    # Ten-minute ticks; runs of 400 s to 1,200 s, the last one still running.
    overlapping = [span(T0 + 600 * k, 300.0 + 100 * k) for k in range(1, 10)] + [span(now, None)]
    found = schedule_advice(rec, ticks, overlapping, now)
    assert found is not None
    assert found.to_dict() == {
        "kind": "schedule_overlaps",
        "workflow": "report",
        "step": None,
        "message": (
            "schedule 'nightly' of 'report' fires every 600 s but its runs take 1200 s at p95 "
            "(6 of 10 started while an earlier one still ran): make it Schedule(after=1) (the "
            "next run 1 s after the previous ends, never two at once), or fire it at most "
            "every 1800 s"
        ),
        "suggestion": {"schedule": "nightly", "after": 1.0, "interval": 1800},
        "evidence": {
            "schedule": "nightly",
            "kind": "every",
            "spec": "600.0",
            "interval_s": 600.0,
            "runs": 10,
            "duration_p50_s": 700.0,
            "duration_p95_s": 1200.0,
            "overlapping": 6,
            "running_now": 1,
        },
    }
    calm = [span(T0 + 600 * k, 120.0) for k in range(1, 11)]
    assert schedule_advice(rec, ticks, calm, now) is None, "two minutes of ten"
    assert schedule_advice(rec, ticks, calm[:2], now) is None, "too few runs"


#: The evidence that names the ten-minute schedule and its ten runs.
TEN_NIGHTLY_RUNS = {
    "schedule": "nightly",
    "kind": "every",
    "spec": "600.0",
    "interval_s": 600.0,
    "runs": 10,
}


def test_schedule_advice__runs_claimed_together_start_at_the_same_instant() -> None:
    rec = schedule_record("nightly", "report", None, Schedule(every=600), T0)
    ticks = rec.schedule().latest_ticks(T0, T0 + 6000, rec.anchor, 100)
    # No worker until after the third tick: one claim started its three runs at once.
    queued = [
        RunSpan(
            tick_run_id("nightly", T0 + 600 * k), "completed", T0 + 600 * k, T0 + 1900, T0 + 2000
        )
        for k in range(1, 4)
    ]
    spans = queued + [span(T0 + 600 * k, 100.0) for k in range(4, 11)]
    found = schedule_advice(rec, ticks, spans, T0 + 6000)
    assert (None if found is None else found.to_dict()) == {
        "kind": "schedule_overlaps",
        "workflow": "report",
        "step": None,
        "message": (
            "schedule 'nightly' of 'report' fires every 600 s but its runs take 100 s at p95 "
            "(2 of 10 started while an earlier one still ran): make it Schedule(after=500) "
            "(the next run 500 s after the previous ends, never two at once), or fire it at "
            "most every 180 s"
        ),
        "suggestion": {"schedule": "nightly", "after": 500.0, "interval": 180},
        "evidence": {
            **TEN_NIGHTLY_RUNS,
            "duration_p50_s": 100.0,
            "duration_p95_s": 100.0,
            "overlapping": 2,
            "running_now": 0,
        },
    }


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


def every_minute_report(app: App) -> None:
    """A workflow scheduled every minute whose runs take 150 s (of the app's clock)."""

    @app.workflow(name="report", schedule="* * * * *")
    async def report(ctx: Context) -> None:
        await ctx.sleep(150)


async def overlapping_runs(app: App, clock: FakeClock, t0: float) -> None:
    """Move the clock to each of the six ticks after ``t0`` (a whole minute), each time until
    the tick's run recorded its sleep and the runs due ended: runs of the first three ticks end
    three minutes after they started (at a tick after their wake-up), the others still run.

    A run counts as started when it is claimed, before its body asked for its sleep: moving
    the clock on then would wake it 150 s after a later tick."""
    ticks = [t0 + 60 * k for k in range(1, 7)]
    for now in ticks:
        clock.advance(now - clock.now())
        ids = [tick_run_id("code:report", t) for t in ticks if t <= now]
        due = {tick_run_id("code:report", t) for t in ticks if t + 150 <= now}
        for _ in range(6000):
            spans = await app.store.run_spans(ids)
            if (
                len(spans) == len(ids)
                and all(s.status in ("waiting", "completed") for s in spans)
                and all(s.completed_at is not None for s in spans if s.id in due)
            ):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"runs not settled at {now}: {spans}")


async def test_recommend__a_schedule_whose_runs_overlap_over_the_api(
    make_app: Callable[..., App],
) -> None:
    clock = FakeClock(T0 + 1)
    app = make_app(clock=clock)
    every_minute_report(app)
    api = create_api(app, Settings(api_token="tok"))
    async with app:
        await overlapping_runs(app, clock, T0)
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answer = await http.get(
                "/api/v1/analytics/recommend?since=1h", headers={"Authorization": "Bearer tok"}
            )
    assert answer.status_code == 200, answer.text
    # Runs of 60, 120 and 180 ended three minutes after they started (a minute's tick after
    # their wake-up); those of 240, 300 and 360 still run.
    assert answer.json() == [
        {
            "kind": "schedule_overlaps",
            "workflow": "report",
            "step": None,
            "message": (
                "schedule 'code:report' of 'report' fires every 60 s but its runs take 180 s "
                "at p95 (5 of 6 started while an earlier one still ran): make it "
                "Schedule(after=1) (the next run 1 s after the previous ends, never two at "
                "once), or fire it at most every 300 s"
            ),
            "suggestion": {"schedule": "code:report", "after": 1.0, "interval": 300},
            "evidence": {
                "schedule": "code:report",
                "kind": "cron",
                "spec": "* * * * *",
                "interval_s": 60.0,
                "runs": 6,
                "duration_p50_s": 120.0,
                "duration_p95_s": 180.0,
                "overlapping": 5,
                "running_now": 3,
            },
        }
    ]


async def test_recommend_cli__json_names_a_schedule_whose_runs_overlap(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    t0 = time.time() // 60 * 60 - 600  # ten minutes ago, so the real clock's window has it
    clock = FakeClock(t0 + 1)
    app = App(db, clock=clock)
    every_minute_report(app)
    async with app:
        await overlapping_runs(app, clock, t0)
    # In a thread: the command runs its own event loop.
    args = ["recommend", "--since", "1h", "--db", db, "--json"]
    done = await asyncio.to_thread(CliRunner().invoke, analytics_cli, args)
    assert done.exit_code == 0, done.output
    [advice] = json.loads(done.stdout)
    assert (advice["kind"], advice["workflow"]) == ("schedule_overlaps", "report")
    evidence = advice["evidence"]
    # The three runs still open count with how long they have run by now (more than 180 s).
    assert evidence["duration_p95_s"] > 180
    assert {**evidence, "duration_p95_s": None} == {
        "schedule": "code:report",
        "kind": "cron",
        "spec": "* * * * *",
        "interval_s": 60.0,
        "runs": 6,
        "duration_p50_s": 180.0,
        "duration_p95_s": None,
        "overlapping": 5,
        "running_now": 3,
    }
    assert advice["suggestion"]["after"] == 1.0
