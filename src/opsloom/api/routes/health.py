"""``GET /api/v1/health`` (and ``/healthz``): never behind the token, for probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from opsloom.api.schema import HealthOut
from opsloom.app import App
from opsloom.services.health import check_health

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
router.add_api_route("/healthz", _health, methods=["GET"], include_in_schema=False)
