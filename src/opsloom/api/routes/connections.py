"""``/api/v1/connections`` and ``/api/v1/connectors``: connections, breakers, connectors.

Secrets go in (``settings`` of a create or update) and never come out: a connection shows the
names of its secret fields that are set, and its circuit breaker state. Changing connections
needs ``admin``; testing one ``operator``; reading ``viewer``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from opsloom.api.auth import require
from opsloom.app import App

router = APIRouter(tags=["connections"])

_VIEW = [Depends(require("viewer"))]
_OPERATE = [Depends(require("operator"))]
_ADMIN = [Depends(require("admin"))]


async def _app(request: Request) -> App:
    app: App = request.app.state.opsloom
    return app


AppDep = Annotated[App, Depends(_app)]


class BreakerOut(BaseModel):
    """A connection's circuit breaker."""

    state: str = Field(description="closed, open or half_open.")
    failures: int
    opened_at: str | None
    reopen_at: str | None = Field(description="When a trial call is let through (if open).")


class ConnectionOut(BaseModel):
    """A connection as shown: settings without secrets, names of the secrets set."""

    name: str
    connector: str
    settings: dict[str, Any]
    secrets: list[str] = Field(description="Secret fields that are set (values never shown).")
    created_at: str
    updated_at: str
    breaker: BreakerOut


class ConnectionIn(BaseModel):
    """A new connection."""

    name: str
    connector: str
    settings: dict[str, Any] = Field(description="Settings and secrets, as the connector names.")


class ConnectionChange(BaseModel):
    """New values for some settings or secrets of a connection (the rest are kept)."""

    settings: dict[str, Any]


class ConnectorOut(BaseModel):
    """An installed connector, its actions and the connections that use it."""

    name: str
    title: str
    version: str
    actions: list[str]
    connections: list[str]


class TestOut(BaseModel):
    """What the connection check found."""

    result: str


@router.get("/connections", response_model=list[ConnectionOut], dependencies=_VIEW)
async def list_connections(app: AppDep) -> list[dict[str, Any]]:
    """Every connection with its breaker state."""
    return await app.connections.connections()


@router.get("/connections/{name}", response_model=ConnectionOut, dependencies=_VIEW)
async def get_connection(name: str, app: AppDep) -> dict[str, Any]:
    """One connection."""
    return await app.connections.connection(name)


@router.post("/connections", response_model=ConnectionOut, status_code=201, dependencies=_ADMIN)
async def create_connection(body: ConnectionIn, app: AppDep) -> dict[str, Any]:
    """Add a connection; its secrets are encrypted before they are stored."""
    return await app.connections.add_connection(body.name, body.connector, body.settings)


@router.patch("/connections/{name}", response_model=ConnectionOut, dependencies=_ADMIN)
async def change_connection(name: str, body: ConnectionChange, app: AppDep) -> dict[str, Any]:
    """Change some settings or secrets of a connection."""
    current = await app.connections.connection(name)
    return await app.connections.add_connection(
        name, current["connector"], body.settings, replace=True
    )


@router.delete("/connections/{name}", status_code=204, dependencies=_ADMIN)
async def delete_connection(name: str, app: AppDep) -> Response:
    """Remove a connection and its breaker state."""
    from opsloom.errors import ConnectionNotFoundError

    if not await app.connections.remove_connection(name):
        raise ConnectionNotFoundError(f"no connection {name!r}")
    return Response(status_code=204)


@router.post("/connections/{name}/test", response_model=TestOut, dependencies=_OPERATE)
async def test_connection(name: str, app: AppDep) -> dict[str, str]:
    """Check the connection's credentials with the connector's cheapest authenticated call."""
    return {"result": await app.connections.test_connection(name)}


@router.get("/connectors", response_model=list[ConnectorOut], dependencies=_VIEW)
async def list_connectors(app: AppDep) -> list[dict[str, Any]]:
    """Installed connectors and their actions."""
    connections = await app.connections.connections()
    return [
        {
            "name": c.name,
            "title": c.title,
            "version": c.version,
            "actions": [a.id for a in c.actions.values()],
            "connections": [x["name"] for x in connections if x["connector"] == c.name],
        }
        for c in app.connections.registry.connectors()
    ]
