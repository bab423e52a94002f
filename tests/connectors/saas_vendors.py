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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vendors import CONTRACTS, _object, contract

from opsloom.connectors.testing import (
    Contract,
    DocumentedContract,
    FakeRequest,
    FakeResponse,
    FakeVendor,
    OpenApiContract,
    Rule,
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
    ``issues`` pages a team's issues by ``updatedAt`` (``orderBy: updatedAt``, ``first`` /
    ``after``, the filter's ``team.id.eq`` and ``updatedAt.gt``); ``issueUpdate`` changes
    fields and ``updatedAt``. ``fake.edit(identifier, **fields)`` is a person editing an issue
    in Linear's app.
    """
    from graphql import GraphQLError, graphql_sync

    schema = linear_schema()
    issues: dict[str, dict[str, Any]] = {}
    comments: dict[str, dict[str, Any]] = {}
    numbers = itertools.count(1)
    last_change = [datetime.now(UTC)]

    def changed_at() -> str:
        # Linear's dates are ms-precise; every change gets a later one than the last.
        moment = max(datetime.now(UTC), last_change[0] + timedelta(milliseconds=1))
        last_change[0] = moment
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

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
            "createdAt": changed_at(),
        }
        issues[ident]["updatedAt"] = issues[ident]["createdAt"]
        return {"success": True, "lastSyncId": 1.0, "issue": issues[ident]}

    def edit(ident: str, **fields: Any) -> dict[str, Any]:
        issue = find_issue(ident)
        issue.update(fields)
        if "priority" in fields:
            issue["priority"] = float(fields["priority"])
        issue["updatedAt"] = changed_at()
        return issue

    def issue_update(info: Any, id: str, input: dict[str, Any]) -> dict[str, Any]:
        if input.get("title", "") is None:
            raise GraphQLError(
                "Argument Validation Error: title", extensions={"code": "INVALID_INPUT"}
            )
        known = {"title", "description", "priority", "stateId", "assigneeId"}
        issue = edit(id, **{k: v for k, v in input.items() if k in known})
        return {"success": True, "lastSyncId": 3.0, "issue": issue}

    def issue_page(
        info: Any,
        filter: dict[str, Any] | None = None,
        first: int | None = None,
        after: str | None = None,
        orderBy: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        where = filter or {}
        team = ((where.get("team") or {}).get("id") or {}).get("eq")
        since = (where.get("updatedAt") or {}).get("gt")
        only = (where.get("id") or {}).get("in")
        key = "updatedAt" if orderBy == "updatedAt" else "createdAt"
        found = sorted(
            (
                i
                for i in issues.values()
                if (team is None or i["teamId"] == team)
                and (since is None or i["updatedAt"] > since)
                and (only is None or i["id"] in only)
            ),
            key=lambda i: (i[key], i["id"]),
        )
        start = 0
        if after is not None:
            ids = [i["id"] for i in found]
            start = ids.index(after) + 1 if after in ids else len(found)
        size = 50 if first is None else first
        page = found[start : start + size]
        return {
            "nodes": page,
            "edges": [{"node": i, "cursor": i["id"]} for i in page],
            "pageInfo": {
                "hasNextPage": start + size < len(found),
                "hasPreviousPage": start > 0,
                "startCursor": page[0]["id"] if page else None,
                "endCursor": page[-1]["id"] if page else None,
            },
        }

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
        "issueUpdate": issue_update,
        "issues": issue_page,
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
    fake.edit = edit  # type: ignore[attr-defined]
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


def langfuse_spec() -> dict[str, Any]:
    """Langfuse's published OpenAPI document (skip without it; fail on CI)."""
    path = CONTRACTS / "langfuse" / "openapi.yml"
    if not path.exists():
        contract("langfuse/openapi.yml")
    return _langfuse_spec(path)


def langfuse_fake() -> FakeVendor:
    """Langfuse scores and batch ingestion, checked against Langfuse's OpenAPI document.

    Ingestion answers 207 per event, as the spec says: an event whose body has no ``id`` where
    Langfuse needs one (a score without ``traceId``/``sessionId``/``datasetRunId``) gets a 400
    entry in ``errors``; events with an id seen before are acknowledged again (deduplicated).
    """
    spec = langfuse_spec()
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


# --- Zendesk (documentation: Support API, Tickets) -----------------------------------------


_ZD_COMMENT = {
    **_object(public={"type": "boolean"}, body={"type": "string"}, html_body={"type": "string"}),
    "oneOf": [{"required": ["body"]}, {"required": ["html_body"]}],
}
_ZD_STATUS = {"enum": ["new", "open", "pending", "hold", "solved", "closed"]}
_ZD_AUTH = {"Authorization": r"^(Basic [A-Za-z0-9+/=]+|Bearer \S+)$"}


def zendesk_fake() -> FakeVendor:
    """Tickets created and commented on as Zendesk's Support API documentation says.

    ``Idempotency-Key`` on creation answers the first ticket again (with
    ``x-idempotency-lookup: hit``); a comment on an unknown ticket is a 404 ``RecordNotFound``.
    """
    ticket = _object(
        "comment",
        subject={"type": "string"},
        comment=_ZD_COMMENT,
        priority={"enum": ["urgent", "high", "normal", "low"]},
        type={"enum": ["problem", "incident", "question", "task"]},
        status=_ZD_STATUS,
        tags={"type": "array", "items": {"type": "string"}},
        requester=_object("email", email={"type": "string"}, name={"type": "string"}),
        group_id={"type": "integer"},
        assignee_id={"type": "integer"},
        custom_fields={"type": "array", "items": _object("id", "value", id={"type": "integer"})},
    )
    update = _object("comment", comment=_ZD_COMMENT, status=_ZD_STATUS)
    checker = DocumentedContract(
        [
            Rule("POST", "/api/v2/tickets.json", _object("ticket", ticket=ticket), _ZD_AUTH),
            Rule("PUT", "/api/v2/tickets/{id}.json", _object("ticket", ticket=update), _ZD_AUTH),
            Rule("GET", "/api/v2/users/me.json", None, _ZD_AUTH),
        ]
    )
    tickets: dict[int, dict[str, Any]] = {}
    keys: dict[str, int] = {}
    numbers = itertools.count(35436)

    def create(request: FakeRequest) -> FakeResponse:
        key = request.headers.get("idempotency-key")
        if key in keys:
            body = {"ticket": tickets[keys[key]]}
            return FakeResponse(201, body, {"x-idempotency-lookup": "hit"})
        sent = request.json["ticket"]
        number = next(numbers)
        tickets[number] = {
            "id": number,
            "url": f"https://acme.zendesk.com/api/v2/tickets/{number}.json",
            "subject": sent.get("subject"),
            "status": sent.get("status", "new"),
            "priority": sent.get("priority"),
            "tags": sent.get("tags", []),
            "comments": [sent["comment"]],
        }
        if key:
            keys[key] = number
        return FakeResponse(201, {"ticket": tickets[number], "audit": {"id": 1000 + number}})

    def comment(request: FakeRequest) -> FakeResponse:
        number = int(request.params["id"].removesuffix(".json"))
        if number not in tickets:
            body = {"error": "RecordNotFound", "description": "Not found"}
            return FakeResponse(404, body)
        sent = request.json["ticket"]
        found = tickets[number]
        found["comments"].append(sent["comment"])
        found["status"] = sent.get(
            "status", found["status"] if found["status"] != "new" else "open"
        )
        audit = {"id": 2000 + len(found["comments"]), "ticket_id": number, "events": []}
        return FakeResponse(200, {"ticket": found, "audit": audit})

    def me(request: FakeRequest) -> FakeResponse:
        user = {"id": 35436, "name": "Ops Bot", "email": "bot@acme.test", "role": "agent"}
        return FakeResponse(200, {"user": user})

    fake = FakeVendor(
        checker,
        {
            ("POST", "/api/v2/tickets.json"): create,
            ("PUT", "/api/v2/tickets/{id}"): comment,
            ("GET", "/api/v2/users/me.json"): me,
        },
    )
    fake.tickets = tickets  # type: ignore[attr-defined]
    return fake


def zendesk_rate_limited(seconds: int) -> FakeResponse:
    """Zendesk's documented 429: ``Retry-After`` in seconds."""
    return FakeResponse(429, {"error": "TooManyRequests"}, {"Retry-After": str(seconds)})


# --- ServiceNow (documentation: REST Table API) --------------------------------------------

_SN_AUTH = {"Authorization": r"^(Basic [A-Za-z0-9+/=]+|Bearer \S+)$", "Accept": "application/json"}
# Table API values are strings; the fake refuses other JSON types as a strict instance would
# store them wrongly.
_SN_RECORD = {"type": "object", "additionalProperties": {"type": "string"}}
_SN_INCIDENT_FIELDS = {
    "short_description",
    "description",
    "urgency",
    "impact",
    "caller_id",
    "assignment_group",
    "category",
    "cmdb_ci",
    "correlation_id",
    "state",
    "work_notes",
    "comments",
    "close_code",
    "close_notes",
}


def servicenow_fake() -> FakeVendor:
    """The incident table as ServiceNow's Table API documentation says: string values,
    ``result`` envelopes, ``sysparm_fields`` honoured, ``sysparm_query`` on ``field=value``
    terms joined by ``^``, and the documented ``{"error": …, "status": "failure"}`` answers.
    """
    checker = DocumentedContract(
        [
            Rule("POST", "/api/now/table/incident", _SN_RECORD, _SN_AUTH),
            Rule("PATCH", "/api/now/table/incident/{sys_id}", _SN_RECORD, _SN_AUTH),
            Rule("GET", "/api/now/table/incident", None, _SN_AUTH),
        ]
    )
    records: dict[str, dict[str, str]] = {}
    numbers = itertools.count(10001)

    def failure(status: int, message: str, detail: str) -> FakeResponse:
        body = {"error": {"message": message, "detail": detail}, "status": "failure"}
        return FakeResponse(status, body)

    def shown(request: FakeRequest, record: dict[str, str]) -> dict[str, str]:
        fields = request.query.get("sysparm_fields", [""])[0]
        return {k: v for k, v in record.items() if not fields or k in fields.split(",")}

    def unknown(body: dict[str, str]) -> FakeResponse | None:
        odd = sorted(set(body) - _SN_INCIDENT_FIELDS)
        # A real instance ignores unknown fields silently; the fake refuses them so a typo in
        # the connector cannot pass unnoticed.
        return failure(400, "Unknown fields", ", ".join(odd)) if odd else None

    def create(request: FakeRequest) -> FakeResponse:
        body = request.json
        refused = unknown(body)
        if refused is not None:
            return refused
        if not body.get("short_description"):
            return failure(400, "Operation Failed", "short_description is mandatory")
        sys_id = uuid.uuid4().hex
        urgency, impact = int(body.get("urgency", "3")), int(body.get("impact", "3"))
        records[sys_id] = {
            "sys_id": sys_id,
            "number": f"INC{next(numbers):07d}",
            "state": "1",
            "priority": str(min(5, urgency + impact - 1)),
            **{k: v for k, v in body.items() if k not in ("work_notes", "comments")},
        }
        return FakeResponse(201, {"result": shown(request, records[sys_id])})

    def update(request: FakeRequest) -> FakeResponse:
        found = records.get(request.params["sys_id"])
        if found is None:
            return failure(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        body = request.json
        refused = unknown(body)
        if refused is not None:
            return refused
        if body.get("state") in ("6", "7") and not (
            body.get("close_code") and body.get("close_notes")
        ):
            return failure(
                403, "Operation Failed", "Data Policy Exception: close_code, close_notes"
            )
        found.update({k: v for k, v in body.items() if k not in ("work_notes", "comments")})
        return FakeResponse(200, {"result": shown(request, found)})

    def query(request: FakeRequest) -> FakeResponse:
        terms = [
            t.split("=", 1) for t in request.query.get("sysparm_query", [""])[0].split("^") if t
        ]
        limit = int(request.query.get("sysparm_limit", ["10000"])[0])
        found = [r for r in records.values() if all(r.get(k) == v for k, v in terms)]
        return FakeResponse(200, {"result": [shown(request, r) for r in found[:limit]]})

    fake = FakeVendor(
        checker,
        {
            ("POST", "/api/now/table/incident"): create,
            ("PATCH", "/api/now/table/incident/{sys_id}"): update,
            ("GET", "/api/now/table/incident"): query,
        },
    )
    fake.records = records  # type: ignore[attr-defined]
    return fake


def servicenow_rate_limited(reset: int) -> FakeResponse:
    """ServiceNow's documented 429 of a rate limit rule: ``X-RateLimit-Limit``,
    ``X-RateLimit-Reset`` (epoch seconds) and the rule that applied."""
    return FakeResponse(
        429,
        {
            "error": {"message": "Rate limit exceeded", "detail": "too many requests"},
            "status": "failure",
        },
        {"X-RateLimit-Limit": "100", "X-RateLimit-Reset": str(reset), "X-RateLimit-Rule": "r1"},
    )


# --- apprise's generic targets (documentation: apprise's JSON and Form notifications) -------

_APPRISE_TYPE = {"enum": ["info", "success", "warning", "failure"]}


def apprise_target() -> FakeVendor:
    """A loopback receiver of apprise's ``json://`` and ``form://`` notifications, checking
    the payload its documentation gives: ``version``, ``title``, ``message``, ``type`` (and
    ``attachments`` in JSON). ``/hooks/down`` answers 503, as a service that is down."""
    payload = _object(
        "version",
        "title",
        "message",
        "type",
        version={"const": "1.0"},
        title={"type": "string"},
        message={"type": "string", "minLength": 1},
        type=_APPRISE_TYPE,
        attachments={"type": "array"},
    )
    checker = DocumentedContract(
        [
            Rule("POST", "/hooks/json", payload, {"X-Token": r"^\S+$"}),
            Rule(
                "POST", "/hooks/form", None, {"Content-Type": "application/x-www-form-urlencoded"}
            ),
            Rule("POST", "/hooks/down"),
        ]
    )

    def form(request: FakeRequest) -> FakeResponse:
        fields = request.form
        if set(fields) != {"version", "title", "message", "type"} or not fields["message"]:
            return FakeResponse(400, {"problem": f"form fields {sorted(fields)}"})
        return FakeResponse(204)

    return FakeVendor(
        checker,
        {
            ("POST", "/hooks/json"): lambda r: FakeResponse(200, {"ok": True}),
            ("POST", "/hooks/form"): form,
            ("POST", "/hooks/down"): lambda r: FakeResponse(503, {"error": "maintenance"}),
        },
    )
