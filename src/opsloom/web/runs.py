"""Runs in the browser: the list (filters, counts, keyset pages, live) and the run actions."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloom.app import App
from opsloom.dsl.document import parse_document
from opsloom.errors import InputError
from opsloom.model import RunStatus
from opsloom.services import run as runs
from opsloom.services.workflow import list_workflows
from opsloom.store import RunFilter, Store
from opsloom.web.inputform import fields_of, input_from, input_schema
from opsloom.web.live import Message, event_stream
from opsloom.web.page import AppDep, OperatorChange, PagesDep, SessionDep, run_url

router = APIRouter()

PAGE_SIZE = 50
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


async def listing_context(
    app: App, counts: StatusCounts, listing: Listing, flt: RunFilter
) -> dict[str, Any]:
    """What the runs list shows of ``listing`` (its page of runs, counts, the next cursor)."""
    rows = await app.store.list_runs(flt)
    per_status = await counts.of(app.store, flt)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    older = (
        listing.query(before=f"{rows[-1].created_at!r}~{rows[-1].id}") if more and rows else None
    )
    return {
        "listing": listing,
        "runs": rows,
        "counts": {status: per_status.get(RunStatus(status), 0) for status in STATUSES},
        "total": sum(per_status.values()),
        "older": older,
        "live": not listing.before,
    }


@router.get("/runs", response_class=HTMLResponse, summary="Runs")
async def runs_page(
    request: Request, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    listing = Listing.of(request)
    try:
        flt = listing.store_filter()
    except InputError as exc:
        return pages.render(request, "error.html", session, status=422, message=str(exc))
    context = await listing_context(app, request.app.state.counts, listing, flt)
    context["statuses"] = STATUSES
    context["workflows"] = sorted({info.name for info in list_workflows(app)})
    return pages.render(request, "runs.html", session, **context)


@router.get("/live/runs", summary="Runs list, live (server-sent events)")
async def runs_live(
    request: Request, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    """Event ``runs``: the list part of the runs page, each time it changes (newest page only)."""
    listing = replace(Listing.of(request), before="")
    flt = listing.store_filter()
    counts: StatusCounts = request.app.state.counts

    async def render() -> list[Message]:
        context = await listing_context(app, counts, listing, flt)
        return [("runs", pages.fragment("runs_live.html", **context))]

    return event_stream(request.app.state.hub, ("runs", listing.query()), render)


def _json(text: str, what: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}") from None


def _to(run_id: str, notice: str) -> RedirectResponse:
    return RedirectResponse(f"{run_url(run_id)}?{urlencode({'notice': notice})}", status_code=303)


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
    return _to(run.id, "started" if created else "already started")


@router.post("/runs/{run_id:path}/cancel", summary="Cancel a run")
async def cancel(run_id: str, app: AppDep, change: OperatorChange) -> Response:
    ids = await runs.cancel_run(app, run_id, actor=change[0].principal.user)
    return _to(run_id, f"cancellation requested for {len(ids)} run(s)")


@router.post("/runs/{run_id:path}/retry", summary="Retry a run")
async def retry(run_id: str, app: AppDep, change: OperatorChange) -> Response:
    await runs.retry_run(app, run_id, actor=change[0].principal.user)
    return _to(run_id, "queued again")


@router.post("/runs/{run_id:path}/signal", summary="Signal a run")
async def signal(run_id: str, app: AppDep, change: OperatorChange) -> Response:
    session, form = change
    name = form.get("name", "").strip()
    if not name:
        raise InputError("the signal needs a name")
    data = _json(form.get("payload", ""), "the signal's data")
    await runs.signal_run(app, run_id, name, data, actor=session.principal.user)
    return _to(run_id, f"signal {name!r} sent")
