"""The analytics dashboard: success rates, durations, throughput and bottlenecks over a window.

Every figure comes from :func:`opsloom.analytics.report.report` (what ``opsloom analytics`` and
``/api/v1/analytics`` show), so the page follows however the store answers those reports.
The charts are SVG drawn here; each has its figures in a table beside it for screen readers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from opsloom.analytics.report import parse_span, report
from opsloom.web.page import AppDep, PagesDep, SessionDep

router = APIRouter()

#: The windows offered, each with the width of its trend buckets.
WINDOWS = {"1h": "5m", "24h": "1h", "7d": "6h", "30d": "1d"}
#: Chart size in SVG user units.
WIDTH, HEIGHT = 600.0, 120.0


@dataclass(frozen=True, slots=True)
class Column:
    """One bar of a chart: where it stands, its height, and what it says."""

    x: float
    y: float
    width: float
    height: float
    label: str


def columns(
    values: list[float | None], labels: list[str], top: float | None = None
) -> list[Column]:
    """Bars for ``values`` scaled to ``top`` (or the largest value); a missing value draws none."""
    present = [v for v in values if v is not None]
    scale = top if top is not None else max(present, default=0.0)
    if not values:
        return []
    step = WIDTH / len(values)
    bars = []
    for index, (value, label) in enumerate(zip(values, labels, strict=True)):
        if value is None:
            continue
        height = 0.0 if scale <= 0 else HEIGHT * min(value / scale, 1.0)
        bars.append(
            Column(
                x=round(index * step + step * 0.1, 2),
                y=round(HEIGHT - height, 2),
                width=round(step * 0.8, 2),
                height=round(max(height, 1.0), 2),
                label=label,
            )
        )
    return bars


@router.get("/analytics", response_class=HTMLResponse, summary="Analytics")
async def analytics_page(
    request: Request, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    window = request.query_params.get("since", "24h")
    if window not in WINDOWS:
        window = "24h"
    span, bucket = parse_span(window), parse_span(WINDOWS[window])
    now = app.clock.now()
    summary, per_workflow, trend = await asyncio.gather(
        report(app.store, "summary", now, span, bucket),
        report(app.store, "workflows", now, span, bucket),
        report(app.store, "trends", now, span, bucket),
    )
    assert isinstance(summary, dict) and isinstance(per_workflow, list)
    assert isinstance(trend, list)
    stamps = [pages.env.filters["when"](t["start"]) for t in trend]
    rate = [None if t["success_rate"] is None else 100 * t["success_rate"] for t in trend]
    charts: dict[str, Any] = {
        "finished": columns([float(t["finished"]) for t in trend], stamps),
        "success": columns(rate, stamps, top=100.0),
        "p95": columns([t["duration_p95_s"] for t in trend], stamps),
    }
    return pages.render(
        request,
        "analytics.html",
        session,
        window=window,
        windows=list(WINDOWS),
        bucket=WINDOWS[window],
        summary=summary,
        workflows=per_workflow,
        trend=trend,
        charts=charts,
        size=(WIDTH, HEIGHT),
    )
