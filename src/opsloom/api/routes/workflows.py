"""``GET /api/v1/workflows``: what this application can run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from opsloom.api.auth import require
from opsloom.api.schema import WorkflowOut
from opsloom.app import App
from opsloom.services.workflow import list_workflows

router = APIRouter(prefix="/workflows", tags=["workflows"])


@router.get(
    "",
    response_model=list[WorkflowOut],
    summary="Registered workflows",
    dependencies=[Depends(require("viewer"))],
)
async def get_workflows(request: Request) -> list[dict[str, Any]]:
    app: App = request.app.state.opsloom
    return [info.to_dict() for info in list_workflows(app)]
