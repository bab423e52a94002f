"""RFC 9457 problem+json answers, mapped from the :class:`~opsloom.errors.OpsloomError` tree.

Every answer carries the RFC's ``type``, ``title``, ``status``, ``detail`` and ``instance``
members plus opsloom's stable error ``code``, so clients branch on ``code`` and people read
``detail``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from opsloom.approvals.spec import (
    ApprovalConflictError,
    ApprovalError,
    ApprovalForbiddenError,
    ApprovalLinkError,
    ApprovalNotFoundError,
    InvalidApprovalError,
)
from opsloom.errors import (
    ConnectionNotFoundError,
    ConnectorError,
    ConnectorNotFoundError,
    DeadLetterNotFoundError,
    DeadLetterStateError,
    InputError,
    OpsloomError,
    OverloadedError,
    QueryError,
    RateLimitExceededError,
    RunNotFoundError,
    RunStateError,
    SerializationError,
    UpdateFailedError,
    UpdatePendingError,
    UpdateRejectedError,
    WorkflowNotFoundError,
)
from opsloom.identity.access import (
    AccessDeniedError,
    IdentityError,
    TokenNotFoundError,
    UnknownUserError,
    UserExistsError,
)
from opsloom.model.trigger import TriggerNotFoundError
from opsloom.services.event import EventNotFoundError

log = logging.getLogger("opsloom.api")

MEDIA_TYPE = "application/problem+json"

#: HTTP status of each error class; the most specific class in an error's MRO wins. Routes
#: raise; this one table answers, so the same error means the same status everywhere.
STATUS_OF: dict[type[OpsloomError], int] = {
    RunNotFoundError: 404,
    WorkflowNotFoundError: 404,
    QueryError: 422,
    UpdateRejectedError: 422,
    UpdateFailedError: 409,
    UpdatePendingError: 504,
    EventNotFoundError: 404,
    InputError: 422,
    # Only what a request brought can fail to serialise before the answer is sent.
    SerializationError: 422,
    RunStateError: 409,
    TriggerNotFoundError: 404,
    RateLimitExceededError: 429,
    DeadLetterNotFoundError: 404,
    DeadLetterStateError: 409,
    OverloadedError: 503,
    ConnectionNotFoundError: 404,
    ConnectorNotFoundError: 404,
    ConnectorError: 502,
    IdentityError: 500,
    AccessDeniedError: 403,
    UnknownUserError: 404,
    TokenNotFoundError: 404,
    UserExistsError: 409,
    ApprovalError: 400,
    ApprovalNotFoundError: 404,
    ApprovalForbiddenError: 403,
    ApprovalConflictError: 409,
    InvalidApprovalError: 422,
    ApprovalLinkError: 410,
}
#: Titles of error families whose class docstrings speak of one case only.
TITLE_OF: dict[type[OpsloomError], str] = {ApprovalError: "Approval refused"}


class ProblemResponse(JSONResponse):
    """A JSON response with the ``application/problem+json`` media type."""

    media_type = MEDIA_TYPE


def problem_type(code: str) -> str:
    """The ``type`` URI of a problem with this opsloom ``code`` (stable, not resolvable)."""
    return f"urn:opsloom:problem:{code}"


def problem(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """Build a problem+json response."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
    }
    body.update(extra)
    return ProblemResponse(
        body, status_code=status, headers=None if headers is None else dict(headers)
    )


def status_of(exc: OpsloomError) -> int:
    """The HTTP status an opsloom error is answered with (500 when none is mapped)."""
    for cls in type(exc).__mro__:
        status = STATUS_OF.get(cls)
        if status is not None:
            return status
    return 500


def _title(exc: OpsloomError) -> str:
    for cls in type(exc).__mro__:
        if cls in TITLE_OF:
            return TITLE_OF[cls]
    # The first docstring line of the error class is a stable summary of its kind.
    doc = (type(exc).__doc__ or "").strip().splitlines()
    return doc[0].rstrip(".") if doc else type(exc).__name__


def _extra(exc: OpsloomError) -> dict[str, Any]:
    """Members a client branches on besides ``code``: the role a 403 lacked."""
    return {"role": exc.role} if isinstance(exc, AccessDeniedError) else {}


async def _opsloom_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, OpsloomError)
    status = status_of(exc)
    if status >= 500:
        log.error(
            "request failed: %s",
            exc,
            exc_info=exc,
            extra={"event": "api_error", "code": exc.code, "path": request.url.path},
        )
    headers = None
    if isinstance(exc, OverloadedError):
        # Senders (Alertmanager, webhooks, scripts) back off and try again instead of losing it.
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    return problem(
        request,
        status,
        exc.code,
        str(exc),
        title=_title(exc),
        headers=headers,
        retryable=exc.retryable,
        **_extra(exc),
    )


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    where = ", ".join(
        ".".join(str(part) for part in e["loc"]) + f": {e['msg']}" for e in errors[:5]
    )
    return problem(
        request,
        422,
        InputError.code,
        f"the request is not valid: {where}",
        title="The request is not valid",
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    try:
        code = HTTPStatus(status).name.lower()
    except ValueError:
        code = "http_error"
    return problem(request, status, code, str(exc.detail), headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> ProblemResponse:
    log.error(
        "unexpected error", exc_info=exc, extra={"event": "api_error", "path": request.url.path}
    )
    return problem(
        request,
        500,
        OpsloomError.code,
        "an unexpected error occurred; the server log has the details",
    )


async def error_response(request: Request, exc: Exception) -> ProblemResponse:
    """The answer to ``exc`` raised while serving ``request``, as the API's handlers give it.

    For code that serves a request outside FastAPI's routing (:mod:`opsloom.api.intake`).
    """
    if isinstance(exc, OpsloomError):
        return await _opsloom_error(request, exc)
    if isinstance(exc, HTTPException):
        return await _http_error(request, exc)
    return await _unexpected_error(request, exc)


def install_problem_handlers(api: FastAPI) -> None:
    """Answer every error of ``api`` with problem+json."""
    api.add_exception_handler(OpsloomError, _opsloom_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(HTTPException, _http_error)
    api.add_exception_handler(Exception, _unexpected_error)
