"""``GET /api/v1/analytics/{report}``: run analytics (viewer role); see
:mod:`opsloom.analytics.report`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from opsloom.analytics.report import REPORTS, parse_span, report
from opsloom.api.auth import require
from opsloom.app import App

router = APIRouter(prefix="/analytics", tags=["analytics"])


@router.get(
    "/{name}",
    summary="Run analytics: summary, workflows, steps, trends, anomalies or recommendations",
    dependencies=[Depends(require("viewer"))],
)
async def get_report(
    request: Request,
    name: Annotated[str, Path(description=f"One of: {', '.join(REPORTS)}.", pattern="^[a-z]+$")],
    since: Annotated[str, Query(description="Window: 30m, 12h, 7d, 2w.")] = "7d",
    bucket: Annotated[str, Query(description="Trend bucket: 15m, 1h, 1d.")] = "1h",
) -> Any:
    app: App = request.app.state.opsloom
    window, width = parse_span(since, "since"), parse_span(bucket, "bucket")
    specs = app.registry.workflows()
    return await report(app.store, name, app.clock.now(), window, width, specs)
