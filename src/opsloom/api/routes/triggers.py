"""``/api/v1/triggers``: what starts runs from events, the runs each started and its debounced
keys (triggers are declared with workflows and documents; these routes read them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from opsloom.api.auth import require
from opsloom.api.schema import Problem
from opsloom.app import App
from opsloom.model.trigger import TriggerNotFoundError
from opsloom.services.trigger import list_triggers, show_trigger

router = APIRouter(prefix="/triggers", tags=["triggers"])


@router.get(
    "",
    summary="Every trigger: its workflow, filters, dedup key, window, debounce and rate limit",
    dependencies=[Depends(require("viewer"))],
)
async def get_triggers(request: Request) -> list[dict[str, Any]]:
    app: App = request.app.state.opsloom
    return [trigger.to_dict() for trigger, _ in await list_triggers(app)]


@router.get(
    "/{trigger_id:path}",
    summary="One trigger, the runs it started (newest first) and the keys it debounces",
    description="`debounced` lists the keys waiting out the debounce: the latest event of "
    "each, how many came, and when its run starts.",
    responses={404: {"model": Problem, "description": "No such trigger."}},
    dependencies=[Depends(require("viewer"))],
)
async def get_trigger(
    request: Request,
    trigger_id: str,
    runs: Annotated[int, Query(ge=0, le=1000, description="How many of its runs.")] = 20,
) -> dict[str, Any]:
    app: App = request.app.state.opsloom
    shown = await show_trigger(app, trigger_id, runs=runs)
    if shown.trigger is None:
        raise TriggerNotFoundError(f"no trigger {trigger_id!r}")
    return {
        **shown.trigger.to_dict(),
        "runs": [r.to_dict() for r in shown.runs],
        "debounced": [d.to_dict() for d in shown.debounced],
    }
