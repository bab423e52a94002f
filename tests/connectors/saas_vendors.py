"""Fakes of Linear, Langfuse, Zendesk and ServiceNow, answering as their specs or docs say.

Like :mod:`vendors`: each ``*_fake()`` returns an unstarted
:class:`~opsloom.connectors.testing.FakeVendor`. Linear's checks every GraphQL request against
Linear's published schema with graphql-core (parse, validate, coerce the variables) and answers
by *executing* the query on that schema, so an answer holds exactly the fields asked for, typed
as the schema says. Langfuse's checks every request against Langfuse's OpenAPI document.
Zendesk and ServiceNow publish no spec here: their fakes check the shape their REST
documentation gives.
"""

from __future__ import annotations

import functools
import itertools
import json
import uuid
from pathlib import Path
from typing import Any

from vendors import CONTRACTS, contract

from opsloom.connectors.testing import (
    Contract,
    FakeRequest,
    FakeResponse,
    FakeVendor,
    OpenApiContract,
)

# --- Linear (spec: linear/schema.graphql) ---------------------------------------------------


@functools.cache
def _linear_schema(path: Path) -> Any:
    from graphql import build_schema

    return build_schema(path.read_text("utf-8"))


def linear_schema() -> Any:
    """Linear's published GraphQL schema (skip without it; fail on CI)."""
    path = CONTRACTS / "linear" / "schema.graphql"
    if not path.exists():
        contract("linear/schema.graphql")  # skips, or fails on CI
    return _linear_schema(path)


class GraphQLContract(Contract):
    """A GraphQL endpoint: a JSON ``{"query", "variables", "operationName"}`` POST whose query
    parses, validates against the schema and whose variables coerce to their declared types."""

    def __init__(self, schema: Any, path: str, auth: str) -> None:
        self.schema = schema
        self.path = path
        self.auth = auth

    def check(self, request: FakeRequest) -> list[str]:
        from graphql import GraphQLError, OperationDefinitionNode, parse, validate
        from graphql.execution.values import get_variable_values

        if request.method != "POST" or request.path != self.path:
            return [f"{request.method} {request.path} is not the GraphQL endpoint {self.path}"]
        if not request.headers.get("authorization", "").startswith(self.auth):
            return ["Authorization: missing or not an API key / Bearer token"]
        if "application/json" not in request.headers.get("content-type", ""):
            return ["Content-Type: must be application/json"]
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return ["body: a JSON object with a 'query' string"]
        try:
            document = parse(body["query"])
        except GraphQLError as exc:
            return [f"query: {exc.message}"]
        problems = [f"query: {error.message}" for error in validate(self.schema, document)]
        if problems:
            return problems
        variables = body.get("variables") or {}
        for op in document.definitions:
            if isinstance(op, OperationDefinitionNode):
                coerced = get_variable_values(self.schema, op.variable_definitions or [], variables)
                if isinstance(coerced, list):
                    problems += [f"variables: {error.message}" for error in coerced]
        return problems


def _linear_answer(result: Any) -> FakeResponse:
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    return FakeResponse(200, json.loads(json.dumps(body, default=str)))


def linear_fake(*, auth: str = "lin_api_") -> FakeVendor:
    """Linear's GraphQL endpoint; issues and comments kept in memory, ids as Linear makes them.

    A client-chosen ``id`` that exists already is refused, as Linear refuses a duplicate id.
    """
    from graphql import GraphQLError, graphql_sync

    schema = linear_schema()
    issues: dict[str, dict[str, Any]] = {}
    comments: dict[str, dict[str, Any]] = {}
    numbers = itertools.count(1)

    def issue_create(info: Any, input: dict[str, Any]) -> dict[str, Any]:
        ident = input.get("id") or str(uuid.uuid4())
        if ident in issues:
            raise GraphQLError(
                "Argument Validation Error: id already exists",
                extensions={"code": "INVALID_INPUT", "userPresentableMessage": "Duplicate id"},
            )
        number = next(numbers)
        issues[ident] = {
            "id": ident,
            "identifier": f"OPS-{number}",
            "number": number,
            "title": input.get("title") or "",
            "description": input.get("description"),
            "priority": float(input.get("priority") or 0),
            "url": f"https://linear.app/acme/issue/OPS-{number}",
            "teamId": input["teamId"],
        }
        return {"success": True, "lastSyncId": 1.0, "issue": issues[ident]}

    def find_issue(ident: str) -> dict[str, Any]:
        for issue in issues.values():
            if ident in (issue["id"], issue["identifier"]):
                return issue
        raise GraphQLError("Entity not found: Issue", extensions={"code": "INVALID_INPUT"})

    def comment_create(info: Any, input: dict[str, Any]) -> dict[str, Any]:
        ident = input.get("id") or str(uuid.uuid4())
        if ident in comments:
            raise GraphQLError(
                "Argument Validation Error: id already exists",
                extensions={"code": "INVALID_INPUT"},
            )
        issue = find_issue(str(input.get("issueId")))
        comments[ident] = {
            "id": ident,
            "body": input.get("body") or "",
            "issueId": issue["id"],
            "url": f"{issue['url']}#comment-{ident[:8]}",
        }
        return {"success": True, "lastSyncId": 2.0, "comment": comments[ident]}

    def comment(info: Any, id: str | None = None, hash: str | None = None) -> dict[str, Any]:
        if id not in comments:
            raise GraphQLError("Entity not found: Comment", extensions={"code": "INVALID_INPUT"})
        return comments[id]

    root = {
        "issueCreate": issue_create,
        "commentCreate": comment_create,
        "issue": lambda info, id: find_issue(id),
        "comment": comment,
        "viewer": {"id": "u-1", "name": "Ops Bot", "email": "bot@acme.test"},
    }

    def serve(request: FakeRequest) -> FakeResponse:
        body = request.json
        result = graphql_sync(
            schema,
            body["query"],
            root_value=root,
            variable_values=body.get("variables"),
            operation_name=body.get("operationName"),
        )
        return _linear_answer(result)

    fake = FakeVendor(GraphQLContract(schema, "/graphql", auth), {("POST", "/graphql"): serve})
    fake.issues = issues  # type: ignore[attr-defined]
    fake.comments = comments  # type: ignore[attr-defined]
    return fake


def linear_rate_limited(reset_ms: int) -> FakeResponse:
    """Linear's documented answer over its request budget: a ``RATELIMITED`` GraphQL error
    and the ``X-RateLimit-Requests-*`` headers (reset in epoch milliseconds)."""
    return FakeResponse(
        429,
        {
            "errors": [
                {
                    "message": "Rate limit exceeded",
                    "extensions": {"code": "RATELIMITED", "type": "Ratelimited"},
                }
            ]
        },
        {
            "X-RateLimit-Requests-Limit": "1500",
            "X-RateLimit-Requests-Remaining": "0",
            "X-RateLimit-Requests-Reset": str(reset_ms),
        },
    )


# --- Langfuse (spec: langfuse/openapi.yml) --------------------------------------------------


@functools.cache
def _langfuse_spec(path: Path) -> dict[str, Any]:
    # PyYAML's C loader reads this 17,000-line document in half a second (the pure-Python
    # loader takes ~10 s) and yields the same data for it: no timestamps or yes/no scalars
    # that YAML 1.1 and 1.2 read differently.
    import yaml

    loaded: dict[str, Any] = yaml.load(path.read_text("utf-8"), Loader=yaml.CSafeLoader)
    return loaded


def langfuse_fake() -> FakeVendor:
    """Langfuse scores and batch ingestion, checked against Langfuse's OpenAPI document.

    Ingestion answers 207 per event, as the spec says: an event whose body has no ``id`` where
    Langfuse needs one (a score without ``traceId``/``sessionId``/``datasetRunId``) gets a 400
    entry in ``errors``; events with an id seen before are acknowledged again (deduplicated).
    """
    path = CONTRACTS / "langfuse" / "openapi.yml"
    if not path.exists():
        contract("langfuse/openapi.yml")
    spec = _langfuse_spec(path)
    scores: dict[str, dict[str, Any]] = {}
    events: dict[str, dict[str, Any]] = {}

    def score(request: FakeRequest) -> FakeResponse:
        body = request.json
        ident = body.get("id") or str(uuid.uuid4())
        scores[ident] = body  # the same id updates the score
        return FakeResponse(200, {"id": ident})

    def ingestion(request: FakeRequest) -> FakeResponse:
        successes, errors = [], []
        for event in request.json["batch"]:
            body = event["body"]
            if event["type"] == "score-create" and not (
                body.get("traceId") or body.get("sessionId") or body.get("datasetRunId")
            ):
                errors.append({"id": event["id"], "status": 400, "message": "Invalid request data"})
                continue
            events.setdefault(event["id"], event)
            successes.append({"id": event["id"], "status": 201})
        return FakeResponse(207, {"successes": successes, "errors": errors})

    def projects(request: FakeRequest) -> FakeResponse:
        project = {
            "id": "cm1",
            "name": "ops-agents",
            "organization": {"id": "org1", "name": "Acme"},
            "metadata": {},
        }
        return FakeResponse(200, {"data": [project]})

    fake = FakeVendor(
        OpenApiContract(spec, server="https://cloud.langfuse.com"),
        {
            ("POST", "/api/public/scores"): score,
            ("POST", "/api/public/ingestion"): ingestion,
            ("GET", "/api/public/projects"): projects,
        },
    )
    fake.scores = scores  # type: ignore[attr-defined]
    fake.events = events  # type: ignore[attr-defined]
    return fake


def langfuse_rate_limited(seconds: int) -> FakeResponse:
    """Langfuse Cloud's documented 429: the wait in ``Retry-After`` (seconds)."""
    return FakeResponse(429, {"message": "rate limit exceeded"}, {"Retry-After": str(seconds)})
