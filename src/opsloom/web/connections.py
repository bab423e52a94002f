"""Connectors and connections in the browser: settings without secrets, breaker states."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloom.errors import OpsloomError
from opsloom.web.page import AppDep, OperatorChange, PagesDep, SessionDep

router = APIRouter()


@router.get("/connections", response_class=HTMLResponse, summary="Connections")
async def connections_page(
    request: Request, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    # The runtime describes a connection with its settings and the *names* of its secrets only.
    connections: list[dict[str, Any]] = await app.connections.connections()
    connectors = [
        {
            "name": c.name,
            "title": c.title,
            "version": c.version,
            "actions": sorted(a.id for a in c.actions.values()),
            "connections": [x["name"] for x in connections if x["connector"] == c.name],
        }
        for c in sorted(app.connections.registry.connectors(), key=lambda c: c.name)
    ]
    return pages.render(
        request,
        "connections.html",
        session,
        connections=connections,
        connectors=connectors,
        notice=request.query_params.get("notice", ""),
    )


@router.post("/connections/{name:path}/test", summary="Check a connection")
async def test_connection(name: str, app: AppDep, change: OperatorChange) -> Response:
    try:
        result = f"{name}: {await app.connections.test_connection(name)}"
    except OpsloomError as exc:  # a failed check is an answer, shown like one
        result = f"{name}: the check failed: {exc}"
    return RedirectResponse(f"/connections?{urlencode({'notice': result})}", status_code=303)
