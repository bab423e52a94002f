"""``/api/v1/workflows``: what this application can run; pausing and resuming a workflow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from opsloom.api.auth import require
from opsloom.api.schema import Problem, WorkflowOut, WorkflowPaused, WorkflowPauseOut
from opsloom.app import App
from opsloom.identity.access import Principal
from opsloom.services import workflow as workflows

router = APIRouter(prefix="/workflows", tags=["workflows"])

Operator = Annotated[Principal, Depends(require("operator"))]


def _app(request: Request) -> App:
    app: App = request.app.state.opsloom
    return app


@router.get(
    "",
    response_model=list[WorkflowOut],
    summary="Registered workflows",
    dependencies=[Depends(require("viewer"))],
)
async def get_workflows(request: Request) -> list[dict[str, Any]]:
    return [info.to_dict() for info in workflows.list_workflows(_app(request))]


@router.get(
    "/paused",
    response_model=list[WorkflowPauseOut],
    summary="Paused workflows",
    dependencies=[Depends(require("viewer"))],
)
async def get_paused(request: Request) -> list[dict[str, Any]]:
    return [
        {
            "workflow": pause.workflow,
            "paused_at": datetime.fromtimestamp(pause.paused_at, tz=UTC).isoformat(),
            "paused_by": pause.paused_by,
        }
        for pause in await workflows.paused_workflows(_app(request))
    ]


@router.post(
    "/{workflow:path}/pause",
    response_model=WorkflowPaused,
    summary="Pause every run of a workflow; new runs queue, paused, until it is resumed",
    description="Running steps finish, then the runs wait without holding a worker slot. "
    "`runs` lists the runs paused now (runs already paused on their own are not listed).",
    responses={404: {"model": Problem, "description": "No such workflow."}},
)
async def pause_workflow(request: Request, who: Operator, workflow: str) -> dict[str, Any]:
    ids = await workflows.pause_workflow(_app(request), workflow, actor=who.user)
    return {"workflow": workflow, "runs": ids}


@router.post(
    "/{workflow:path}/resume",
    response_model=WorkflowPaused,
    summary="Resume a paused workflow and the runs paused with it",
    description="`runs` lists the runs resumed; runs paused on their own stay paused.",
    responses={409: {"model": Problem, "description": "The workflow is not paused."}},
)
async def resume_workflow(request: Request, who: Operator, workflow: str) -> dict[str, Any]:
    ids = await workflows.resume_workflow(_app(request), workflow, actor=who.user)
    return {"workflow": workflow, "runs": ids}
