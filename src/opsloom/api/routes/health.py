"""Probes, never behind the token: ``/healthz`` (alive), ``/readyz`` (ready, per component) and
``GET /api/v1/health`` (the store and the worker, as before)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from opsloom.api.schema import HealthOut
from opsloom.app import App
from opsloom.services.health import check_health, check_readiness

router = APIRouter(tags=["health"])


async def _health(request: Request) -> JSONResponse:
    app: App = request.app.state.opsloom
    report = await check_health(app)
    return JSONResponse(report.to_dict(), status_code=200 if report.ok else 503)


router.add_api_route(
    "/api/v1/health",
    _health,
    methods=["GET"],
    response_model=HealthOut,
    summary="Health of the store and the worker",
    responses={503: {"model": HealthOut, "description": "The store or the worker is down."}},
)


async def _alive() -> JSONResponse:
    # Liveness only says the process answers: a store outage must not get it restarted.
    return JSONResponse({"status": "alive"})


async def _ready(request: Request) -> JSONResponse:
    app: App = request.app.state.opsloom
    readiness = await check_readiness(app)
    return JSONResponse(readiness.to_dict(), status_code=200 if readiness.ok else 503)


router.add_api_route("/healthz", _alive, methods=["GET"], include_in_schema=False)
router.add_api_route("/readyz", _ready, methods=["GET"], include_in_schema=False)
