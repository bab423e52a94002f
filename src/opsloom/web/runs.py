"""Runs in the browser: the list (filters, counts, keyset pages, live), one run, its actions."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from opsloom.app import App
from opsloom.dsl.document import parse_document
from opsloom.errors import InputError
from opsloom.model import RunRecord, RunStatus, StepKind
from opsloom.services import run as runs
from opsloom.services.workflow import list_workflows
from opsloom.store import RunFilter, Store
from opsloom.web.graph import Node, document_graph, mark_path
from opsloom.web.inputform import fields_of, input_from, input_schema
from opsloom.web.page import AppDep, OperatorChange, PagesDep, SessionDep, pretty

router = APIRouter()

PAGE_SIZE = 50
#: A longer history shows its first and last this many steps unless all are asked for.
STEP_WINDOW = 100
#: Up to this many steps, a run page carries every step's output; beyond, each loads on demand.
INLINE_OUTPUTS = 100
STATUSES = [str(status) for status in RunStatus]


def _time(value: str | None, what: str) -> float | None:
    """Epoch seconds of a ``datetime-local`` field (read as UTC); None when empty."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{what} must be a date and time like 2026-01-31T14:00") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _cursor(value: str | None) -> tuple[float, str] | None:
    if not value:
        return None
    stamp, sep, run_id = value.partition("~")
    try:
        return (float(stamp), run_id) if sep and run_id else None
    except ValueError:
        return None


class StatusCounts:
    """Counts per status, reused for ``ttl`` seconds per filter.

    Counting is the costly part of a runs page on a large store (it reads every matching run),
    while a live list asks again every few seconds and paging through a list keeps its filter:
    both get counts at most ``ttl`` seconds old instead of a count each.
    """

    def __init__(self, ttl: float = 2.0, size: int = 256) -> None:
        self.ttl = ttl
        self.size = size
        self._kept: dict[tuple[Any, ...], tuple[float, dict[RunStatus, int]]] = {}

    async def of(self, store: Store, flt: RunFilter) -> dict[RunStatus, int]:
        key = (flt.workflow, flt.parent_id, flt.created_from, flt.created_to, flt.text)
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        counts = await store.count_runs(flt)
        self._kept[key] = (now + self.ttl, counts)
        if len(self._kept) > self.size:
            del self._kept[next(iter(self._kept))]
        return counts


@dataclass(frozen=True, slots=True)
class Listing:
    """The filters of the runs list as the page shows them, and their store form."""

    status: str
    workflow: str
    since: str
    until: str
    q: str
    before: str

    @classmethod
    def of(cls, request: Request) -> Listing:
        get = request.query_params.get
        return cls(
            status=get("status", "") if get("status", "") in STATUSES else "",
            workflow=get("workflow", ""),
            since=get("since", ""),
            until=get("until", ""),
            q=get("q", "").strip(),
            before=get("before", ""),
        )

    def store_filter(self) -> RunFilter:
        return RunFilter(
            status=RunStatus(self.status) if self.status else None,
            workflow=self.workflow or None,
            created_from=_time(self.since, "'from'"),
            created_to=_time(self.until, "'to'"),
            text=self.q or None,
            before=_cursor(self.before),
            limit=PAGE_SIZE + 1,
        )

    def query(self, **changes: str) -> str:
        """The query string of this listing with some fields changed (empty ones left out)."""
        fields = {
            "status": self.status,
            "workflow": self.workflow,
            "since": self.since,
            "until": self.until,
            "q": self.q,
            "before": self.before,
        }
        fields.update(changes)
        return urlencode({k: v for k, v in fields.items() if v})


@router.get("/runs", response_class=HTMLResponse, summary="Runs")
async def runs_page(
    request: Request, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    listing = Listing.of(request)
    try:
        flt = listing.store_filter()
    except InputError as exc:
        return pages.render(request, "error.html", session, status=422, message=str(exc))
    rows = await app.store.list_runs(flt)
    counts = await request.app.state.counts.of(app.store, flt)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    older = (
        listing.query(before=f"{rows[-1].created_at!r}~{rows[-1].id}") if more and rows else None
    )
    context: dict[str, Any] = {
        "listing": listing,
        "runs": rows,
        "counts": {status: counts.get(RunStatus(status), 0) for status in STATUSES},
        "total": sum(counts.values()),
        "older": older,
        "live": not listing.before,
        "statuses": STATUSES,
        "workflows": sorted({info.name for info in list_workflows(app)}),
    }
    partial = request.headers.get("hx-request") == "true" and request.query_params.get("live")
    return pages.render(request, "runs_live.html" if partial else "runs.html", session, **context)


def timeline(run: RunRecord, window: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Bars of the step Gantt chart: each step's offset and width in percent of the run's span.

    With ``window``, a longer history keeps its first and last ``window`` steps; the second
    value says how many were left out (the bar between them stands for those).
    """
    steps = [s for s in run.steps if s.kind is not StepKind.VALUE]
    start = run.started_at or run.created_at
    ends = [s.completed_at or s.started_at or start for s in steps]
    end = max([run.completed_at or run.updated_at or start, *ends])
    span = max(end - start, 1e-6)
    bars = []
    for step in steps:
        begin = step.started_at if step.started_at is not None else start
        finish = step.completed_at if step.completed_at is not None else end
        bars.append(
            {
                "step": step,
                "left": round(100 * (begin - start) / span, 2),
                "width": max(round(100 * (finish - begin) / span, 2), 0.5),
                "duration": None if step.completed_at is None else finish - begin,
            }
        )
    if window is None or len(bars) <= 2 * window:
        return bars, 0
    return bars[:window] + bars[-window:], len(bars) - 2 * window


@router.get("/runs/{run_id}", response_class=HTMLResponse, summary="One run")
async def run_page(
    request: Request, run_id: str, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    run = await runs.show_run(app, run_id)
    children = await app.store.list_runs(RunFilter(parent_id=run.id, limit=500))
    signals = [s for s in run.steps if s.kind is StepKind.SIGNAL]
    graph = await _document_path(app, run)
    all_steps = request.query_params.get("steps") == "all"
    bars, hidden = timeline(run, None if all_steps else STEP_WINDOW)
    context: dict[str, Any] = {
        "run": run,
        "bars": bars,
        "hidden": hidden,
        "window": STEP_WINDOW,
        "all_steps": all_steps,
        "children": sorted(children, key=lambda child: (child.created_at, child.id)),
        "signals": signals,
        "compensations": [s for s in run.steps if s.kind is StepKind.COMPENSATION],
        "failed_steps": [s for s in run.steps if s.error],
        "terminal": run.status.terminal,
        "retryable": run.status in (RunStatus.FAILED, RunStatus.TIMED_OUT),
        "notice": request.query_params.get("notice", ""),
        "graph": graph,
        # Long histories load each step's output when it is opened, to keep the page light.
        "lazy_outputs": len(run.steps) > INLINE_OUTPUTS,
    }
    partial = request.headers.get("hx-request") == "true" and bool(request.query_params.get("live"))
    context["live_update"] = partial
    return pages.render(request, "run_live.html" if partial else "run.html", session, **context)


@router.get("/runs/{run_id}/steps/{seq}", response_class=PlainTextResponse)
async def step_output(run_id: str, seq: int, app: AppDep, session: SessionDep) -> Response:
    """One step's output as indented JSON (what the run page's step output shows)."""
    run = await app.get_run(run_id)
    found = next((s for s in run.steps if s.seq == seq), None)
    if found is None:
        raise HTTPException(404, f"run {run_id!r} has no step {seq}")
    return PlainTextResponse(pretty(found.output))


async def _document_path(app: App, run: RunRecord) -> list[Node] | None:
    """The graph of a deployed document's run with the path it took marked; None otherwise."""
    namespace, slash, name = run.workflow.partition("/")
    if not slash:
        return None
    record = await app.store.get_document(namespace, name, run.version)
    if record is None:
        return None
    graph = document_graph(parse_document(record.text, record.workflow))
    mark_path(graph, {s.name: str(s.status) for s in run.steps if s.kind is StepKind.STEP})
    return graph


def _json(text: str, what: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}") from None


def _to(path: str, notice: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'notice': notice})}", status_code=303)


async def _input(app: App, form: dict[str, str]) -> Any:
    """The run input of a start form: its JSON text, or the fields of a document's schema."""
    reference = form.get("document", "")
    if not reference:
        return _json(form.get("input", ""), "the input")
    namespace, name, version = [*reference.split("/"), "", ""][:3]
    record = await app.store.get_document(namespace, name, version)
    fields = None
    if record is not None:
        fields = fields_of(input_schema(parse_document(record.text, record.workflow).data))
    if fields is None:
        raise InputError(f"no deployed document {reference!r} with an input form")
    return input_from(fields, form)


@router.post("/runs", summary="Start a run")
async def start(app: AppDep, change: OperatorChange) -> Response:
    session, form = change
    run, created = await runs.start_run(
        app, form.get("workflow", ""), await _input(app, form), actor=session.principal.user
    )
    return _to(f"/runs/{run.id}", "started" if created else "already started")


@router.post("/runs/{run_id}/cancel", summary="Cancel a run")
async def cancel(run_id: str, app: AppDep, change: OperatorChange) -> Response:
    ids = await runs.cancel_run(app, run_id, actor=change[0].principal.user)
    return _to(f"/runs/{run_id}", f"cancellation requested for {len(ids)} run(s)")


@router.post("/runs/{run_id}/retry", summary="Retry a run")
async def retry(run_id: str, app: AppDep, change: OperatorChange) -> Response:
    await runs.retry_run(app, run_id, actor=change[0].principal.user)
    return _to(f"/runs/{run_id}", "queued again")


@router.post("/runs/{run_id}/signal", summary="Signal a run")
async def signal(run_id: str, app: AppDep, change: OperatorChange) -> Response:
    session, form = change
    name = form.get("name", "").strip()
    if not name:
        raise InputError("the signal needs a name")
    data = _json(form.get("payload", ""), "the signal's data")
    await runs.signal_run(app, run_id, name, data, actor=session.principal.user)
    return _to(f"/runs/{run_id}", f"signal {name!r} sent")
