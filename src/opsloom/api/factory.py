"""``create_api``: the FastAPI application of one opsloom :class:`~opsloom.app.App`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.types import Receive, Scope, Send

from opsloom.analytics.metrics import Metrics, metrics_of
from opsloom.api.auth import authenticated
from opsloom.api.header import SecurityHeaders
from opsloom.api.intake import IntakePath
from opsloom.api.limit import BodyLimit
from opsloom.api.problem import install_problem_handlers
from opsloom.api.routes import (
    analytics,
    approvals,
    connections,
    conversations,
    deadletters,
    events,
    health,
    hooks,
    metrics,
    runs,
    triggers,
    workflows,
)
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


class Api(FastAPI):
    """The FastAPI application of an App, with the intake's short path in front of its stack.

    ``intake``: the :class:`~opsloom.api.intake.IntakePath` asked first about every request
    (``None``: every request goes through FastAPI, as the routes' own tests want). Middleware
    an application adds to this API does not see intake POSTs while it is set.
    """

    intake: IntakePath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handle = None if self.intake is None else self.intake.route(scope)
        if handle is None:
            await super().__call__(scope, receive, send)
            return
        assert self.intake is not None
        scope["app"] = self  # as Starlette sets it: the handlers read ``request.app.state``
        await self.intake.serve(handle, scope, receive, send)


def create_api(app: App, settings: Settings | None = None) -> Api:
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

    api = Api(
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
    api.state.metrics = attach_metrics(app)
    install_problem_handlers(api)
    # In front of everything: webhooks and CloudEvents skip FastAPI's stack; the short path
    # applies the same body limit and security headers itself.
    api.intake = IntakePath(settings.max_body_bytes)
    # Before routing, authentication and parsing: no route reads more than the limit.
    api.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    api.add_middleware(SecurityHeaders)

    # Health stays open (probes carry no token). Everything else needs a valid token, checked
    # here for the whole prefix, and each route requires its role (`require`).
    guarded = APIRouter(
        prefix=PREFIX, dependencies=[Depends(authenticated)], responses=_AUTH_RESPONSES
    )
    guarded.include_router(runs.router)
    guarded.include_router(workflows.router)
    guarded.include_router(events.router)
    guarded.include_router(approvals.router)
    guarded.include_router(analytics.router)
    guarded.include_router(deadletters.router)
    guarded.include_router(triggers.router)
    guarded.include_router(connections.router)
    guarded.include_router(conversations.router)

    api.include_router(health.router)
    api.include_router(metrics.router)
    # Webhook sources, Slack's buttons and the one-time approval links check their own
    # credentials (signatures), not API tokens.
    api.include_router(hooks.router)
    api.include_router(approvals.public_router)
    api.include_router(guarded)
    return api


def attach_metrics(app: App) -> Metrics:
    """The app's :class:`Metrics`, attached to it as an observer on first use."""
    found = metrics_of(app.observer.observers)
    if found is None:
        found = Metrics()
        app.observe(found)
    return found


def create_probe_api(app: App) -> FastAPI:
    """Only ``/metrics``, ``/healthz`` and ``/readyz``: what a worker process serves."""
    api = FastAPI(title="opsloom worker", version=package_version(), openapi_url=None)
    api.state.opsloom = app
    api.state.metrics = attach_metrics(app)
    api.include_router(health.router)
    api.include_router(metrics.router)
    return api
