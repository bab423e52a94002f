"""Request bodies and the documented shapes of responses (for the OpenAPI document).

Runs are rendered by :meth:`~opsloom.model.RunRecord.to_dict`, the stable JSON shape shared with
the CLI's ``--json`` output; :class:`RunOut` documents that shape and a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from opsloom.ids import MAX_PRIORITY, MIN_PRIORITY, RUN_ID_PATTERN
from opsloom.model.cloudevent import EventReceipt


class StartRunBody(BaseModel):
    """Body of ``POST /api/v1/runs``."""

    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(min_length=1, description="Name of a registered workflow.")
    input: Any = Field(default=None, description="Input of the run (any JSON value).")
    run_id: str | None = Field(
        default=None,
        pattern=RUN_ID_PATTERN,
        description="Idempotency: starting a run with an existing id returns that run. "
        "1 to 200 printable ASCII characters without spaces (`!` to `~`).",
    )
    priority: int | None = Field(
        default=None,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description="Higher runs first; default: the workflow's priority (a 64-bit integer).",
    )
    labels: dict[str, str] | None = Field(
        default=None,
        description="Labels to find the run by (keys of 1-64 letters, digits, `_.:/-`; "
        "values up to 256 characters).",
    )


class StepOut(BaseModel):
    """One entry of a run's history."""

    seq: int
    kind: str
    name: str
    status: str
    output: Any
    error: dict[str, Any] | None
    attempts: int
    wake_at: str | None
    started_at: str | None
    completed_at: str | None


class RunOut(BaseModel):
    """A run (``RunRecord.to_dict()``); times are ISO 8601 in UTC."""

    id: str
    workflow: str
    version: str
    status: str
    input: Any
    output: Any
    error: dict[str, Any] | None
    parent_id: str | None
    priority: int
    concurrency_key: str | None
    deadline: str | None
    cancel_requested: bool
    recovered: int
    created_at: str | None
    started_at: str | None
    updated_at: str | None
    completed_at: str | None
    event_source: str | None = Field(
        description="The source of the event that started the run (a trigger's), if any."
    )
    event_id: str | None = Field(description="The id of the event that started the run.")
    traceparent: str | None = Field(
        default=None, description="The W3C trace context the run continues, if it has one."
    )
    started_by: str | None = Field(
        default=None,
        description="Who started the run: the authenticated user, `trigger:<id>` or "
        "`schedule:<id>`; child runs inherit it.",
    )
    paused: str | None = Field(
        default=None,
        description="While the run is paused: `run` (paused alone) or `workflow` (with every "
        "run of its workflow).",
    )
    paused_at: str | None = Field(default=None, description="When the run was paused.")
    reset_of: str | None = Field(
        default=None, description="The run this one was reset from (`opsloom runs reset`)."
    )
    reset_to: int | None = Field(
        default=None, description="The position from which this reset run re-executes."
    )
    quarantined_at: str | None = Field(
        default=None,
        description="When the run was quarantined for crashing its workers again and again "
        "(no worker claims it until `opsloom runs requeue`).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="The run's labels (given at start or set by the run)."
    )
    steps: list[StepOut]


class SignalAccepted(BaseModel):
    """A signal was stored for the run; a ``wait_for`` of that name receives it."""

    run_id: str
    signal: str


class QueryAnswer(BaseModel):
    """The answer of a run's query handler (the run was replayed, not changed)."""

    run_id: str
    query: str
    result: Any


class UpdateDone(BaseModel):
    """The result of a run's update handler, recorded in the run's history."""

    run_id: str
    update: str
    result: Any


class CancelAccepted(BaseModel):
    """Cancellation was requested for these runs (the run and its open children)."""

    cancelled: list[str]


class ResetRunBody(BaseModel):
    """Where a reset run re-executes from, and with which version of the workflow."""

    model_config = ConfigDict(extra="forbid")

    to_step: int = Field(
        ge=1, description="The position (`#` of the step history) to re-execute from."
    )
    version: str | None = Field(
        default=None, description="The workflow version of the new run (default: the run's)."
    )


class RateLimitBody(BaseModel):
    """A workflow's rate limit (``per_second`` null or absent: no limit)."""

    model_config = ConfigDict(extra="forbid")

    per_second: float | None = Field(
        default=None, gt=0, description="At most this many runs start per second."
    )
    burst: int = Field(default=1, ge=1, description="Runs that may start at once.")
    key: str | None = Field(
        default=None,
        description="Limit per key: a jq expression over the run input (`.service`).",
    )
    overflow: Literal["queue", "drop"] = Field(
        default="queue",
        description="Past the limit: `queue` the run until its turn, or `drop` the start "
        "(`POST /runs` answers 429, a trigger's event starts nothing).",
    )


class RateLimitOut(BaseModel):
    """A workflow under a rate limit; ``declared``: by the workflow's declaration."""

    workflow: str
    per_second: float
    burst: int
    key: str | None = None
    overflow: str = "queue"
    declared: bool = False


class WorkflowPaused(BaseModel):
    """A workflow was paused (``runs``: its runs paused now) or resumed (the runs resumed)."""

    workflow: str
    runs: list[str]


class WorkflowPauseOut(BaseModel):
    """A paused workflow: its new runs queue, paused, until it is resumed."""

    workflow: str
    paused_at: str
    paused_by: str | None


class WorkflowOut(BaseModel):
    """A registered workflow version."""

    name: str
    version: str
    latest: bool
    timeout: float | None
    priority: int
    concurrency: int | None


class StoreHealth(BaseModel):
    reachable: bool
    schema_version: int | None
    error: str | None


class WorkerHealth(BaseModel):
    running: bool
    executing: int
    claimed: int
    concurrency: int | None


class HealthOut(BaseModel):
    """``ok`` when the store answers and the worker runs; otherwise ``unavailable`` (503)."""

    status: str
    store: StoreHealth
    worker: WorkerHealth
    workflows: int


class Problem(BaseModel):
    """An RFC 9457 problem; ``code`` is opsloom's stable error code."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
    retryable: bool | None = Field(
        default=None, description="Whether trying again may help (errors raised by opsloom)."
    )
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="What is wrong with the request (validation errors)."
    )


def receipts_response(receipts: Sequence[EventReceipt]) -> Response:
    """The 202 answer of the intake routes: ids stored now (``accepted``) and repeats.

    Encoded by orjson into the bytes Starlette's ``JSONResponse`` would give (compact, UTF-8):
    intake answers thousands of these a second.
    """
    body = {
        "accepted": [r.event_id for r in receipts if r.stored],
        "duplicates": [r.event_id for r in receipts if not r.stored],
    }
    return Response(orjson.dumps(body), status_code=202, media_type="application/json")
