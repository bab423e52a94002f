"""Prometheus metrics of a real App on both stores: counted from what the engine did."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsloom import App, Context, FakeClock, RetryPolicy, RunFailedError
from opsloom.analytics.metrics import Metrics
from opsloom.api import create_api
from opsloom.settings import Settings
from opsloom.store import open_store
from opsloom.store.connection import BreakerRecord

attempts: dict[str, int] = {}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def build(make_app: Callable[..., App], clock: FakeClock) -> App:
    app = make_app(clock=clock)

    @app.step(name="wobbly", retry=RetryPolicy(attempts=3, initial_delay=0.0, jitter=0.0))
    async def wobbly(key: str) -> str:
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] < 2:
            raise ConnectionError("flap")
        return key

    @app.step(name="broken", retry=RetryPolicy(attempts=1))
    async def broken() -> None:
        raise ValueError("no")

    @app.workflow(name="steady", version="3")
    async def steady(ctx: Context, key: str) -> str:
        clock.advance(2.0)
        result: str = await ctx.step(wobbly, key)
        return result

    @app.workflow(name="doomed")
    async def doomed(ctx: Context) -> None:
        await ctx.step(broken)

    @app.workflow(name="patient")
    async def patient(ctx: Context) -> Any:
        return await ctx.wait_for("go")

    return app


async def test_metrics__runs_steps_retries_and_open_runs_are_exposed(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    attempts.clear()
    app = build(make_app, clock)
    api = create_api(app, Settings(api_token="t"))
    async with app:
        # One after the other, so that each run's clock advance is its own duration.
        for key in ("a", "b"):
            assert await (await app.start("steady", key)).result(timeout=10) == key
        with pytest.raises(RunFailedError):
            await (await app.start("doomed")).result(timeout=10)
        waiting = await app.start("patient")
        await _until_waiting(app, waiting.run_id)
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert value(text, "opsloom_runs_started_total", workflow="steady", version="3") == 2
    assert (
        value(
            text, "opsloom_runs_finished_total", workflow="steady", version="3", status="completed"
        )
        == 2
    )
    assert (
        value(text, "opsloom_runs_finished_total", workflow="doomed", version="1", status="failed")
        == 1
    )
    # Each run of ``steady`` spent 2 fake seconds before its step: its duration says so.
    assert value(
        text,
        "opsloom_run_duration_seconds_sum",
        workflow="steady",
        version="3",
        status="completed",
    ) == pytest.approx(4.0)
    assert value(text, "opsloom_step_retries_total", workflow="steady", step="wobbly") == 2
    assert (
        value(
            text,
            "opsloom_step_duration_seconds_count",
            workflow="steady",
            step="wobbly",
            outcome="retrying",
        )
        == 2
    )
    assert (
        value(
            text,
            "opsloom_step_duration_seconds_count",
            workflow="doomed",
            step="broken",
            outcome="failed",
        )
        == 1
    )
    assert value(text, "opsloom_runs", status="waiting") == 1
    assert value(text, "opsloom_runs", status="pending") == 0
    assert value(text, "opsloom_runs_parked_total", workflow="patient") == 1
    assert value(text, "opsloom_store_up") == 1
    batches = value(text, "opsloom_store_commit_operations_count")
    assert batches is not None and batches > 0
    operations = value(text, "opsloom_store_commit_operations_sum")
    assert operations is not None and operations >= batches


async def _until_waiting(app: App, run_id: str) -> None:
    import asyncio

    for _ in range(400):
        if str(await app.handle(run_id).status()) == "waiting":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never parked")


async def test_metrics__store_gauges_are_left_out_when_the_store_fails() -> None:
    class Broken:
        async def open_run_counts(self) -> dict[str, int]:
            raise OSError("connection refused")

    metrics = Metrics()
    await metrics.refresh(Broken())  # type: ignore[arg-type]
    text = metrics.render().decode()
    assert value(text, "opsloom_store_up") == 0
    assert not any(name == "opsloom_runs" for name, _ in samples(text))


async def test_metrics__breaker_state_of_each_connection_is_exposed(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    await store.open()
    try:
        for name, state, failures in (("pagerduty", "open", 5), ("slack", "closed", 0)):
            await store.save_breaker(BreakerRecord(name, state, None, None, failures, 1.0))
        metrics = Metrics()
        await metrics.refresh(store)
    finally:
        await store.close()
    text = metrics.render().decode()
    assert value(text, "opsloom_connector_breaker_state", connection="pagerduty") == 2
    assert value(text, "opsloom_connector_breaker_state", connection="slack") == 0
    assert value(text, "opsloom_connector_breaker_failures", connection="pagerduty") == 5
