"""``create_api``: the FastAPI application of one opsloom :class:`~opsloom.app.App`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Depends, FastAPI

from opsloom.api.auth import bearer_guard
from opsloom.api.problem import install_problem_handlers
from opsloom.api.routes import events, health, hooks, runs, workflows
from opsloom.app import App
from opsloom.settings import Settings, load_settings

PREFIX = "/api/v1"


def _version() -> str:
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
        settings: where ``api_token`` comes from; default: read the environment now.
    """
    settings = settings or load_settings()

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
        version=_version(),
        description="Start, inspect, signal, cancel and retry durable workflow runs.",
    )
    api.state.opsloom = app
    install_problem_handlers(api)

    # Health stays open (probes carry no token); everything else needs the token, if one is set.
    token = settings.api_token
    guarded = APIRouter(prefix=PREFIX, dependencies=[Depends(bearer_guard(token))] if token else [])
    guarded.include_router(runs.router)
    guarded.include_router(workflows.router)
    guarded.include_router(events.router)

    api.include_router(health.router)
    # Webhook sources check their own credentials, not the API token.
    api.include_router(hooks.router)
    api.include_router(guarded)
    return api
