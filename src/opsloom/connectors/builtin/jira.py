"""Jira Cloud: create an issue (description in Atlassian Document Format), comment, transition.

No spec of Jira is in our contracts; this follows Atlassian's REST API v3 documentation:
``POST /rest/api/3/issue`` (201 with ``id``, ``key``, ``self``), ``POST
/rest/api/3/issue/{key}/comment`` (201), ``GET``/``POST /rest/api/3/issue/{key}/transitions``
(a transition is named by id; this connector also finds it by name or target status). Auth is
Basic with the account e-mail and an API token. Text given for a description or comment is
turned into ADF paragraphs; an ADF document (``{"type": "doc", "version": 1, …}``) passes as is.
Jira has no idempotency key.
"""

from __future__ import annotations

import base64
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.errors import ConnectorPermanentError


class JiraSettings(ConnectionSettings):
    """A Jira Cloud site and the account that acts on it."""

    site_url: str = Field(description="https://your-site.atlassian.net")
    email: str
    api_token: SecretStr


def _endpoint(settings: JiraSettings) -> Endpoint:
    pair = f"{settings.email}:{settings.api_token.get_secret_value()}"
    credential = base64.b64encode(pair.encode()).decode()
    return Endpoint(
        settings.site_url.rstrip("/"),
        {"Authorization": f"Basic {credential}", "Accept": "application/json"},
        redact=(credential,),
    )


connector = Connector(
    "jira", JiraSettings, title="Jira Cloud", endpoint=_endpoint, doc=__doc__ or ""
)


def adf(value: str | dict[str, Any]) -> dict[str, Any]:
    """An ADF document: text becomes one paragraph per blank-line-separated block."""
    if isinstance(value, dict):
        return value
    paragraphs = [p for p in value.split("\n\n") if p.strip()] or [value]
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in paragraphs
        ],
    }


def _check_adf(value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if isinstance(value, dict) and (value.get("type") != "doc" or value.get("version") != 1):
        raise ValueError('an ADF document has "type": "doc" and "version": 1')
    return value


class CreateIssue(BaseModel):
    """A new issue."""

    project: str = Field(description="Project key (OPS).")
    summary: str = Field(max_length=255)
    issue_type: str = Field(default="Task", description="Issue type name (Incident, Bug, Task).")
    description: str | dict[str, Any] | None = Field(default=None, description="Text or ADF.")
    labels: list[str] | None = None
    priority: str | None = Field(default=None, description="Priority name (High).")
    fields: dict[str, Any] | None = Field(
        default=None, description="More fields, as Jira names them."
    )

    _adf = field_validator("description")(_check_adf)


class IssueRef(BaseModel):
    """The issue created."""

    id: str
    key: str
    self: str


class AddComment(BaseModel):
    """A comment on an issue."""

    issue: str = Field(description="Issue key (OPS-12) or id.")
    body: str | dict[str, Any] = Field(description="Text or ADF.")

    _adf = field_validator("body")(_check_adf)


class Comment(BaseModel):
    """The comment created."""

    id: str


class Transition(BaseModel):
    """Move an issue through its workflow: by transition id, name, or target status name."""

    issue: str
    transition: str = Field(description="Transition id, name (Resolve) or target status (Done).")
    comment: str | None = None


class Transitioned(BaseModel):
    """The transition taken."""

    issue: str
    transition_id: str
    status: str | None


@connector.action
async def create_issue(ctx: ActionContext[JiraSettings], data: CreateIssue) -> IssueRef:
    """Create an issue; a text description becomes ADF paragraphs."""
    fields: dict[str, Any] = {
        "project": {"key": data.project},
        "summary": data.summary,
        "issuetype": {"name": data.issue_type},
        **(data.fields or {}),
    }
    if data.description is not None:
        fields["description"] = adf(data.description)
    if data.labels:
        fields["labels"] = data.labels
    if data.priority:
        fields["priority"] = {"name": data.priority}
    body = await ctx.client.json("POST", "/rest/api/3/issue", json={"fields": fields})
    return IssueRef.model_validate(body)


@connector.action
async def add_comment(ctx: ActionContext[JiraSettings], data: AddComment) -> Comment:
    """Comment on an issue."""
    body = await ctx.client.json(
        "POST", f"/rest/api/3/issue/{data.issue}/comment", json={"body": adf(data.body)}
    )
    return Comment(id=str(body["id"]))


@connector.action
async def transition_issue(ctx: ActionContext[JiraSettings], data: Transition) -> Transitioned:
    """Transition an issue, finding the transition by id, name or target status."""
    path = f"/rest/api/3/issue/{data.issue}/transitions"
    listed = await ctx.client.json("GET", path)
    wanted = data.transition.casefold()
    for option in listed.get("transitions", []):
        names = {str(option.get("id")), str(option.get("name", "")).casefold()}
        names.add(str(option.get("to", {}).get("name", "")).casefold())
        if wanted in names:
            break
    else:
        known = ", ".join(f"{o.get('id')}={o.get('name')}" for o in listed.get("transitions", []))
        raise ConnectorPermanentError(
            f"issue {data.issue} has no transition {data.transition!r} (available: {known})"
        )
    request: dict[str, Any] = {"transition": {"id": str(option["id"])}}
    if data.comment:
        request["update"] = {"comment": [{"add": {"body": adf(data.comment)}}]}
    await ctx.client.request("POST", path, json=request)
    return Transitioned(
        issue=data.issue, transition_id=str(option["id"]), status=option.get("to", {}).get("name")
    )


@connector.connection_check
async def _check(ctx: ActionContext[JiraSettings]) -> str:
    me = await ctx.client.json("GET", "/rest/api/3/myself")
    return f"Jira as {me.get('displayName') or me.get('emailAddress')}"
