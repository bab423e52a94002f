"""Rendering pages: the Jinja environment, its filters, and what every route needs per request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import orjson
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from opsloom.app import App
from opsloom.web.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    Session,
    SessionKeeper,
    SignInRequiredError,
    check_csrf,
    check_role,
)


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def duration(seconds: float | None) -> str:
    """``1.2 s``, ``3 m 04 s``, ``2 h 05 m``: short enough for a table cell."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def pretty(value: Any) -> str:
    """Indented JSON with sorted keys, for people to read."""
    # orjson: the standard encoder is pure Python once indenting, 5x slower on long histories.
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(value, default=str, option=options).decode()


def run_url(run_id: str) -> str:
    """The path of a run's page; an id with ``/`` keeps it (the route takes a path)."""
    return "/runs/" + quote(run_id, safe="/")


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("opsloom.web", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["iso"] = _iso
    env.filters["duration"] = duration
    env.filters["pretty"] = pretty
    env.filters["runurl"] = run_url
    return env


class Pages:
    """Renders templates with what every page shows (the user, their roles, the CSRF token)."""

    def __init__(self) -> None:
        self.env = environment()

    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        *,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(
            request=request, session=session, path=request.url.path, **context
        )
        return HTMLResponse(html, status_code=status)

    def fragment(self, template: str, **context: Any) -> str:
        """A part of a page that is the same for every viewer (what live updates send)."""
        return self.env.get_template(template).render(session=None, **context)


def opsloom_app(request: Request) -> App:
    app: App = request.app.state.opsloom
    return app


def pages(request: Request) -> Pages:
    found: Pages = request.app.state.pages
    return found


async def signed_in(request: Request) -> Session:
    """The request's session; signing in is required for every page but the sign-in page."""
    keeper: SessionKeeper = request.app.state.sessions
    session = await keeper.session(request)
    if session is None:
        raise SignInRequiredError()
    return session


async def form_of(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST (the last value of each field)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}


class Change:
    """A dependency for POST routes: signed in, the CSRF token checked, and holding ``role``.

    It gives the route the session and the submitted form. The CSRF token comes from the form's
    field or, for htmx requests, from the header that the page sets on every request.
    """

    def __init__(self, role: str) -> None:
        self.role = role

    async def __call__(
        self, request: Request, session: Annotated[Session, Depends(signed_in)]
    ) -> tuple[Session, dict[str, str]]:
        form = await form_of(request)
        check_csrf(session, form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER))
        check_role(session, self.role)
        return session, form


AppDep = Annotated[App, Depends(opsloom_app)]
PagesDep = Annotated[Pages, Depends(pages)]
SessionDep = Annotated[Session, Depends(signed_in)]
OperatorChange = Annotated[tuple[Session, dict[str, str]], Depends(Change("operator"))]
ApproverChange = Annotated[tuple[Session, dict[str, str]], Depends(Change("approver"))]
ViewerChange = Annotated[tuple[Session, dict[str, str]], Depends(Change("viewer"))]
