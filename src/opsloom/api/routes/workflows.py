"""``/api/v1/workflows``: what this application can run; pausing and resuming a workflow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from opsloom.api.auth import require
from opsloom.api.body import body_doc, model_body
from opsloom.api.schema import (
    Problem,
    RateLimitBody,
    RateLimitOut,
    WorkflowOut,
    WorkflowPaused,
    WorkflowPauseOut,
)
from opsloom.app import App
from opsloom.identity.access import Principal
from opsloom.model.ratelimit import RateLimit
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


@router.get(
    "/rate-limits",
    response_model=list[RateLimitOut],
    summary="Workflows under a rate limit",
    dependencies=[Depends(require("viewer"))],
)
async def get_rate_limits(request: Request) -> list[dict[str, Any]]:
    return [limit.to_dict() for limit in await workflows.rate_limits(_app(request))]


@router.put(
    "/{workflow:path}/rate-limit",
    response_model=RateLimitBody,
    summary="Limit how many runs of a workflow start per second (null: no limit)",
    description="Shared by every process on the store: runs started faster queue and start "
    "at the rate (or, with `overflow: drop`, are refused); with a `key`, the limit holds per "
    "value of that jq expression over the run input.",
    responses={404: {"model": Problem, "description": "No such workflow."}},
    openapi_extra=body_doc(RateLimitBody.model_json_schema(), required=True),
)
async def put_rate_limit(
    request: Request,
    who: Operator,
    workflow: str,
    body: Annotated[RateLimitBody, Depends(model_body(RateLimitBody, '{"per_second": 2}'))],
) -> dict[str, Any]:
    limit = None
    if body.per_second is not None:
        limit = RateLimit(body.per_second, body.burst, body.key, body.overflow)
    await workflows.limit_rate(_app(request), workflow, limit, actor=who.user)
    return body.model_dump()


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
