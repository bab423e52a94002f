"""``/api/v1/runs``: start, list, inspect, signal, query, update, pause, resume, cancel and
retry runs.

Every run is addressable: ids of runs started by triggers hold ``/`` and ``#``
(``doc:ops/x#…``), so a run id is the rest of the path (``/`` may stay as is) and is sent
percent-encoded (``#`` as ``%23``, ``?`` as ``%3F``). A run id that ends in ``/cancel``,
``/retry``, ``/pause``, ``/resume``, ``/reset``, ``/signals/<name>``, ``/queries/<name>`` or
``/updates/<name>`` is read with ``GET`` only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from opsloom.api.auth import require
from opsloom.api.body import body_doc, json_body, model_body, start_run_body
from opsloom.api.control import control_route
from opsloom.api.schema import (
    CancelAccepted,
    Problem,
    QueryAnswer,
    ResetRunBody,
    RunOut,
    SignalAccepted,
    StartRunBody,
    UpdateDone,
)
from opsloom.app import App
from opsloom.errors import InputError
from opsloom.identity.access import Principal
from opsloom.model import RunRecord, RunStatus
from opsloom.model.label import parse_label
from opsloom.model.run import QUARANTINED_STATUS
from opsloom.services import run as runs

router = APIRouter(prefix="/runs", tags=["runs"])

#: Who may use each route: reading needs ``viewer``, changing runs ``operator``.
_VIEW = [Depends(require("viewer"))]
_OPERATE = [Depends(require("operator"))]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such run."}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The run's status does not allow this."}
}


def run_path(run_id: str) -> str:
    """The URL path of a run, its id percent-encoded (``/`` kept, as routes take it whole)."""
    return "/api/v1/runs/" + quote(run_id, safe="/:@!$&'()*+,;=-._~")


async def _app(request: Request) -> App:
    app: App = request.app.state.opsloom
    return app


AppDep = Annotated[App, Depends(_app)]
Operator = Annotated[Principal, Depends(require("operator"))]
Viewer = Annotated[Principal, Depends(require("viewer"))]


@router.post(
    "",
    response_model=RunOut,
    status_code=201,
    summary="Start a run",
    dependencies=_OPERATE,
    description="Starts a run of a registered workflow. With the `run_id` of an existing run, "
    "returns that run with status 200 instead (idempotent start).",
    responses={
        200: {"model": RunOut, "description": "A run with this run_id already exists."},
        404: {"model": Problem, "description": "No such workflow."},
    },
    openapi_extra=body_doc(StartRunBody.model_json_schema(), required=True),
)
async def create_run(
    app: AppDep,
    who: Operator,
    body: Annotated[StartRunBody, Depends(start_run_body)],
    traceparent: Annotated[
        str | None, Header(description="A W3C trace context the run's trace continues.")
    ] = None,
) -> JSONResponse:
    run, created = await runs.start_run(
        app,
        body.workflow,
        body.input,
        run_id=body.run_id,
        priority=body.priority,
        actor=who.user,
        traceparent=traceparent,
        labels=body.labels,
    )
    if not created:
        return JSONResponse(run.to_dict(), status_code=200)
    return JSONResponse(run.to_dict(), status_code=201, headers={"Location": run_path(run.id)})


@router.get("", response_model=list[RunOut], summary="List runs, newest first", dependencies=_VIEW)
async def get_runs(
    app: AppDep,
    who: Viewer,
    status: Annotated[RunStatus | None, Query(description="Only runs with this status.")] = None,
    workflow: Annotated[str | None, Query(description="Only runs of this workflow.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many runs.")] = 50,
    label: Annotated[
        list[str] | None,
        Query(description="Only runs with this label, as `key=value` (repeat for several)."),
    ] = None,
    quarantined: Annotated[
        bool,
        Query(
            description="Only runs quarantined for crashing their workers (they stay pending "
            "until requeued); not with `status`."
        ),
    ] = False,
) -> JSONResponse:
    labels = dict(parse_label(text) for text in label or [])
    if quarantined and status is not None:
        raise InputError("choose either status or quarantined, not both")
    chosen: RunStatus | str | None = QUARANTINED_STATUS if quarantined else status
    found = await runs.list_runs(app, status=chosen, workflow=workflow, limit=limit, labels=labels)
    return JSONResponse([shown(run, who) for run in found])


@router.get(
    "/{run_id:path}",
    response_model=RunOut,
    summary="A run with its step history",
    responses=_NOT_FOUND,
    dependencies=_VIEW,
)
async def get_run(app: AppDep, who: Viewer, run_id: str) -> JSONResponse:
    return JSONResponse(shown(await runs.show_run(app, run_id), who))


def shown(run: RunRecord, who: Principal) -> dict[str, Any]:
    """A run as ``who`` may see it: tracebacks (server paths, code) only for admins."""
    out = run.to_dict()
    if who.has("admin"):
        return out
    for holder in (out, *out["steps"]):
        error = holder.get("error")
        if isinstance(error, dict):
            holder["error"] = _untraced(error)
    return out


def _untraced(error: dict[str, Any]) -> dict[str, Any]:
    """``error`` without tracebacks, its failed attempts' included."""
    kept = {k: v for k, v in error.items() if k != "traceback"}
    attempts = kept.get("attempts")
    if isinstance(attempts, list):
        kept["attempts"] = [_untraced(a) if isinstance(a, dict) else a for a in attempts]
    return kept


@router.post(
    "/{run_id:path}/signals/{name}",
    response_model=SignalAccepted,
    status_code=202,
    summary="Send a signal to a run",
    dependencies=_OPERATE,
    description="The body (any JSON value, or empty for null) is delivered to the run's "
    "`wait_for(name)`, now or when it gets there.",
    responses={**_NOT_FOUND, **_CONFLICT},
    openapi_extra=body_doc({}, required=False),
)
async def send_signal(
    app: AppDep,
    who: Operator,
    run_id: str,
    name: str,
    payload: Annotated[Any, Depends(json_body)],
) -> JSONResponse:
    await runs.signal_run(app, run_id, name, payload, actor=who.user)
    return JSONResponse({"run_id": run_id, "signal": name}, status_code=202)


_HANDLER: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "The run has no such handler, or it refused."}
}


@router.post(
    "/{run_id:path}/queries/{name}",
    response_model=QueryAnswer,
    summary="Ask a run's query handler",
    dependencies=_VIEW,
    description="The body (any JSON value, or empty for null) is given to the run's query "
    "handler `name` (`ctx.on_query`, Temporal-style `@workflow.query`). The run is replayed "
    "to its present in the server, with the signals sent so far, and is not changed.",
    responses={**_NOT_FOUND, **_HANDLER},
    openapi_extra=body_doc({}, required=False),
)
async def query_run(
    app: AppDep,
    who: Viewer,
    run_id: str,
    name: str,
    payload: Annotated[Any, Depends(json_body)],
) -> JSONResponse:
    result = await runs.query_run(app, run_id, name, payload)
    return JSONResponse({"run_id": run_id, "query": name, "result": result})


@router.post(
    "/{run_id:path}/updates/{name}",
    response_model=UpdateDone,
    summary="Send an update to a run and wait for its result",
    dependencies=_OPERATE,
    description="The body (any JSON value, or empty for null) is checked by the update's "
    "validator (refused: 422, nothing stored), then handled by the run at its next wait; "
    "the handler's result is recorded and returned. A handler that raises answers 409; a "
    "run that has not handled it within `timeout` seconds answers 504 (it stays queued).",
    responses={
        **_NOT_FOUND,
        **_HANDLER,
        409: {"model": Problem, "description": "The handler failed, or the run ended."},
        504: {"model": Problem, "description": "Not handled yet; it stays queued."},
    },
    openapi_extra=body_doc({}, required=False),
)
async def update_run(
    app: AppDep,
    who: Operator,
    run_id: str,
    name: str,
    payload: Annotated[Any, Depends(json_body)],
    timeout: Annotated[float, Query(gt=0, le=300)] = 30.0,
) -> JSONResponse:
    result = await runs.update_run(app, run_id, name, payload, actor=who.user, timeout=timeout)
    return JSONResponse({"run_id": run_id, "update": name, "result": result})


@router.post(
    "/{run_id:path}/cancel",
    response_model=CancelAccepted,
    status_code=202,
    summary="Cancel a run and its open child runs (their compensation runs)",
    dependencies=_OPERATE,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def cancel_run(app: AppDep, who: Operator, run_id: str) -> JSONResponse:
    cancelled = await runs.cancel_run(app, run_id, actor=who.user)
    return JSONResponse({"cancelled": cancelled}, status_code=202)


@router.post(
    "/{run_id:path}/retry",
    response_model=RunOut,
    summary="Re-queue a failed or timed-out run (completed steps do not run again)",
    dependencies=_OPERATE,
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def retry_run(app: AppDep, who: Operator, run_id: str) -> JSONResponse:
    return JSONResponse(shown(await runs.retry_run(app, run_id, actor=who.user), who))


def _acting(
    service: Callable[..., Awaitable[RunRecord]],
) -> Callable[[App, str, str], Awaitable[RunRecord]]:
    return lambda app, run_id, user: service(app, run_id, actor=user)


#: Control actions on one run: ``POST /runs/{run_id}/<action>``, answering the run.
_RUN_ACTIONS = (
    (
        "pause",
        runs.pause_run,
        "Pause a run: its running step finishes, then it waits (no worker slot) for resume",
        "Timers that fire while the run is paused, and signals sent to it, wait for it to be "
        "resumed. Pausing a paused run changes nothing.",
    ),
    ("resume", runs.resume_run, "Resume a paused run", None),
    (
        "requeue",
        runs.requeue_run,
        "Release a quarantined run: workers claim it again, with a fresh crash budget",
        "A run whose worker vanished while executing it too many times "
        "(`OPSLOOM_QUARANTINE_AFTER`) is quarantined instead of being claimed again; requeue "
        "it once the cause is fixed.",
    ),
)
for _action, _service, _summary, _description in _RUN_ACTIONS:
    control_route(
        router,
        _action,
        "run_id",
        _acting(_service),
        lambda run, _, who: shown(run, who),
        response_model=RunOut,
        summary=_summary,
        description=_description,
        responses={**_NOT_FOUND, **_CONFLICT},
        name=f"{_action}_run",
    )


@router.post(
    "/{run_id:path}/reset",
    response_model=RunOut,
    status_code=201,
    summary="Start a new run from a finished run's history before a step, and run on from there",
    dependencies=_OPERATE,
    description="The new run reuses the recorded results before `to_step` (their side effects "
    "are not repeated) and re-executes from there with the code deployed now; its `reset_of` "
    "names the run it comes from.",
    responses={**_NOT_FOUND, **_CONFLICT},
    openapi_extra=body_doc(ResetRunBody.model_json_schema(), required=True),
)
async def reset_run(
    app: AppDep,
    who: Operator,
    run_id: str,
    body: Annotated[ResetRunBody, Depends(model_body(ResetRunBody, '{"to_step": 3}'))],
) -> JSONResponse:
    new = await runs.reset_run(app, run_id, body.to_step, actor=who.user, version=body.version)
    return JSONResponse(shown(new, who), status_code=201, headers={"Location": run_path(new.id)})
