"""The approvals inbox: what waits for me, with its SLA; approve, deny, ask, delegate, answer."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloom.approvals.service import Approvals
from opsloom.approvals.spec import InvalidApprovalError
from opsloom.web.page import ApproverChange, PagesDep, SessionDep, ViewerChange

router = APIRouter()


def _approvals(request: Request) -> Approvals:
    approvals: Approvals = request.app.state.opsloom.approvals
    return approvals


Service = Annotated[Approvals, Depends(_approvals)]


def _task_id(request_id: str, task: str) -> str:
    return f"{request_id}.{task}" if task.isdigit() else task


def _back(notice: str) -> RedirectResponse:
    return RedirectResponse(f"/approvals?{urlencode({'notice': notice})}", status_code=303)


@router.get("/approvals", response_class=HTMLResponse, summary="Approvals inbox")
async def inbox(
    request: Request, approvals: Service, pages: PagesDep, session: SessionDep
) -> Response:
    mine = await approvals.pending_for(session.principal)
    pending: list[dict[str, Any]] = await approvals.requests("pending", 200)
    recent: list[dict[str, Any]] = [
        r for r in await approvals.requests(None, 50) if r.get("status") != "pending"
    ]
    return pages.render(
        request,
        "approvals.html",
        session,
        mine=[t for t in mine if t["kind"] == "approval"],
        questions=[t for t in mine if t["kind"] == "question"],
        pending=pending,
        requests={r["id"]: r for r in pending},
        recent=recent[:20],
        now=approvals.clock.now(),
        notice=request.query_params.get("notice", ""),
    )


@router.get("/approvals/{request_id}", response_class=HTMLResponse, summary="One request")
async def approval_page(
    request: Request, request_id: str, approvals: Service, pages: PagesDep, session: SessionDep
) -> Response:
    shown = await approvals.show(request_id)
    return pages.render(request, "approval.html", session, approval=shown)


@router.post("/approvals/{request_id}/tasks/{task}/decide", summary="Approve or deny")
async def decide(
    request_id: str, task: str, approvals: Service, change: ApproverChange
) -> Response:
    session, form = change
    verdict = form.get("decision")
    if verdict not in ("approve", "deny"):
        raise InvalidApprovalError("choose approve or deny")
    comment = form.get("comment", "").strip() or None
    await approvals.decide(
        session.principal, _task_id(request_id, task), verdict == "approve", comment, via="web"
    )
    return _back(f"{'approved' if verdict == 'approve' else 'denied'}: {request_id}")


@router.post("/approvals/{request_id}/tasks/{task}/ask", summary="Ask the requester")
async def ask(request_id: str, task: str, approvals: Service, change: ApproverChange) -> Response:
    session, form = change
    question = form.get("question", "").strip()
    if not question:
        raise InvalidApprovalError("write the question to ask")
    await approvals.ask(session.principal, _task_id(request_id, task), question, via="web")
    return _back(f"question sent: {request_id}")


@router.post("/approvals/{request_id}/tasks/{task}/delegate", summary="Delegate a task")
async def delegate(
    request_id: str, task: str, approvals: Service, change: ApproverChange
) -> Response:
    session, form = change
    to = form.get("to", "").strip()
    if not to:
        raise InvalidApprovalError("name the user to delegate to")
    await approvals.delegate(session.principal, _task_id(request_id, task), to, via="web")
    return _back(f"delegated to {to}: {request_id}")


@router.post("/approvals/{request_id}/answer", summary="Answer a question")
async def answer(request_id: str, approvals: Service, change: ViewerChange) -> Response:
    session, form = change
    text = form.get("answer", "").strip()
    if not text:
        raise InvalidApprovalError("write the answer")
    await approvals.answer(session.principal, request_id, text, via="web")
    return _back(f"answered: {request_id}")
