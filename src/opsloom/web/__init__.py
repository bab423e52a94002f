"""The web UI for operators: server-rendered pages with htmx, served beside the API.

``attach_ui`` serves it from the API's application (``opsloom up`` does): the API keeps
``/api/v1``, ``/hooks`` and ``/openapi.json``; every other path is a page. Pages need a session
(see :mod:`opsloom.web.session`); every asset is served from ``static/`` (vendored copies, see
``static/vendor/VENDORED.md``), so the UI works on a host without internet access.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from opsloom.app import App
from opsloom.approvals.spec import (
    ApprovalConflictError,
    ApprovalError,
    ApprovalForbiddenError,
    ApprovalNotFoundError,
    InvalidApprovalError,
)
from opsloom.errors import (
    InputError,
    OpsloomError,
    OverloadedError,
    RunNotFoundError,
    RunStateError,
    WorkflowNotFoundError,
)
from opsloom.identity.access import IdentityError
from opsloom.settings import Settings
from opsloom.web import (
    activity,
    analytics,
    approvals,
    connections,
    detail,
    runs,
    signin,
    workflows,
)
from opsloom.web.live import Hub
from opsloom.web.page import Pages
from opsloom.web.runs import StatusCounts
from opsloom.web.session import (
    ForbiddenError,
    SessionKeeper,
    SignInRequiredError,
)

#: Scripts only from this origin; styles may be set inline (the Gantt bars' widths).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
#: Paths of the API and of webhook receivers: never answered with a page.
API_PREFIXES = ("/api/", "/hooks/")
#: HTTP status of the error pages of refused requests; the first class that matches wins.
_STATUS: dict[type[Exception], int] = {
    RunNotFoundError: 404,
    WorkflowNotFoundError: 404,
    InputError: 422,
    RunStateError: 409,
    OverloadedError: 503,
    ApprovalNotFoundError: 404,
    ApprovalForbiddenError: 403,
    ApprovalConflictError: 409,
    InvalidApprovalError: 422,
}


def static_dir() -> Path:
    return Path(str(files("opsloom.web") / "static"))


def attach_ui(api: FastAPI, app: App, settings: Settings) -> None:
    """Serve the UI from ``api`` (``opsloom.api.create_api``'s): the paths it has no route for.

    A path an API route has with another method stays the API's 405, and unknown paths under
    ``/api/`` and ``/hooks/`` stay the API's 404 (problem+json), so the UI never shadows the
    API. ``opsloom up`` does this; so can an application serving ``create_api`` itself.
    """
    ui = create_web(app, settings)
    api_default = api.router.default
    # Live pages hold their requests open: the server ends them first when it stops.
    stopping: list[Callable[[], None]] = getattr(api.state, "before_stop", [])
    stopping.append(ui.state.hub.close)
    api.state.before_stop = stopping

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not str(scope["path"]).startswith(API_PREFIXES):
            await ui(scope, receive, send)
        else:
            await api_default(scope, receive, send)

    api.router.default = default


def create_web(app: App, settings: Settings) -> FastAPI:
    """The UI's ASGI application over ``app`` (see :func:`attach_ui`)."""
    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    web.state.opsloom = app
    web.state.pages = Pages()
    web.state.counts = StatusCounts()
    web.state.hub = Hub()
    secret = settings.web_session_secret
    web.state.sessions = SessionKeeper(
        None if secret is None else secret.get_secret_value(),
        settings.web_session_hours,
        settings.api_token,
    )
    web.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @web.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    for router in (
        signin.router,
        runs.router,
        detail.router,
        approvals.router,
        workflows.router,
        activity.router,
        connections.router,
        analytics.router,
    ):
        web.include_router(router)
    web.add_exception_handler(SignInRequiredError, _sign_in_required)
    web.add_exception_handler(ForbiddenError, _forbidden)
    web.add_exception_handler(OpsloomError, _refused)
    web.add_exception_handler(ApprovalError, _refused)
    web.add_exception_handler(IdentityError, _refused)
    web.add_exception_handler(HTTPException, _http_error)
    return web


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    target = f"/signin?next={quote(request.url.path)}"
    if request.url.path.startswith("/live/"):
        # An event stream cannot follow a redirect to a page: it is told, and stops.
        return PlainTextResponse("Sign in first.", status_code=401)
    if request.headers.get("hx-request") == "true":
        return Response(status_code=401, headers={"HX-Redirect": target})
    if request.method != "GET":
        return HTMLResponse("Sign in first.", status_code=401)
    return RedirectResponse(target, status_code=303)


async def _error_page(request: Request, status: int, message: str) -> Response:
    pages: Pages = request.app.state.pages
    keeper: SessionKeeper = request.app.state.sessions
    session = await keeper.session(request)
    return pages.render(request, "error.html", session, status=status, message=message)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return await _error_page(request, 403, str(exc))


async def _refused(request: Request, exc: Exception) -> Response:
    default = 409 if isinstance(exc, ApprovalError) else 500
    status = next((s for c, s in _STATUS.items() if isinstance(exc, c)), default)
    return await _error_page(request, status, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return await _error_page(request, exc.status_code, str(exc.detail))
