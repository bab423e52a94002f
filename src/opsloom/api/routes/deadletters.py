"""``/api/v1/dead-letters``: events a trigger could not turn into a run, and their replay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from opsloom.api.auth import require
from opsloom.app import App
from opsloom.services.trigger import dead_letters, replay_dead_letter

router = APIRouter(prefix="/dead-letters", tags=["triggers"])


@router.get(
    "",
    summary="Events triggers matched but could not start a run for, with the reason",
    dependencies=[Depends(require("viewer"))],
)
async def list_letters(
    request: Request,
    all: Annotated[bool, Query(description="Include replayed ones.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[dict[str, Any]]:
    app: App = request.app.state.opsloom
    return [letter.to_dict() for letter in await dead_letters(app, pending=not all, limit=limit)]


@router.post(
    "/{letter_id}/replay",
    summary="Run the trigger on the event again (after fixing the trigger)",
    dependencies=[Depends(require("operator"))],
)
async def replay(
    request: Request, letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> dict[str, Any]:
    app: App = request.app.state.opsloom
    return (await replay_dead_letter(app, letter_id)).to_dict()
