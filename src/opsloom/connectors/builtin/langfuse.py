"""Langfuse: record a score, send a batch of tracing events (ingestion).

Follows Langfuse's published OpenAPI document (``shared/contracts/langfuse/openapi.yml``):
``POST /api/public/scores`` (``CreateScoreRequest`` → ``{"id"}``) and ``POST
/api/public/ingestion`` (a ``batch`` of ``IngestionEvent`` envelopes → 207 with ``successes``
and ``errors`` per event, since the endpoint reports input errors per event, not as a 4xx).
Auth is Basic with the project's public key and secret key. A 429 carries ``Retry-After``.

Idempotency: a score's ``id`` and each event's envelope ``id`` (which Langfuse deduplicates
on) are derived from the step's idempotency key, so a retried step updates the same score and
sends events Langfuse already has under the same ids.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.errors import ConnectorPermanentError, ConnectorRetryableError

_IDS = uuid.UUID("5d0d7c55-2b1e-4c39-8a51-0f6a4f3c9e21")

EventType = Literal[
    "trace-create",
    "score-create",
    "span-create",
    "span-update",
    "generation-create",
    "generation-update",
    "event-create",
    "sdk-log",
    "observation-create",
    "observation-update",
]


class LangfuseSettings(ConnectionSettings):
    """A Langfuse project's API keys."""

    public_key: str = Field(description="pk-lf-…")
    secret_key: SecretStr
    host: str = Field(default="https://cloud.langfuse.com", description="Or your own instance.")


def _endpoint(settings: LangfuseSettings) -> Endpoint:
    pair = f"{settings.public_key}:{settings.secret_key.get_secret_value()}"
    credential = base64.b64encode(pair.encode()).decode()
    return Endpoint(
        settings.host.rstrip("/"), {"Authorization": f"Basic {credential}"}, redact=(credential,)
    )


connector = Connector(
    "langfuse", LangfuseSettings, title="Langfuse", endpoint=_endpoint, doc=__doc__ or ""
)


class Score(BaseModel):
    """A score on a trace, an observation, a session or a dataset run."""

    name: str = Field(min_length=1)
    value: float | str = Field(
        description="A number (numeric, boolean 0/1) or a string (categorical, text)."
    )
    trace_id: str | None = None
    observation_id: str | None = None
    session_id: str | None = None
    dataset_run_id: str | None = None
    data_type: Literal["NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT"] | None = None
    comment: str | None = None
    config_id: str | None = None
    environment: str | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _target(self) -> Score:
        if not (self.trace_id or self.session_id or self.dataset_run_id):
            raise ValueError("a score needs trace_id, session_id or dataset_run_id")
        if self.observation_id and not self.trace_id:
            raise ValueError("observation_id needs the trace_id of its trace")
        return self


class ScoreRef(BaseModel):
    """The score as Langfuse stored it."""

    id: str


class Event(BaseModel):
    """One tracing event: its type and body as Langfuse's ingestion API names them."""

    type: EventType
    body: dict[str, Any] = Field(description="TraceBody, ScoreBody, … of the type.")
    id: str | None = Field(default=None, description="Envelope id (default: from the step).")
    timestamp: str | None = Field(default=None, description="ISO 8601 (default: now).")
    metadata: dict[str, Any] | None = None


class Batch(BaseModel):
    """Events to ingest in one request."""

    events: list[Event] = Field(min_length=1, max_length=1000)
    strict: bool = Field(default=True, description="Fail the step when Langfuse refuses any event.")


class EventResult(BaseModel):
    """Langfuse's answer for one event."""

    id: str
    status: int
    message: str | None = None


class Ingested(BaseModel):
    """Which events Langfuse took, and which it refused."""

    successes: list[EventResult]
    errors: list[EventResult]


def _derived(key: str | None, part: str) -> str:
    return str(uuid.uuid4() if key is None else uuid.uuid5(_IDS, f"{key}:{part}"))


@connector.action
async def create_score(ctx: ActionContext[LangfuseSettings], data: Score) -> ScoreRef:
    """Record a score (a retried step updates the same score)."""
    names = {
        "trace_id": "traceId",
        "observation_id": "observationId",
        "session_id": "sessionId",
        "dataset_run_id": "datasetRunId",
        "data_type": "dataType",
        "config_id": "configId",
    }
    body = {names.get(k, k): v for k, v in data.model_dump(exclude_none=True).items()}
    if ctx.idempotency_key is not None:
        body["id"] = _derived(ctx.idempotency_key, "score")
    answer = await ctx.client.json("POST", "/api/public/scores", json=body)
    return ScoreRef(id=str(answer["id"]))


@connector.action
async def ingest(ctx: ActionContext[LangfuseSettings], data: Batch) -> Ingested:
    """Send tracing events (traces, spans, generations, scores) in one batch."""
    stamp = datetime.fromtimestamp(ctx.now(), UTC).isoformat(timespec="milliseconds")
    batch = []
    for index, event in enumerate(data.events):
        envelope: dict[str, Any] = {
            "id": event.id or _derived(ctx.idempotency_key, str(index)),
            "timestamp": event.timestamp or stamp.replace("+00:00", "Z"),
            "type": event.type,
            "body": event.body,
        }
        if event.metadata is not None:
            envelope["metadata"] = event.metadata
        batch.append(envelope)
    answer = await ctx.client.json("POST", "/api/public/ingestion", json={"batch": batch})
    result = Ingested.model_validate(answer)
    if data.strict and result.errors:
        refused = "; ".join(f"{e.id}: {e.status} {e.message or ''}".strip() for e in result.errors)
        # Event ids make the batch safe to send again: retry what the server failed on.
        transient = any(e.status >= 500 or e.status == 429 for e in result.errors)
        kind = ConnectorRetryableError if transient else ConnectorPermanentError
        raise kind(f"Langfuse refused {len(result.errors)} of {len(batch)} events: {refused}")
    return result


@connector.connection_check
async def _check(ctx: ActionContext[LangfuseSettings]) -> str:
    answer = await ctx.client.json("GET", "/api/public/projects")
    names = ", ".join(str(p.get("name")) for p in answer.get("data", [])) or "no project"
    return f"Langfuse at {ctx.settings.host}: {names}"
