"""Signing in and out, the home page, and the API explorer (Swagger UI from local files)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloom.web.page import Change, PagesDep, form_of, signed_in
from opsloom.web.session import SIGNIN_COOKIE, Session, SessionKeeper

router = APIRouter()


@router.get("/")
async def home(session: Annotated[Session, Depends(signed_in)]) -> RedirectResponse:
    return RedirectResponse("/runs", status_code=303)


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, pages: PagesDep) -> Response:
    keeper: SessionKeeper = request.app.state.sessions
    token = keeper.signin_csrf(request)
    response = pages.render(
        request, "signin.html", None, csrf=token, next=_next(request.query_params.get("next"))
    )
    response.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


def _next(value: str | None) -> str:
    # Only a path of this site: an open redirect would let a link send a user elsewhere.
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/runs"
    return value


@router.post("/signin")
async def signin(request: Request, pages: PagesDep) -> Response:
    keeper: SessionKeeper = request.app.state.sessions
    form = await form_of(request)
    keeper.check_signin_csrf(request, form.get("csrf"))
    token = form.get("token", "").strip()
    principal = await keeper.authenticate(request.app.state.opsloom, token) if token else None
    if principal is None:
        csrf = keeper.signin_csrf(request)
        return pages.render(
            request,
            "signin.html",
            None,
            status=401,
            csrf=csrf,
            next=_next(form.get("next")),
            error="That token is not valid (unknown, revoked or expired).",
        )
    response = RedirectResponse(_next(form.get("next")), status_code=303)
    keeper.issue(response, request, token)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    # Signing out needs the CSRF token too, so another site cannot sign a user out.
    await Change("viewer")(request, await signed_in(request))
    response = RedirectResponse("/signin", status_code=303)
    SessionKeeper.end(response)
    return response


@router.get("/docs", response_class=HTMLResponse)
async def swagger(request: Request, pages: PagesDep) -> Response:
    return pages.render(request, "docs.html", None)


#: ReDoc runs its search in a worker made from a blob: URL; nothing else widens the policy.
REDOC_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'"
)


@router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request, pages: PagesDep) -> Response:
    response = pages.render(request, "redoc.html", None)
    response.headers["Content-Security-Policy"] = REDOC_CSP
    return response
