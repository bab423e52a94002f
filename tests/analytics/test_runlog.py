"""Structured log lines: one per run lifecycle change and per trigger decision, on both stores."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from opsloom import App, Context, FakeClock, RetryPolicy, RunFailedError
from opsloom.analytics.logformat import JsonFormatter, TextFormatter
from opsloom.analytics.runlog import RunLog
from opsloom.model import RunStatus
from opsloom.model.tracecontext import run_trace_id


def lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[dict[str, Any]]:
    """The structured fields of each record of ``logger``."""
    return [
        {k: getattr(r, k, None) for k in ("event", "run_id", "workflow", "step", "trace_id", "key")}
        for r in caplog.records
        if r.name == logger
    ]


async def until_waiting(app: App, run_id: str) -> None:
    for _ in range(1000):
        run = await app.get_run(run_id)
        if run.status is RunStatus.WAITING and run_id not in (app.worker.executions or {}):
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"run {run_id} never parked")


async def test_runlog__one_line_per_lifecycle_change_with_run_workflow_step_and_trace(
    make_app: Callable[..., App], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(clock=clock)
    app.observe(RunLog())

    @app.step(name="explode", retry=RetryPolicy(attempts=1))
    async def explode() -> None:
        raise ValueError("disk on fire")

    @app.workflow(name="gated")
    async def gated(ctx: Context) -> Any:
        return await ctx.wait_for("go")

    @app.workflow(name="fragile")
    async def fragile(ctx: Context) -> None:
        await ctx.step(explode)

    caplog.set_level(logging.INFO, logger="opsloom.runs")
    async with app:
        handle = await app.start("gated")
        await until_waiting(app, handle.run_id)
        await app.signal(handle.run_id, "go", 1)
        assert await handle.result(timeout=10) == 1
        with pytest.raises(RunFailedError):
            await (await app.start("fragile")).result(timeout=10)

    trace = run_trace_id(handle.run_id)
    gated_lines = [line for line in lines(caplog, "opsloom.runs") if line["workflow"] == "gated"]
    assert [line["event"] for line in gated_lines] == [
        "run_started",
        "run_waiting",
        "run_resumed",
        "run_completed",
    ]
    assert {(line["run_id"], line["trace_id"]) for line in gated_lines} == {(handle.run_id, trace)}
    fragile_lines = [
        line for line in lines(caplog, "opsloom.runs") if line["workflow"] == "fragile"
    ]
    assert [(line["event"], line["step"]) for line in fragile_lines] == [
        ("run_started", None),
        ("step_failed", "explode"),
        ("run_failed", "explode"),
    ]


async def test_trigger_log__matched_deduplicated_and_suppressed_in_the_flap_window(
    make_app: Callable[..., App], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(clock=clock)

    @app.workflow(name="incident")
    async def incident(ctx: Context, event: dict[str, Any]) -> Any:
        return await ctx.wait_for("done")

    app.trigger("incident", on={"type": "io.test.alert"}, window=300)
    caplog.set_level(logging.INFO, logger="opsloom.triggers")
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    def alert(n: int) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": f"e{n}",
            "source": "/test",
            "type": "io.test.alert",
            "subject": "fp-1",
            "traceparent": traceparent,
        }

    async with app:
        await app.emit(alert(1))
        [run] = await app.list_runs(workflow="incident")
        await app.emit(alert(2))
        await app.signal(run.id, "done")
        await app.handle(run.id).result(timeout=10)
        clock.advance(60)
        await app.emit(alert(3))

    decisions = lines(caplog, "opsloom.triggers")
    assert [(d["event"], d["key"], d["run_id"]) for d in decisions] == [
        ("trigger_matched", "fp-1", run.id),
        ("trigger_deduplicated", "fp-1", run.id),
        ("trigger_suppressed", "fp-1", None),
    ]
    assert {d["trace_id"] for d in decisions} == {"4bf92f3577b34da6a3ce929d0e0e4736"}


def record(**extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("opsloom.runs", logging.INFO, __file__, 1, "run %s done", ("r1",), None)
    rec.__dict__.update(extra)
    return rec


def test_json_format__one_object_with_the_extra_fields() -> None:
    line = JsonFormatter().format(record(event="run_completed", run_id="r1", step=None))
    parsed = json.loads(line)
    assert parsed["message"] == "run r1 done"
    assert (parsed["level"], parsed["logger"]) == ("INFO", "opsloom.runs")
    assert (parsed["event"], parsed["run_id"]) == ("run_completed", "r1")
    assert "step" not in parsed  # empty fields are left out
    assert parsed["time"].endswith("+00:00")


def test_text_format__extra_fields_as_key_value() -> None:
    line = TextFormatter().format(record(event="run_failed", error="no space left"))
    assert line.endswith('run r1 done event=run_failed error="no space left"')
