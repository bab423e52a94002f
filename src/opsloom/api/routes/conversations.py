"""``/api/v1/conversations``: analyse conversations, read their latest analysis.

``POST`` takes one conversation in any supported format (OpenAI messages, OTLP spans, a
Langfuse trace) or a batch (``{"conversations": [...]}``), analyses it offline and stores the
results as CloudEvents (``io.opsloom.conversation.analyzed.v1``, and ``…attention.v1`` per
attention rule), so triggers start follow-up workflows. The answer comes once the events are
stored. Posting the same conversation again stores nothing new.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from opsloom.api.auth import require
from opsloom.api.problem import problem
from opsloom.api.schema import Problem
from opsloom.app import App
from opsloom.insights.adapters import FORMATS, conversations_from
from opsloom.insights.analysis import Analysis
from opsloom.insights.conversation import Conversation, ConversationFormatError
from opsloom.services.conversation import analyze_into, latest_analysis

router = APIRouter(prefix="/conversations", tags=["conversations"])

_VIEW = [Depends(require("viewer"))]
_OPERATE = [Depends(require("operator"))]

#: Largest request body and batch accepted; bigger sets go through `opsloom insights analyze`.
MAX_BODY_BYTES = 8 << 20
MAX_BATCH = 1000


class AnalysisStored(BaseModel):
    """One analysed conversation: its attention verdict, scores and the events stored."""

    conversation_id: str
    attention: dict[str, Any]
    scores: dict[str, Any]
    events: list[str] = Field(description="Ids of the events stored now.")
    duplicates: list[str] = Field(description="Ids of events already stored before: ignored.")


class ConversationsAnalyzed(BaseModel):
    """The conversations of the request, in order."""

    results: list[AnalysisStored]


async def _app(request: Request) -> App:
    app: App = request.app.state.opsloom
    return app


def _analysis(request: Request) -> Analysis:
    # Loaded on first use: discovering plugins and loading lexicons is not free.
    analysis: Analysis | None = getattr(request.app.state, "insights", None)
    if analysis is None:
        analysis = Analysis.discover()
        request.app.state.insights = analysis
    return analysis


AppDep = Annotated[App, Depends(_app)]
AnalysisDep = Annotated[Analysis, Depends(_analysis)]


def _conversations(payload: Any, format: str) -> list[Conversation]:
    if isinstance(payload, dict) and isinstance(payload.get("conversations"), list):
        records = payload["conversations"]
        if len(records) > MAX_BATCH:
            raise ConversationFormatError(
                f"a batch holds at most {MAX_BATCH} conversations, not {len(records)}",
                where="conversations",
            )
        found: list[Conversation] = []
        for i, record in enumerate(records):
            found += conversations_from(record, format, where=f"conversations[{i}]")
        return found
    return conversations_from(payload, format, where="body")


_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "description": "One conversation: OpenAI `{messages}` (or a logged "
                            "request/response), OTLP `{resourceSpans}`, or a Langfuse trace.",
                        },
                        {
                            "type": "object",
                            "required": ["conversations"],
                            "properties": {
                                "conversations": {"type": "array", "maxItems": MAX_BATCH}
                            },
                        },
                    ]
                }
            }
        },
    }
}


@router.post(
    "",
    response_model=ConversationsAnalyzed,
    openapi_extra=_BODY,
    summary="Analyse one conversation or a batch; store the results as events",
    dependencies=_OPERATE,
    responses={
        400: {"model": Problem, "description": "Not a conversation; `where` names the part."},
        413: {"model": Problem, "description": "Body over 8 MiB."},
    },
)
async def post_conversations(
    app: AppDep,
    analysis: AnalysisDep,
    request: Request,
    format: Annotated[
        str,
        Query(
            description=f"Input format: {', '.join(FORMATS)}.",
            pattern="^(auto|openai|otel|langfuse)$",
        ),
    ] = "auto",
) -> JSONResponse:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return problem(request, 413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return problem(request, 400, "conversation_invalid", f"the body is not JSON: {exc}")
    try:
        conversations = _conversations(payload, format)
    except ConversationFormatError as exc:
        return problem(request, 400, exc.code, str(exc), where=exc.where)
    stored = await analyze_into(app, analysis, conversations)
    return JSONResponse(
        {
            "results": [
                {
                    "conversation_id": s.conversation_id,
                    "attention": s.result["attention"],
                    "scores": s.result["scores"],
                    "events": s.events,
                    "duplicates": s.duplicates,
                }
                for s in stored
            ]
        }
    )


@router.get(
    "/{conversation_id}/analysis",
    summary="The latest analysis of a conversation (versioned result)",
    dependencies=_VIEW,
    responses={404: {"model": Problem, "description": "The conversation was never analysed."}},
)
async def get_analysis(app: AppDep, request: Request, conversation_id: str) -> JSONResponse:
    result = await latest_analysis(app, conversation_id)
    if result is None:
        return problem(
            request,
            404,
            "analysis_not_found",
            f"conversation {conversation_id!r} has no stored analysis",
        )
    return JSONResponse(result)
