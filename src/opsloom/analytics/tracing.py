"""OpenTelemetry traces of runs: a span per run, per step attempt and per outbound HTTP call.

A run may be executed by several processes over hours (it parks, its worker dies, another
resumes it), so its spans cannot all hang off one live span object. Instead every process
derives the same ids from the run: the trace id is the one of the run's ``traceparent`` (from
the webhook, the CloudEvent, the API call or the parent run that started it) or one derived
from the run id, and the run span's id is derived from the run id
(:func:`~opsloom.model.tracecontext.run_span_context`). Step attempts are live spans, children
of the run span, made current while the step body runs, so that outbound HTTP calls made with
httpx (instrumented while tracing is on) become their children and carry ``traceparent`` on.
The run span itself is recorded when the run ends, with its real start time.

Names follow the OpenTelemetry conventions where they exist (the HTTP client spans are the
instrumentation's); opsloom's own attributes are under ``opsloom.``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from opsloom.model import RunRecord, RunStatus
from opsloom.model.observer import Observer, StepAttempt
from opsloom.model.tracecontext import TraceParent, run_span_context

_NS = 1_000_000_000


class _ChosenIds(IdGenerator):
    """Random ids, except for the next span when one was chosen (a run's derived ids)."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self.span_id: int | None = None
        self.trace_id: int | None = None

    def generate_span_id(self) -> int:
        chosen, self.span_id = self.span_id, None
        return chosen if chosen is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        chosen, self.trace_id = self.trace_id, None
        return chosen if chosen is not None else self._random.generate_trace_id()


def _remote(parent: TraceParent) -> otel_context.Context:
    """A context whose current span is ``parent`` (a span of another process or run)."""
    flags = TraceFlags(TraceFlags.SAMPLED if parent.sampled else TraceFlags.DEFAULT)
    span = NonRecordingSpan(
        SpanContext(int(parent.trace_id, 16), int(parent.span_id, 16), True, flags)
    )
    return trace.set_span_in_context(span)


class Tracing(Observer):
    """Records spans of runs and steps and hands them to ``processor`` (an exporter's).

    Args:
        processor: where finished spans go: a ``BatchSpanProcessor`` around an OTLP exporter
            (:func:`otlp_tracing`), or a ``SimpleSpanProcessor`` around an in-memory one.
        instrument_http: also trace outbound httpx calls (global to the process; undone by
            :meth:`shutdown`).
    """

    def __init__(self, processor: SpanProcessor, *, instrument_http: bool = True) -> None:
        self._ids = _ChosenIds()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "opsloom"}), id_generator=self._ids
        )
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("opsloom")
        self._open: dict[tuple[str, int, int], tuple[trace.Span, object]] = {}
        self._http: Any = None
        if instrument_http:
            from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

            self._http = HTTPXClientInstrumentor()
            self._http.instrument(tracer_provider=self.provider)

    def shutdown(self) -> None:
        """Flush and stop exporting; stop tracing httpx calls."""
        if self._http is not None:
            self._http.uninstrument()
            self._http = None
        self.provider.shutdown()

    # --- Observer -----------------------------------------------------------------------------

    def step_started(self, run: RunRecord, seq: int, name: str, attempt: int) -> None:
        parent = _remote(run_span_context(run.id, run.traceparent))
        span = self.tracer.start_span(
            f"step {name}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes={
                "opsloom.run.id": run.id,
                "opsloom.workflow": run.workflow,
                "opsloom.workflow.version": run.version,
                "opsloom.step.name": name,
                "opsloom.step.seq": seq,
                "opsloom.step.attempt": attempt,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        self._open[(run.id, seq, attempt)] = (span, token)

    def step_attempted(self, run: RunRecord, step: StepAttempt) -> None:
        opened = self._open.pop((run.id, step.seq, step.attempt), None)
        if opened is None:
            return
        span, token = opened
        otel_context.detach(token)  # type: ignore[arg-type]  # the token attach returned
        span.set_attribute("opsloom.step.outcome", step.outcome)
        if step.error_type is not None:
            span.set_attribute("error.type", step.error_type)
            span.set_status(Status(StatusCode.ERROR, step.outcome))
        span.end(int(step.ended_at * _NS))

    def run_finished(self, run: RunRecord, now: float) -> None:
        incoming = TraceParent.parse(run.traceparent)
        own = run_span_context(run.id, run.traceparent)
        self._ids.span_id = int(own.span_id, 16)
        if incoming is None:
            self._ids.trace_id = int(own.trace_id, 16)
        begun = run.started_at if run.started_at is not None else run.created_at
        span = self.tracer.start_span(
            f"run {run.workflow}",
            # A root span when nothing came in: never a child of whatever is current here.
            context=otel_context.Context() if incoming is None else _remote(incoming),
            kind=SpanKind.INTERNAL,
            start_time=int(begun * _NS),
            attributes={
                "opsloom.run.id": run.id,
                "opsloom.workflow": run.workflow,
                "opsloom.workflow.version": run.version,
                "opsloom.run.status": str(run.status),
                "opsloom.run.recovered": run.recovered,
            },
        )
        self._ids.span_id = self._ids.trace_id = None
        if run.status is not RunStatus.COMPLETED:
            error = run.error or {}
            span.set_attribute("error.type", str(error.get("type", run.status)))
            span.set_status(Status(StatusCode.ERROR, str(run.status)))
        span.end(int(now * _NS))


def otlp_tracing(endpoint: str) -> Tracing:
    """Tracing that exports to an OTLP/HTTP collector at ``endpoint`` (``http://host:4318``)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    return Tracing(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
