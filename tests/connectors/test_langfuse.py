"""Langfuse connector against a fake that checks every request against Langfuse's OpenAPI."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from saas_vendors import langfuse_fake, langfuse_rate_limited
from saas_vendors import langfuse_spec as _spec

from opsloom import App
from opsloom.connectors.builtin import langfuse
from opsloom.connectors.testing import FakeVendor
from opsloom.errors import ConnectorPermanentError, RateLimitedError

SECRET = "sk-lf-1234567890abcdef"


@pytest.fixture
def fake() -> Iterator[FakeVendor]:
    with langfuse_fake() as vendor:
        yield vendor
    assert vendor.problems == []


async def add(app: App, fake: FakeVendor) -> None:
    settings = {"public_key": "pk-lf-0001", "secret_key": SECRET, "host": fake.url}
    await app.connections.add_connection("lf", "langfuse", settings)


async def test_create_score__camel_case_body_and_basic_auth(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    data = {"name": "resolved", "value": 1, "trace_id": "t-9", "data_type": "BOOLEAN"}
    out = await ops.connections.call(langfuse.create_score, "lf", data, idempotency_key="r:1")
    sent = fake.last()
    assert sent.json == {
        "name": "resolved",
        "value": 1.0,
        "traceId": "t-9",
        "dataType": "BOOLEAN",
        "id": out["id"],
    }
    assert base64.b64decode(sent.headers["authorization"][6:]).decode() == f"pk-lf-0001:{SECRET}"
    again = await ops.connections.call(langfuse.create_score, "lf", data, idempotency_key="r:1")
    assert again == out and len(fake.scores) == 1  # type: ignore[attr-defined]


async def test_create_score__needs_a_target(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    with pytest.raises(ConnectorPermanentError, match="trace_id, session_id or dataset_run_id"):
        await ops.connections.call(langfuse.create_score, "lf", {"name": "x", "value": "good"})
    assert fake.requests == []


async def test_ingest__envelopes_get_stable_ids_and_timestamps(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    events = [
        {"type": "trace-create", "body": {"id": "t-1", "name": "restart db-1"}},
        {"type": "score-create", "body": {"name": "ok", "value": 1, "traceId": "t-1"}},
    ]
    out = await ops.connections.call(
        langfuse.ingest, "lf", {"events": events}, idempotency_key="r:2"
    )
    assert [s["status"] for s in out["successes"]] == [201, 201] and out["errors"] == []
    batch = fake.last().json["batch"]
    assert batch[0]["timestamp"].endswith("Z") and batch[0]["id"] != batch[1]["id"]
    again = await ops.connections.call(
        langfuse.ingest, "lf", {"events": events}, idempotency_key="r:2"
    )
    assert again == out and len(fake.events) == 2  # type: ignore[attr-defined]


async def test_ingest__refused_events_fail_the_step_unless_lenient(
    ops: App, fake: FakeVendor
) -> None:
    await add(ops, fake)
    events = [
        {"type": "trace-create", "body": {"id": "t-2"}},
        {"type": "score-create", "body": {"name": "orphan", "value": 0}},
    ]
    with pytest.raises(ConnectorPermanentError, match="refused 1 of 2 events"):
        await ops.connections.call(langfuse.ingest, "lf", {"events": events})
    out = await ops.connections.call(langfuse.ingest, "lf", {"events": events, "strict": False})
    assert [e["status"] for e in out["errors"]] == [400]
    with pytest.raises(ConnectorPermanentError, match=r"events\.0\.type"):
        await ops.connections.call(langfuse.ingest, "lf", {"events": [{"type": "x", "body": {}}]})


async def test_rate_limited_and_connection_check(ops: App, fake: FakeVendor) -> None:
    await add(ops, fake)
    fake.fail_next(langfuse_rate_limited(30))
    with pytest.raises(RateLimitedError) as caught:
        await ops.connections.call(
            langfuse.create_score, "lf", {"name": "x", "value": 0.5, "session_id": "s-1"}
        )
    assert caught.value.retry_after == 30
    assert SECRET not in str(caught.value)
    assert await ops.connections.test_connection("lf") == f"Langfuse at {fake.url}: ops-agents"


def test_fake__refuses_what_the_spec_refuses() -> None:
    import json

    from opsloom.connectors.testing import FakeRequest

    fake = langfuse_fake()
    headers = {"content-type": "application/json", "authorization": "Basic eDp5"}
    bad = {"batch": [{"id": "e", "type": "trace-create", "body": {}}]}  # no timestamp
    assert (
        fake.serve(
            FakeRequest("POST", "/api/public/ingestion", {}, headers, json.dumps(bad).encode())
        ).status
        == 400
    )
    no_auth = {"content-type": "application/json"}
    body = json.dumps({"name": "x", "value": 1, "traceId": "t"}).encode()
    assert fake.serve(FakeRequest("POST", "/api/public/scores", {}, no_auth, body)).status == 400
    assert any("Security" in p for p in fake.problems) and len(fake.problems) == 2


@pytest.mark.parametrize(
    ("path", "status", "schema"),
    [
        ("/api/public/scores", "200", "CreateScoreResponse"),
        ("/api/public/ingestion", "207", "IngestionResponse"),
        ("/api/public/projects", "200", "Projects"),
    ],
)
async def test_fake__answers_match_the_spec_response_schemas(
    ops: App, fake: FakeVendor, path: str, status: str, schema: str
) -> None:
    import jsonschema

    spec = _spec()
    media = spec["paths"][path]["get" if path.endswith("projects") else "post"]["responses"]
    assert media[status]["content"]["application/json"]["schema"]["$ref"].endswith(schema)
    await add(ops, fake)
    await ops.connections.call(
        langfuse.create_score, "lf", {"name": "x", "value": 1, "trace_id": "t"}
    )
    events = [
        {"type": "trace-create", "body": {"id": "t"}},
        {"type": "score-create", "body": {"name": "orphan", "value": 0}},
    ]
    await ops.connections.call(langfuse.ingest, "lf", {"events": events, "strict": False})
    await ops.connections.test_connection("lf")
    answered = fake.serve(fake.last(path))
    assert str(answered.status) == status
    checker = {"$ref": f"#/components/schemas/{schema}", "components": spec["components"]}
    jsonschema.validate(answered.body, checker)
