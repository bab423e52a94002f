"""Approvals over HTTP: the inbox API, Slack button callbacks and one-time e-mail links.

``router`` (under ``/api/v1``, bearer tokens): reading needs ``viewer``; deciding, asking and
delegating ``approver`` (and being an approver of the task); answering and cancelling need
only a token (being the requester, or an admin, is checked on the request itself).

``public_router`` checks its own credentials: ``POST /hooks/slack/interactions`` Slack's
request signature (``OPSLOOM_SLACK_SIGNING_SECRET``), ``/approvals/links/{token}`` the link's
signature (``OPSLOOM_APPROVAL_LINK_SECRET``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from opsloom.api.auth import require
from opsloom.api.body import body_doc, model_body
from opsloom.api.problem import problem
from opsloom.api.schema import Problem
from opsloom.app import App
from opsloom.approvals.link import ApprovalLinks
from opsloom.approvals.service import Approvals
from opsloom.approvals.slack import SlackRequestError, parse_interaction, verify_slack_request
from opsloom.approvals.spec import (
    ApprovalError,
    ApprovalLinkError,
)
from opsloom.identity.access import Principal, UnknownUserError

router = APIRouter(prefix="/approvals", tags=["approvals"])
public_router = APIRouter(tags=["approvals"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "Not an approver of this task, or the requester."},
    404: {"model": Problem, "description": "No such request or task."},
    409: {"model": Problem, "description": "The task is closed, paused or already decided."},
}

Viewer = Annotated[Principal, Depends(require("viewer"))]
Approver = Annotated[Principal, Depends(require("approver"))]


@dataclass(frozen=True, slots=True)
class ApprovalChannels:
    """The secrets of the Slack callback and of the e-mail links (None: that channel is off).

    The API keeps one in ``api.state.approval_channels``; without one, the settings are read.
    """

    slack_signing_secret: str | None = None
    link_secret: str | None = None


def _channels(request: Request) -> ApprovalChannels:
    state = request.app.state
    found: ApprovalChannels | None = getattr(state, "approval_channels", None)
    if found is None:
        app: App = state.opsloom
        settings = app.settings
        found = ApprovalChannels(
            _secret(getattr(settings, "slack_signing_secret", None)),
            _secret(getattr(settings, "approval_link_secret", None)),
        )
        state.approval_channels = found
    return found


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    reveal = getattr(value, "get_secret_value", None)
    return str(reveal() if callable(reveal) else value) or None


def approvals_service(request: Request) -> Approvals:
    """The approvals service over the API's App."""
    app: App = request.app.state.opsloom
    return app.approvals


Service = Annotated[Approvals, Depends(approvals_service)]


def _task_id(request_id: str, task: str) -> str:
    # A task is named by its position in the request ("0") or by its full id.
    return f"{request_id}.{task}" if task.isdigit() else task


class DecisionBody(BaseModel):
    approve: bool = Field(description="True to approve, false to deny.")
    comment: str | None = Field(default=None, description="Why; required for a denial.")


class AskBody(BaseModel):
    question: str = Field(min_length=1)


class AnswerBody(BaseModel):
    answer: str = Field(min_length=1)


class DelegateBody(BaseModel):
    to: str = Field(min_length=1, description="The user who decides in your place.")


class CancelBody(BaseModel):
    reason: str = Field(min_length=1)


@router.get("", summary="Approval requests, or my pending tasks")
async def list_approvals(
    request: Request,
    principal: Viewer,
    approvals: Service,
    mine: Annotated[bool, Query(description="Only the tasks waiting for me.")] = False,
    status: Annotated[str | None, Query(description="Only requests with this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    if mine:
        return JSONResponse(await approvals.pending_for(principal))
    return JSONResponse(await approvals.requests(status, limit))


@router.get("/stats", summary="Response times per stage")
async def approval_stats(principal: Viewer, approvals: Service) -> JSONResponse:
    return JSONResponse([s.to_dict() for s in await approvals.stats()])


@router.get("/{request_id}", summary="One approval request", responses=_RESPONSES)
async def show_approval(
    request: Request, request_id: str, principal: Viewer, approvals: Service
) -> Response:
    return JSONResponse(await approvals.show(request_id))


@router.post(
    "/{request_id}/tasks/{task}/decision",
    summary="Approve or deny a task",
    responses=_RESPONSES,
    openapi_extra=body_doc(DecisionBody.model_json_schema(), required=True),
)
async def decide_task(
    request: Request,
    request_id: str,
    task: str,
    principal: Approver,
    body: Annotated[DecisionBody, Depends(model_body(DecisionBody))],
    approvals: Service,
) -> Response:
    task_id = _task_id(request_id, task)
    return JSONResponse(await approvals.decide(principal, task_id, body.approve, body.comment))


@router.post(
    "/{request_id}/tasks/{task}/ask",
    summary="Ask the requester",
    responses=_RESPONSES,
    openapi_extra=body_doc(AskBody.model_json_schema(), required=True),
)
async def ask_requester(
    request: Request,
    request_id: str,
    task: str,
    principal: Approver,
    body: Annotated[AskBody, Depends(model_body(AskBody))],
    approvals: Service,
) -> Response:
    task_id = _task_id(request_id, task)
    return JSONResponse(await approvals.ask(principal, task_id, body.question))


@router.post(
    "/{request_id}/answer",
    summary="Answer the open questions",
    responses=_RESPONSES,
    openapi_extra=body_doc(AnswerBody.model_json_schema(), required=True),
)
async def answer_questions(
    request: Request,
    request_id: str,
    principal: Viewer,
    body: Annotated[AnswerBody, Depends(model_body(AnswerBody))],
    approvals: Service,
) -> Response:
    return JSONResponse(await approvals.answer(principal, request_id, body.answer))


@router.post(
    "/{request_id}/tasks/{task}/delegate",
    summary="Delegate a task",
    responses=_RESPONSES,
    openapi_extra=body_doc(DelegateBody.model_json_schema(), required=True),
)
async def delegate_task(
    request: Request,
    request_id: str,
    task: str,
    principal: Approver,
    body: Annotated[DelegateBody, Depends(model_body(DelegateBody))],
    approvals: Service,
) -> Response:
    task_id = _task_id(request_id, task)
    return JSONResponse(await approvals.delegate(principal, task_id, body.to))


@router.post(
    "/{request_id}/cancel",
    summary="Withdraw a request",
    responses=_RESPONSES,
    openapi_extra=body_doc(CancelBody.model_json_schema(), required=True),
)
async def cancel_request(
    request: Request,
    request_id: str,
    principal: Viewer,
    body: Annotated[CancelBody, Depends(model_body(CancelBody))],
    approvals: Service,
) -> Response:
    return JSONResponse(await approvals.cancel(principal, request_id, body.reason))


# --- Slack and e-mail links (their own credentials) -----------------------------------------


def _slack_reply(text: str) -> JSONResponse:
    # Slack wants a 200 within three seconds; for legacy interactive messages the body is an
    # ephemeral reply to the clicker (block actions ignore it).
    return JSONResponse({"response_type": "ephemeral", "replace_original": False, "text": text})


@public_router.post("/hooks/slack/interactions", summary="Slack button clicks")
async def slack_interactions(request: Request, approvals: Service) -> Response:
    secret = _channels(request).slack_signing_secret
    body = await request.body()
    try:
        verify_slack_request(
            secret or "",
            request.headers.get("x-slack-request-timestamp"),
            request.headers.get("x-slack-signature"),
            body,
            approvals.clock.now(),
        )
        action = parse_interaction(body)
    except SlackRequestError as exc:
        status = 400 if "payload" in str(exc) or "action" in str(exc) else 401
        return problem(request, status, exc.code, str(exc), title="Slack request refused")
    if action.kind == "open":
        return Response(status_code=200)  # a link button: Slack wants its 200, nothing more
    user = await approvals.identity.user_by_slack_id(action.slack_user)
    if user is None:
        return _slack_reply("Your Slack account is not linked to an opsloom user.")
    try:
        principal = await approvals.identity.principal(user.id)
        if action.kind == "ask":
            await approvals.ask(principal, action.task_id, action.question or "", via="slack")
            return _slack_reply(f"Asked; task {action.task_id} waits for the answer.")
        comment = None if action.approve else "denied from Slack"
        await approvals.decide(principal, action.task_id, action.approve, comment, via="slack")
    except (ApprovalError, UnknownUserError) as exc:
        return _slack_reply(f"Not recorded: {exc}")
    verb = "Approved" if action.approve else "Denied"
    return _slack_reply(f"{verb} task {action.task_id}.")


def _links(request: Request, approvals: Approvals) -> ApprovalLinks | None:
    secret = _channels(request).link_secret
    return None if secret is None else ApprovalLinks(approvals, secret)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta name='robots' content='noindex'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
    )


@public_router.get("/approvals/links/{token}", summary="Confirm a one-time link (no decision)")
async def show_link(request: Request, token: str, approvals: Service) -> HTMLResponse:
    links = _links(request, approvals)
    if links is None:
        return _page("Approval links are off", "", 404)
    try:
        view = await links.peek(token)
    except ApprovalError as exc:
        return _page("This link cannot be used", f"<p>{html.escape(str(exc))}</p>", 410)
    verb = "Approve" if view.link.approve else "Deny"
    details = html.escape(f"{view.request['title']} (requested by {view.request['requester']})")
    return _page(
        f"{verb} this request?",
        f"<p>{details}</p><form method='post'>"
        "<label>Comment <input name='comment'></label> "
        f"<button type='submit'>{verb}</button></form>",
    )


@public_router.post("/approvals/links/{token}", summary="Decide with a one-time link")
async def use_link(request: Request, token: str, approvals: Service) -> HTMLResponse:
    # The confirmation page's form is url-encoded; read it without a multipart parser.
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    comment = next(iter(fields.get("comment", [])), None)
    links = _links(request, approvals)
    if links is None:
        return _page("Approval links are off", "", 404)
    try:
        view = await links.redeem(token, comment)
    except ApprovalLinkError as exc:
        return _page("This link cannot be used", f"<p>{html.escape(str(exc))}</p>", 410)
    except ApprovalError as exc:
        return _page("Not recorded", f"<p>{html.escape(str(exc))}</p>", 409)
    return _page("Recorded", f"<p>{html.escape(view['title'])}: thank you.</p>")
