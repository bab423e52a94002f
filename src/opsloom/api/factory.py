"""``create_api``: the FastAPI application of one opsloom :class:`~opsloom.app.App`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

from opsloom.api.auth import authenticated
from opsloom.api.problem import install_problem_handlers
from opsloom.api.routes import approvals, connections, events, health, hooks, runs, workflows
from opsloom.api.schema import Problem
from opsloom.app import App
from opsloom.settings import Settings

PREFIX = "/api/v1"

#: Answers every route under PREFIX may give, documented once for all of them.
_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No valid bearer token."},
    403: {"model": Problem, "description": "The token's user lacks the role; `role` names it."},
}


def package_version() -> str:
    """The installed opsloom version (``0`` in a source tree that was never installed)."""
    try:
        return version("opsloom")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def create_api(app: App, settings: Settings | None = None) -> FastAPI:
    """Build the HTTP API around ``app``.

    The API's lifespan opens the App (starting its worker) and closes it, so
    ``uvicorn module:api`` works on its own. Opening is counted: an App its owner already
    opened stays open until that owner closes it too (``opsloom up`` opens the App itself and
    turns lifespan events off).

    Args:
        app: the application whose runs the API serves; open before the first request.
        settings: where ``api_token`` (the admin token for automation, see
            :mod:`opsloom.api.auth`) comes from; default: the App's.
    """
    settings = settings or app.settings

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await app.open()
        try:
            yield
        finally:
            await app.close()

    api = FastAPI(
        lifespan=lifespan,
        title="opsloom",
        version=package_version(),
        description="Start, inspect, signal, cancel and retry durable workflow runs.",
        # /docs is the web UI's (opsloom.web.attach_ui): Swagger UI from local files, no CDN.
        docs_url=None,
        redoc_url=None,
    )
    api.state.opsloom = app
    api.state.api_token = settings.api_token
    install_problem_handlers(api)

    # Health stays open (probes carry no token). Everything else needs a valid token, checked
    # here for the whole prefix, and each route requires its role (`require`).
    guarded = APIRouter(
        prefix=PREFIX, dependencies=[Depends(authenticated)], responses=_AUTH_RESPONSES
    )
    guarded.include_router(runs.router)
    guarded.include_router(workflows.router)
    guarded.include_router(events.router)
    guarded.include_router(approvals.router)
    guarded.include_router(connections.router)

    api.include_router(health.router)
    # Webhook sources, Slack's buttons and the one-time approval links check their own
    # credentials (signatures), not API tokens.
    api.include_router(hooks.router)
    api.include_router(approvals.public_router)
    api.include_router(guarded)
    return api
