"""Prometheus HTTP API: instant and range PromQL queries.

Follows Prometheus's HTTP API documentation (``GET /api/v1/query`` and ``/api/v1/query_range``,
answers ``{"status": "success", "data": {"resultType", "result"}}``; a bad query is 400 with
``errorType: bad_data``). Tested against the real ``prometheus`` program.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class PrometheusSettings(ConnectionSettings):
    """A Prometheus server (or anything speaking its query API: Thanos, Mimir, VictoriaMetrics)."""

    url: str = Field(default="http://localhost:9090")
    token: SecretStr | None = None


def _endpoint(settings: PrometheusSettings) -> Endpoint:
    headers = {}
    if settings.token is not None:
        headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
    return Endpoint(settings.url.rstrip("/"), headers)


connector = Connector(
    "prometheus", PrometheusSettings, title="Prometheus", endpoint=_endpoint, doc=__doc__ or ""
)


class Query(BaseModel):
    """A PromQL expression at one moment (default: now)."""

    query: str = Field(min_length=1)
    time: float | None = Field(default=None, description="Epoch seconds.")


class RangeQuery(BaseModel):
    """A PromQL expression over a time range."""

    query: str = Field(min_length=1)
    start: float = Field(description="Epoch seconds.")
    end: float = Field(description="Epoch seconds.")
    step: float = Field(default=15, gt=0, description="Seconds between points.")


class Result(BaseModel):
    """The query's result type (vector, matrix, scalar, string) and series."""

    result_type: str
    result: list[Any] | Any


async def _query(
    ctx: ActionContext[PrometheusSettings], path: str, params: dict[str, Any]
) -> Result:
    body = await ctx.client.json("GET", path, params=params)
    data = body["data"]
    return Result(result_type=data["resultType"], result=data["result"])


@connector.action
async def query(ctx: ActionContext[PrometheusSettings], data: Query) -> Result:
    """Evaluate a PromQL expression at one moment."""
    params: dict[str, Any] = {"query": data.query}
    if data.time is not None:
        params["time"] = data.time
    return await _query(ctx, "/api/v1/query", params)


@connector.action
async def query_range(ctx: ActionContext[PrometheusSettings], data: RangeQuery) -> Result:
    """Evaluate a PromQL expression over a time range."""
    params = {"query": data.query, "start": data.start, "end": data.end, "step": data.step}
    return await _query(ctx, "/api/v1/query_range", params)


@connector.connection_check
async def _check(ctx: ActionContext[PrometheusSettings]) -> str:
    info = await ctx.client.json("GET", "/api/v1/status/buildinfo")
    return f"Prometheus {info['data'].get('version', '?')}"
