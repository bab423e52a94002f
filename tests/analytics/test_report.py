"""Run analytics from the store's history on both stores: rates, percentiles, reasons, trends."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from opsloom import App, Context, FakeClock, RetryPolicy, RunFailedError
from opsloom.analytics.report import normalise, parse_span, percentile, report
from opsloom.api import create_api
from opsloom.errors import InputError
from opsloom.settings import Settings

flips: dict[str, int] = {}


def build(make_app: Callable[..., App], clock: FakeClock) -> App:
    app = make_app(clock=clock)

    @app.step(name="slow")
    async def slow(seconds: float) -> float:
        clock.advance(seconds)
        return seconds

    @app.step(name="deadline", retry=RetryPolicy(attempts=1))
    async def deadline(seconds: int) -> None:
        raise TimeoutError(f"timeout after {seconds}s talking to 'db-{seconds}'")

    @app.step(name="wobbly", retry=RetryPolicy(attempts=2, initial_delay=0.0, jitter=0.0))
    async def wobbly(key: str) -> str:
        flips[key] = flips.get(key, 0) + 1
        if flips[key] == 1:
            raise ConnectionError("reset")
        return key

    @app.workflow(name="good")
    async def good(ctx: Context, seconds: float) -> float:
        result: float = await ctx.step(slow, seconds)
        await ctx.step(wobbly, str(seconds))
        return result

    @app.workflow(name="bad", version="2")
    async def bad(ctx: Context, seconds: int) -> None:
        await ctx.step(deadline, seconds)

    return app


async def run_history(app: App) -> None:
    flips.clear()
    for seconds in (1.0, 2.0, 3.0, 4.0):
        assert await (await app.start("good", seconds)).result(timeout=10) == seconds
    for seconds in (30, 31):
        with pytest.raises(RunFailedError):
            await (await app.start("bad", seconds)).result(timeout=10)


async def test_report__summary_workflows_and_steps_from_the_history(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = build(make_app, clock)
    async with app:
        await run_history(app)
        now = clock.now()
        summary = await report(app.store, "summary", now, 3600)
        workflows = await report(app.store, "workflows", now, 3600)
        steps = await report(app.store, "steps", now, 3600)
        trends = await report(app.store, "trends", now, 3600, 1800)
        hourly = await report(app.store, "trends", now, 7200, 3600)
        assert await report(app.store, "summary", now + 7200, 3600) == {
            **summary,
            "window": {"since": now + 3600, "until": now + 7200},
            "runs": 0,
            "by_status": {},
            "success_rate": None,
            "throughput_per_hour": 0.0,
            "duration_s": {"p50": None, "p95": None, "p99": None},
            "queue_wait_s": {"p50": None, "p95": None, "p99": None},
            "retry_rate": None,
            "failure_reasons": [],
            "slowest_steps": [],
            "most_failing_steps": [],
        }, "a window after the history holds nothing"
    assert isinstance(summary, dict)
    assert summary["runs"] == 6
    assert summary["by_status"] == {"completed": 4, "failed": 2}
    assert summary["success_rate"] == pytest.approx(4 / 6, abs=1e-4)
    # Durations 0, 0 (the failures), 1, 2, 3, 4 s: nearest-rank p50 is the third, read from
    # the rollups' histogram (within 10 %).
    assert summary["duration_s"]["p50"] == pytest.approx(1.0, rel=0.1)
    assert summary["duration_s"]["p99"] == pytest.approx(4.0, rel=0.1)
    # Two messages that differ only in numbers and quoted values are one reason.
    assert summary["failure_reasons"] == [
        {"type": "TimeoutError", "message": "timeout after <n>s talking to <value>", "count": 2}
    ]
    assert summary["retry_rate"] == pytest.approx(4 / 10)  # 4 wobbly retried of 10 steps
    assert [s["step"] for s in summary["most_failing_steps"]] == ["deadline"]
    assert summary["slowest_steps"][0]["step"] == "slow"
    assert workflows == [
        {
            "workflow": "bad",
            "version": "2",
            "runs": 2,
            "by_status": {"failed": 2},
            "success_rate": 0.0,
            # Failing at once: all in the first bucket (up to 1 ms).
            "duration_s": {
                "p50": pytest.approx(0.0, abs=0.001),
                "p95": pytest.approx(0.0, abs=0.001),
                "p99": pytest.approx(0.0, abs=0.001),
            },
        },
        {
            "workflow": "good",
            "version": "1",
            "runs": 4,
            "by_status": {"completed": 4},
            "success_rate": 1.0,
            "duration_s": {
                "p50": pytest.approx(2.0, rel=0.1),
                "p95": pytest.approx(4.0, rel=0.1),
                "p99": pytest.approx(4.0, rel=0.1),
            },
        },
    ]
    by_step = {s["step"]: s for s in steps}  # type: ignore[union-attr, index]
    assert by_step["wobbly"]["retry_rate"] == 1.0
    assert by_step["deadline"]["failed"] == 2
    assert by_step["deadline"]["failure_reasons"][0]["count"] == 2
    assert by_step["slow"]["duration_s"]["p95"] == pytest.approx(4.0, rel=0.1)
    # Sub-hour buckets read the runs themselves; whole hours, the rollups.
    assert [b["finished"] for b in trends] == [0, 6]  # type: ignore[index]
    assert sum(b["finished"] for b in hourly) == 6  # type: ignore[index]


def test_report__pieces() -> None:
    assert parse_span("7d") == 7 * 86400 and parse_span("90m") == 5400
    with pytest.raises(InputError, match="--since"):
        parse_span("soon")
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert percentile([], 50) is None
    assert normalise("run 01a250b644b80033 took 31.5s for 'x'") == normalise(
        "run 99ff50b644b80011 took 2s for 'y'"
    )


async def test_analytics_api__viewer_reads_reports_and_bad_windows_are_refused(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    app = build(make_app, clock)
    api = create_api(app, Settings(api_token="tok"))
    auth = {"Authorization": "Bearer tok"}
    async with app:
        await run_history(app)
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            summary = await http.get("/api/v1/analytics/summary?since=1h", headers=auth)
            unknown = await http.get("/api/v1/analytics/nonsense", headers=auth)
            bad = await http.get("/api/v1/analytics/trends?bucket=often", headers=auth)
            anonymous = await http.get("/api/v1/analytics/summary")
    assert summary.status_code == 200 and summary.json()["runs"] == 6
    assert unknown.status_code in (400, 422) and "nonsense" in unknown.text
    assert bad.status_code in (400, 422) and "bucket" in bad.text
    assert anonymous.status_code == 401


def test_analytics_cli__summary_json(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(
        "from opsloom import App, Context\n"
        "app = App()\n"
        "@app.workflow(name='hello')\n"
        "async def hello(ctx: Context) -> str:\n"
        "    return 'hi'\n"
    )
    db = f"sqlite:///{tmp_path / 'a.db'}"
    base = [sys.executable, "-m", "opsloom.cli.main"]

    def opsloom(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )

    started = opsloom("start", "hello", "--wait", "--app", "flows:app", "--db", db)
    assert started.returncode == 0, started.stderr
    result = opsloom("analytics", "workflows", "--since", "1h", "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    assert '"workflow": "hello"' in result.stdout
    refused = opsloom("analytics", "summary", "--since", "lately", "--db", db)
    assert refused.returncode == 2 and "--since" in refused.stderr
