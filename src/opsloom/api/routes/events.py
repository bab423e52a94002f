"""``/api/v1/events``: CloudEvents intake (HTTP binding, three modes) and stored events.

An event is answered 202 only once it is stored (and delivered to the runs waiting for it).
``GET /api/v1/events/{id}?source=…`` names one event: a CloudEvent is identified by its
source *and* id, and a source is a URI that often holds slashes, so it travels as a query
parameter.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from opsloom.api.auth import require
from opsloom.api.problem import problem
from opsloom.api.schema import Problem, receipts_response
from opsloom.app import App
from opsloom.identity.access import Principal
from opsloom.ids import new_id
from opsloom.model.cloudevent import InvalidEventError
from opsloom.services.event import EventNotFoundError, emit_events, show_event
from opsloom.services.event import list_events as list_stored
from opsloom.triggers.binding import BATCH, STRUCTURED, UnsupportedEventMediaError, events_from_http

#: Sources of the events the webhook receivers store (``/hooks/<source>``).
HOOK_SOURCE_PREFIX = "/hooks/"

router = APIRouter(prefix="/events", tags=["events"])

#: Who may use each route: reading needs ``viewer``, sending events ``operator``.
_VIEW = [Depends(require("viewer"))]
_OPERATE = [Depends(require("operator"))]
Operator = Annotated[Principal, Depends(require("operator"))]


class EventsAccepted(BaseModel):
    """Ids of the events stored by this request, and of those already stored before."""

    accepted: list[str] = Field(description="Ids of the events stored now.")
    duplicates: list[str] = Field(
        description="Ids of events already stored (same source and id): ignored."
    )


class StoredEventOut(BaseModel):
    """A stored event: its intake position, arrival time and the CloudEvent (JSON form)."""

    seq: int
    received_at: str
    event: dict[str, Any]


async def _app(request: Request) -> App:
    app: App = request.app.state.opsloom
    return app


AppDep = Annotated[App, Depends(_app)]

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["specversion", "source", "type"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "description": "Generated when missing."},
        "source": {"type": "string"},
        "type": {"type": "string"},
        "subject": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string"},
        "dataschema": {"type": "string"},
        "data": {},
        "data_base64": {"type": "string"},
    },
    "additionalProperties": {"type": ["string", "integer", "boolean"]},
}
_INTAKE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            STRUCTURED: {"schema": _EVENT_SCHEMA},
            "application/json": {"schema": _EVENT_SCHEMA},
            BATCH: {"schema": {"type": "array", "items": _EVENT_SCHEMA}},
            "*/*": {
                "schema": {},
                "description": "Binary mode: attributes in ce-* headers, the body is the data.",
            },
        },
    }
}


@router.post(
    "",
    response_model=EventsAccepted,
    status_code=202,
    summary="Send CloudEvents (structured, batched or binary mode)",
    dependencies=_OPERATE,
    description="Structured mode: `Content-Type: application/cloudevents+json` (or "
    "`application/json`) with one event. Batched mode: `application/cloudevents-batch+json` "
    "with an array; an invalid event rejects the whole batch. Binary mode: `ce-specversion`, "
    "`ce-id`, `ce-source`, `ce-type` (and other `ce-*`) headers, the body as the data. "
    "The answer comes once the events are stored; an event already stored (same source and "
    "id) is listed under `duplicates` and ignored.",
    responses={
        400: {"model": Problem, "description": "An event is invalid: `attribute` names it."},
        415: {"model": Problem, "description": "Not a CloudEvents content type."},
    },
    openapi_extra=_INTAKE_BODY,
)
async def post_events(app: AppDep, who: Operator, request: Request) -> Response:
    body = await request.body()
    try:
        events = events_from_http(request.headers, body, default_id=new_id)
    except InvalidEventError as exc:
        return problem(
            request,
            400,
            exc.code,
            str(exc),
            title="Invalid CloudEvent",
            attribute=exc.attribute,
            index=exc.index,
        )
    except UnsupportedEventMediaError as exc:
        return problem(request, 415, exc.code, str(exc))
    for index, event in enumerate(events):
        if event.source.startswith(HOOK_SOURCE_PREFIX):
            # Only the webhook receivers, which check each sender's credentials, speak for
            # a /hooks/ source: triggers may trust those events as coming from the tool.
            return problem(
                request,
                400,
                "reserved_source",
                f"event source {event.source!r} is reserved for webhook receivers "
                f"({HOOK_SOURCE_PREFIX}*); send your events under another source",
                title="Invalid CloudEvent",
                attribute="source",
                index=index if len(events) > 1 else None,
            )
    receipts = await emit_events(app, events, actor=who.user)
    return receipts_response(receipts)


@router.get(
    "",
    response_model=list[StoredEventOut],
    summary="List stored events, newest first",
    dependencies=_VIEW,
)
async def list_events(
    app: AppDep,
    type: Annotated[str | None, Query(description="Only events of this type.")] = None,
    source: Annotated[str | None, Query(description="Only events from this source.")] = None,
    subject: Annotated[str | None, Query(description="Only events about this subject.")] = None,
    before: Annotated[
        int | None,
        Query(ge=0, le=2**63 - 1, description="Only events stored before this `seq` (paging)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many events.")] = 50,
) -> JSONResponse:
    events = await list_stored(
        app, type=type, source=source, subject=subject, before=before, limit=limit
    )
    return JSONResponse([event.to_dict() for event in events])


@router.get(
    "/{event_id}",
    response_model=StoredEventOut,
    summary="One stored event, by its id and source",
    dependencies=_VIEW,
    responses={404: {"model": Problem, "description": "No such event."}},
)
async def get_event(
    app: AppDep,
    request: Request,
    event_id: str,
    source: Annotated[str, Query(min_length=1, description="The event's source.")],
) -> JSONResponse:
    try:
        stored = await show_event(app, source, event_id)
    except EventNotFoundError as exc:
        return problem(request, 404, exc.code, str(exc))
    return JSONResponse(stored.to_dict())
