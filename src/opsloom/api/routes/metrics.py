"""``GET /metrics``: the Prometheus exposition of this process (never behind the token).

Scrapers carry no API token, like health probes. What is exposed and how several processes
add up is described in :mod:`opsloom.analytics.metrics`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from opsloom.analytics.metrics import CONTENT_TYPE, Metrics
from opsloom.app import App

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Text exposition format."}},
)
async def get_metrics(request: Request) -> Response:
    app: App = request.app.state.opsloom
    metrics: Metrics = request.app.state.metrics
    try:
        store = app.store
    except RuntimeError:  # not open yet: only this process's counters
        pass
    else:
        await metrics.refresh(store)
    return Response(metrics.render(), media_type=CONTENT_TYPE)
