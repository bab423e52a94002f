"""W3C Trace Context ``traceparent`` values: parsed, checked and formatted (no I/O).

``version-trace_id-parent_id-flags``, e.g. ``00-4bf92f3577b34da6a3ce929d0e0e4736-
00f067aa0ba902b7-01``. Webhooks carry it as an HTTP header, CloudEvents as the ``traceparent``
extension attribute of the Distributed Tracing extension.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A parsed ``traceparent``: the trace, the caller's span, and whether it is sampled."""

    trace_id: str
    span_id: str
    sampled: bool = True

    @classmethod
    def parse(cls, value: str | None) -> TraceParent | None:
        """The trace context in ``value``, or None when absent or invalid (then it is ignored,
        as the specification asks: a bad header starts a new trace rather than failing)."""
        if not value:
            return None
        match = _TRACEPARENT.match(value.strip().lower())
        if match is None:
            return None
        version, trace_id, span_id, flags, rest = match.groups()
        if version == "ff" or (version == "00" and rest):
            return None
        if trace_id == "0" * 32 or span_id == "0" * 16:
            return None
        return cls(trace_id, span_id, bool(int(flags, 16) & 1))

    def header(self) -> str:
        """The ``traceparent`` value (version 00)."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id in a ``traceparent`` value, if it is valid."""
    parsed = TraceParent.parse(traceparent)
    return None if parsed is None else parsed.trace_id


def run_trace_id(run_id: str, traceparent: str | None = None) -> str:
    """The trace id of a run: its incoming trace's, else one derived from the run id.

    Derived, not random, so that every process that executes a part of the run — and every log
    line about it — names the same trace without storing it.
    """
    incoming = trace_id_of(traceparent)
    if incoming is not None:
        return incoming
    return hashlib.sha256(f"opsloom-trace:{run_id}".encode()).hexdigest()[:32]


def derived_span_id(*parts: object) -> str:
    """A span id fixed by ``parts`` (a run; a run, step and attempt): the same in any process."""
    text = ":".join(str(p) for p in parts)
    return hashlib.sha256(f"opsloom-span:{text}".encode()).hexdigest()[:16]


def run_span_context(run_id: str, traceparent: str | None) -> TraceParent:
    """The trace context of a run's own span: its trace, and a span id fixed by the run."""
    incoming = TraceParent.parse(traceparent)
    sampled = True if incoming is None else incoming.sampled
    return TraceParent(run_trace_id(run_id, traceparent), derived_span_id(run_id), sampled)


def child_traceparent(parent_id: str, parent_traceparent: str | None) -> str:
    """The ``traceparent`` a child run starts with: its parent run's span, in its trace."""
    return run_span_context(parent_id, parent_traceparent).header()
