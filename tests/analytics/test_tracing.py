"""Traces with the SDK's in-memory exporter: runs, step attempts, outbound HTTP, trace context."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opsloom import App, Context, RetryPolicy
from opsloom.analytics.tracing import Tracing
from opsloom.api import create_api
from opsloom.api.routes import hooks
from opsloom.model.tracecontext import run_trace_id
from opsloom.settings import Settings
from opsloom.triggers.sources import load_hooks_config

INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"


@pytest.fixture
def peer() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that answers 200 and keeps the ``traceparent`` of each request."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("traceparent", ""))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def exporter() -> Iterator[tuple[InMemorySpanExporter, Tracing]]:
    memory = InMemorySpanExporter()
    tracing = Tracing(SimpleSpanProcessor(memory))
    try:
        yield memory, tracing
    finally:
        tracing.shutdown()


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def parent_of(span: ReadableSpan) -> str | None:
    return None if span.parent is None else f"{span.parent.span_id:016x}"


def own(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def build(make_app: Callable[..., App], url: str) -> App:
    app = make_app()
    tries = {"n": 0}

    @app.step(name="call_peer", retry=RetryPolicy(attempts=2, initial_delay=0.0, jitter=0.0))
    async def call_peer() -> int:
        tries["n"] += 1
        if tries["n"] == 1:
            raise ConnectionError("first try fails")
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).status_code

    @app.workflow(name="child")
    async def child(ctx: Context) -> int:
        status: int = await ctx.step(call_peer)
        return status

    @app.workflow(name="parent")
    async def parent(ctx: Context) -> int:
        status: int = await ctx.child("child")
        return status

    return app


async def test_tracing__run_step_attempts_http_and_child_share_the_incoming_trace(
    make_app: Callable[..., App],
    peer: tuple[str, list[str]],
    exporter: tuple[InMemorySpanExporter, Tracing],
) -> None:
    url, seen = peer
    memory, tracing = exporter
    app = build(make_app, url)
    app.observe(tracing)
    async with app:
        handle = await app.start("parent", traceparent=TRACEPARENT)
        assert await handle.result(timeout=20) == 200
        [child_run] = await app.list_runs(workflow="child")
    spans = {s.name: s for s in memory.get_finished_spans() if s.name != "step call_peer"}
    attempts = [s for s in memory.get_finished_spans() if s.name == "step call_peer"]
    assert {hex_trace(s) for s in memory.get_finished_spans()} == {INCOMING_TRACE}
    parent_span, child_span, http_span = spans["run parent"], spans["run child"], spans["GET"]
    assert parent_of(parent_span) == INCOMING_SPAN
    assert parent_of(child_span) == own(parent_span), "the child run continues its parent's"
    assert [a.attributes["opsloom.step.outcome"] for a in attempts] == ["retrying", "completed"]
    assert {parent_of(a) for a in attempts} == {own(child_span)}
    assert parent_of(http_span) == own(attempts[1]), "the call belongs to the second attempt"
    assert child_span.attributes["opsloom.run.id"] == child_run.id
    # The peer saw the trace too: the call carried traceparent on.
    assert seen == [f"00-{INCOMING_TRACE}-{own(http_span)}-01"]


async def test_tracing__webhook_traceparent_reaches_the_triggered_run(
    make_app: Callable[..., App], exporter: tuple[InMemorySpanExporter, Tracing]
) -> None:
    memory, tracing = exporter
    app = make_app()

    @app.workflow(name="on_alert")
    async def on_alert(ctx: Context, event: dict[str, Any]) -> str:
        return str(event["subject"])

    app.trigger("on_alert", on={"type": "io.opsloom.alert.firing.v1"})
    app.observe(tracing)
    api = create_api(app, Settings(api_token="t"))
    api.state.hooks = hooks.HookReceiver(
        load_hooks_config(environ={"OPSLOOM_HOOKS_ALERTMANAGER_TOKEN": "am-token"})
    )
    alert = {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "severity": "critical"},
        "annotations": {},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "fp-9",
    }
    body = {"version": "4", "status": "firing", "receiver": "opsloom", "alerts": [alert]}
    async with app:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            forged = {"Authorization": "Bearer wrong"}
            assert (await http.post("/hooks/alertmanager", json=body, headers=forged)).is_error
            response = await http.post(
                "/hooks/alertmanager",
                json=body,
                headers={"traceparent": TRACEPARENT, "Authorization": "Bearer am-token"},
            )
            assert response.status_code == 202, response.text
            [run] = await app.list_runs(workflow="on_alert")
            assert await app.handle(run.id).result(timeout=10) == "fp-9"
            metrics = (await http.get("/metrics")).text
    assert run.traceparent == TRACEPARENT
    [span] = [s for s in memory.get_finished_spans() if s.name == "run on_alert"]
    assert (hex_trace(span), parent_of(span)) == (INCOMING_TRACE, INCOMING_SPAN)
    accepted = 'opsloom_webhook_requests_total{outcome="accepted",reason="",source="alertmanager"}'
    assert f"{accepted} 1.0" in metrics
    rejected = [line for line in metrics.splitlines() if 'outcome="rejected"' in line]
    assert len(rejected) == 1 and rejected[0].endswith(" 1.0"), rejected


async def test_tracing__a_run_without_incoming_context_gets_its_derived_trace(
    make_app: Callable[..., App], exporter: tuple[InMemorySpanExporter, Tracing]
) -> None:
    memory, tracing = exporter
    app = make_app()

    @app.workflow(name="plain")
    async def plain(ctx: Context) -> int:
        return 1

    app.observe(tracing)
    async with app:
        handle = await app.start("plain", traceparent="not-a-traceparent")
        await handle.result(timeout=10)
    [span] = memory.get_finished_spans()
    assert span.parent is None
    assert hex_trace(span) == run_trace_id(handle.run_id)
