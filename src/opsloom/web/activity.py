"""What happened around the runs: events, triggers, schedules (pause/resume) and the audit log."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloom.services.schedule import list_schedules, set_paused
from opsloom.store.event import EventQuery
from opsloom.web.page import AppDep, OperatorChange, PagesDep, SessionDep

router = APIRouter()


@router.get("/events", response_class=HTMLResponse, summary="Events")
async def events_page(
    request: Request, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    get = request.query_params.get
    before = get("before", "")
    query = EventQuery(
        type=get("type") or None,
        source=get("source") or None,
        before=int(before) if before.isdigit() else None,
        limit=50,
    )
    events = await app.store.list_events(query)
    effects = await app.store.runs_of_events(events)
    older = (
        urlencode({"type": get("type", ""), "source": get("source", ""), "before": events[-1].seq})
        if len(events) == query.limit
        else None
    )
    return pages.render(
        request,
        "events.html",
        session,
        events=events,
        effects=effects,
        type=get("type", ""),
        source=get("source", ""),
        older=older,
    )


@router.get("/triggers", response_class=HTMLResponse, summary="Triggers and schedules")
async def triggers_page(
    request: Request, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    triggers = await app.store.list_triggers()
    started: dict[str, Any] = {t.id: await app.store.trigger_runs(t.id, 10) for t in triggers}
    return pages.render(
        request,
        "triggers.html",
        session,
        triggers=triggers,
        started=started,
        schedules=await list_schedules(app),
        notice=request.query_params.get("notice", ""),
    )


@router.post("/schedules/{schedule_id:path}/pause", summary="Pause a schedule")
async def pause_schedule(schedule_id: str, app: AppDep, change: OperatorChange) -> Response:
    await set_paused(app, schedule_id, True, actor=change[0].principal.user)
    return RedirectResponse(f"/triggers?{urlencode({'notice': 'paused'})}", status_code=303)


@router.post("/schedules/{schedule_id:path}/resume", summary="Resume a schedule")
async def resume_schedule(schedule_id: str, app: AppDep, change: OperatorChange) -> Response:
    await set_paused(app, schedule_id, False, actor=change[0].principal.user)
    return RedirectResponse(f"/triggers?{urlencode({'notice': 'resumed'})}", status_code=303)


@router.get("/audit", response_class=HTMLResponse, summary="Audit log")
async def audit_page(
    request: Request, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    head_seq, _ = await app.store.audit_head()
    entries = await app.store.audit_entries(after_seq=max(0, head_seq - 100), limit=100)
    verified = await app.audit.verify() if request.query_params.get("verify") else None
    return pages.render(
        request,
        "audit.html",
        session,
        entries=list(reversed(entries)),
        verified=verified,
    )
