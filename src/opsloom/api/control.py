"""One route factory for the control actions on a named thing: pause, resume (a run, a
workflow). Each is ``POST <prefix>/{name}/<action>`` for operators; the route calls a service
with the app, the name and the acting user, and answers what ``answer`` makes of its result."""

# No ``from __future__ import annotations``: FastAPI reads the route's parameter types, and the
# path parameter's alias is only known inside the factory.
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from opsloom.api.auth import require
from opsloom.app import App
from opsloom.identity.access import Principal

T = TypeVar("T")

Operator = Annotated[Principal, Depends(require("operator"))]


def control_route(
    router: APIRouter,
    action: str,
    param: str,
    call: Callable[[App, str, str], Awaitable[T]],
    answer: Callable[[T, str, Principal], Any],
    *,
    response_model: type[Any],
    summary: str,
    description: str | None = None,
    responses: dict[int | str, dict[str, Any]],
    name: str,
) -> None:
    """Add ``POST /{<param>}/<action>`` to ``router``: ``call(app, <param>, user)``, answered
    with ``answer(result, <param>, who)`` as JSON."""

    async def route(
        request: Request, who: Operator, target: Annotated[str, Path(alias=param)]
    ) -> JSONResponse:
        app: App = request.app.state.opsloom
        return JSONResponse(answer(await call(app, target, who.user), target, who))

    router.add_api_route(
        f"/{{{param}:path}}/{action}",
        route,
        methods=["POST"],
        response_model=response_model,
        summary=summary,
        description=description,
        responses=responses,
        name=name,
    )
