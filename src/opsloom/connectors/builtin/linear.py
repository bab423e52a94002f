"""Linear: create an issue, comment on an issue (GraphQL).

Follows Linear's published GraphQL schema (``shared/contracts/linear/schema.graphql``): one
endpoint, ``POST https://api.linear.app/graphql`` with ``{"query", "variables"}``; the mutations
``issueCreate(input: IssueCreateInput!): IssuePayload!`` and ``commentCreate(input:
CommentCreateInput!): CommentPayload!``; ``viewer`` for the connection check. A personal API key
goes in ``Authorization`` as is, an OAuth token as ``Bearer``.

GraphQL reports failures in the body's ``errors`` (often with HTTP 200 or 400); an error whose
``extensions.code`` is ``RATELIMITED`` (or an HTTP 429) is a rate limit, and Linear's
``X-RateLimit-Requests-Reset`` / ``X-RateLimit-Complexity-Reset`` headers (epoch milliseconds)
become the retry delay. Both inputs take a client-chosen UUID ``id``: it is derived from the
step's idempotency key, and when Linear refuses it because an earlier attempt already created
the entity, that entity is returned instead of a duplicate.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.connectors.transport import retry_delay
from opsloom.errors import ConnectorPermanentError, ConnectorRetryableError, RateLimitedError

#: Namespace of the UUIDs derived from idempotency keys (any fixed UUID would do).
_IDS = uuid.UUID("0b5c6c1e-8a53-4f0e-9a37-3a1d2f5e7c10")
_RESETS = ("x-ratelimit-requests-reset", "x-ratelimit-complexity-reset")


class LinearSettings(ConnectionSettings):
    """A Linear API key (personal) or OAuth access token."""

    api_key: SecretStr
    auth: Literal["api_key", "oauth"] = Field(
        default="api_key", description="api_key: sent as is; oauth: sent as 'Bearer <token>'."
    )
    api_url: str = "https://api.linear.app/graphql"


def _endpoint(settings: LinearSettings) -> Endpoint:
    token = settings.api_key.get_secret_value()
    value = f"Bearer {token}" if settings.auth == "oauth" else token
    parts = urlsplit(settings.api_url)
    return Endpoint(f"{parts.scheme}://{parts.netloc}", {"Authorization": value})


connector = Connector(
    "linear", LinearSettings, title="Linear", endpoint=_endpoint, doc=__doc__ or ""
)

_ISSUE_FIELDS = "id identifier title url priority"
_CREATE_ISSUE = f"""
mutation OpsloomIssueCreate($input: IssueCreateInput!) {{
  issueCreate(input: $input) {{ success issue {{ {_ISSUE_FIELDS} }} }}
}}"""
_GET_ISSUE = f"query OpsloomIssue($id: String!) {{ issue(id: $id) {{ {_ISSUE_FIELDS} }} }}"
_CREATE_COMMENT = """
mutation OpsloomCommentCreate($input: CommentCreateInput!) {
  commentCreate(input: $input) { success comment { id url issueId } }
}"""
_GET_COMMENT = "query OpsloomComment($id: String) { comment(id: $id) { id url issueId } }"
_VIEWER = "query OpsloomViewer { viewer { id name email } }"
_RECORD_FIELDS = "id identifier title description priority url updatedAt"
_LIST_ISSUES = f"""
query OpsloomIssues($filter: IssueFilter, $first: Int, $after: String) {{
  issues(filter: $filter, first: $first, after: $after, orderBy: updatedAt) {{
    nodes {{ {_RECORD_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
_UPDATE_ISSUE = f"""
mutation OpsloomIssueUpdate($id: String!, $input: IssueUpdateInput!) {{
  issueUpdate(id: $id, input: $input) {{ success issue {{ {_RECORD_FIELDS} }} }}
}}"""


class CreateIssue(BaseModel):
    """A new issue in a team."""

    team_id: str = Field(description="The team's id (UUID).")
    title: str = Field(min_length=1)
    description: str | None = Field(default=None, description="Markdown.")
    priority: int | None = Field(
        default=None, ge=0, le=4, description="0 none, 1 urgent, 2 high, 3 medium, 4 low."
    )
    label_ids: list[str] | None = None
    assignee_id: str | None = None
    state_id: str | None = None
    project_id: str | None = None


class Issue(BaseModel):
    """The issue as Linear answered."""

    id: str
    identifier: str = Field(description="Team key and number (OPS-12).")
    title: str
    url: str
    priority: float


class AddComment(BaseModel):
    """A comment on an issue."""

    issue_id: str = Field(description="The issue's id (UUID) or identifier (OPS-12).")
    body: str = Field(min_length=1, description="Markdown.")


class Comment(BaseModel):
    """The comment as Linear answered."""

    id: str
    url: str
    issue_id: str | None


class ListIssues(BaseModel):
    """One page of a team's issues changed after a moment, oldest change first."""

    team_id: str = Field(description="The team's id (UUID).")
    updated_after: str | None = Field(
        default=None, description="ISO 8601 moment: only issues updated after it."
    )
    ids: list[str] | None = Field(default=None, description="Only these issues (ids).")
    after: str | None = Field(default=None, description="The endCursor of the previous page.")
    first: int = Field(default=50, ge=1, le=250, description="Issues per page.")


class IssueRecord(BaseModel):
    """An issue with the fields a sync compares."""

    id: str
    identifier: str
    title: str
    description: str | None
    priority: float
    url: str
    updated_at: str = Field(description="When Linear last changed it (ISO 8601).")


class IssuePage(BaseModel):
    """A page of issues and where the next one starts."""

    issues: list[IssueRecord]
    has_next_page: bool
    end_cursor: str | None


class UpdateIssue(BaseModel):
    """New values of an issue's fields (fields left out are not changed)."""

    issue_id: str = Field(description="The issue's id (UUID) or identifier (OPS-12).")
    title: str | None = Field(default=None, min_length=1)
    description: str | None = None
    priority: int | None = Field(default=None, ge=0, le=4)
    state_id: str | None = None
    assignee_id: str | None = None


def _record(node: dict[str, Any]) -> IssueRecord:
    return IssueRecord.model_validate({**node, "updated_at": node["updatedAt"]})


def _uuid(key: str | None) -> str | None:
    return None if key is None else str(uuid.uuid5(_IDS, key))


async def graphql(
    ctx: ActionContext[LinearSettings], query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """The ``data`` of a GraphQL request; Linear's ``errors`` as classified connector errors."""
    path = urlsplit(ctx.settings.api_url).path or "/"
    response = await ctx.client.request(
        "POST", path, json={"query": query, "variables": variables}, ok=(400, 429)
    )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
        if response.status_code != 429:
            raise ConnectorPermanentError(
                f"Linear answered HTTP {response.status_code} without a GraphQL body",
                status=response.status_code,
            )
    errors = body.get("errors") or []
    codes = {str((e.get("extensions") or {}).get("code", "")) for e in errors}
    message = "; ".join(str(e.get("message", e)) for e in errors)[:500]
    if response.status_code == 429 or "RATELIMITED" in codes:
        delays = [
            retry_delay({"x-ratelimit-reset": response.headers[h]}, ctx.now())
            for h in _RESETS
            if h in response.headers
        ]
        known = [d for d in delays if d is not None]
        raise RateLimitedError(
            f"Linear rate limit: {message or 'too many requests'}",
            status=response.status_code,
            retry_after=max(known) if known else retry_delay(response.headers, ctx.now()),
        )
    if errors:
        kind = (
            ConnectorRetryableError if "INTERNAL_SERVER_ERROR" in codes else ConnectorPermanentError
        )
        raise kind(
            f"Linear refused: {message} ({', '.join(sorted(c for c in codes if c)) or 'no code'})"
        )
    data = body.get("data")
    if not isinstance(data, dict):
        raise ConnectorPermanentError("Linear answered without data or errors")
    return data


async def _existing(
    ctx: ActionContext[LinearSettings], query: str, ident: str, field: str
) -> dict[str, Any] | None:
    """The entity an earlier attempt created with ``ident``, if there is one."""
    try:
        found = (await graphql(ctx, query, {"id": ident})).get(field)
    except ConnectorPermanentError:
        return None
    return found if isinstance(found, dict) else None


@connector.action
async def create_issue(ctx: ActionContext[LinearSettings], data: CreateIssue) -> Issue:
    """Create an issue (a retried step returns the issue its first attempt created)."""
    ident = _uuid(ctx.idempotency_key)
    fields: dict[str, Any] = {
        "teamId": data.team_id,
        "title": data.title,
        "description": data.description,
        "priority": data.priority,
        "labelIds": data.label_ids,
        "assigneeId": data.assignee_id,
        "stateId": data.state_id,
        "projectId": data.project_id,
        "id": ident,
    }
    payload = {k: v for k, v in fields.items() if v is not None}
    try:
        created = (await graphql(ctx, _CREATE_ISSUE, {"input": payload}))["issueCreate"]
    except ConnectorPermanentError:
        earlier = ident is not None and await _existing(ctx, _GET_ISSUE, ident, "issue")
        if not earlier:
            raise
        return Issue.model_validate(earlier)
    if not created.get("success") or not created.get("issue"):
        raise ConnectorPermanentError(f"Linear did not create the issue in team {data.team_id}")
    return Issue.model_validate(created["issue"])


@connector.action
async def add_comment(ctx: ActionContext[LinearSettings], data: AddComment) -> Comment:
    """Comment on an issue (Markdown; a retried step does not comment twice)."""
    payload = {"issueId": data.issue_id, "body": data.body}
    ident = _uuid(ctx.idempotency_key)
    if ident is not None:
        payload["id"] = ident
    try:
        made = (await graphql(ctx, _CREATE_COMMENT, {"input": payload}))["commentCreate"]
    except ConnectorPermanentError:
        earlier = ident is not None and await _existing(ctx, _GET_COMMENT, ident, "comment")
        if not earlier:
            raise
        made = {"success": True, "comment": earlier}
    if not made.get("success"):
        raise ConnectorPermanentError(f"Linear did not comment on issue {data.issue_id}")
    comment = made["comment"]
    return Comment(id=comment["id"], url=comment["url"], issue_id=comment.get("issueId"))


@connector.action
async def list_issues(ctx: ActionContext[LinearSettings], data: ListIssues) -> IssuePage:
    """A page of a team's issues updated after ``updated_after``, ordered by last change;
    pass ``end_cursor`` as ``after`` for the next page."""
    where: dict[str, Any] = {"team": {"id": {"eq": data.team_id}}}
    if data.updated_after is not None:
        where["updatedAt"] = {"gt": data.updated_after}
    if data.ids is not None:
        where["id"] = {"in": data.ids}
    variables = {"filter": where, "first": data.first, "after": data.after}
    found = (await graphql(ctx, _LIST_ISSUES, variables))["issues"]
    info = found["pageInfo"]
    return IssuePage(
        issues=[_record(node) for node in found["nodes"]],
        has_next_page=bool(info["hasNextPage"]),
        end_cursor=info.get("endCursor"),
    )


@connector.action
async def update_issue(ctx: ActionContext[LinearSettings], data: UpdateIssue) -> IssueRecord:
    """Set fields of an issue (setting the same values again changes nothing but the date)."""
    names = {
        "title": "title",
        "description": "description",
        "priority": "priority",
        "state_id": "stateId",
        "assignee_id": "assigneeId",
    }
    # A field given as null is cleared (a description emptied); a field left out is kept.
    payload = {
        api: getattr(data, name) for name, api in names.items() if name in data.model_fields_set
    }
    if payload.get("title", "") is None:
        raise ConnectorPermanentError("an issue's title cannot be cleared")
    if not payload:
        raise ConnectorPermanentError("nothing to change: give at least one field")
    variables = {"id": data.issue_id, "input": payload}
    made = (await graphql(ctx, _UPDATE_ISSUE, variables))["issueUpdate"]
    if not made.get("success") or not made.get("issue"):
        raise ConnectorPermanentError(f"Linear did not update issue {data.issue_id}")
    return _record(made["issue"])


@connector.connection_check
async def _check(ctx: ActionContext[LinearSettings]) -> str:
    viewer = (await graphql(ctx, _VIEWER, {}))["viewer"]
    return f"Linear as {viewer.get('name')} <{viewer.get('email')}>"
