"""GitLab: open an issue, add a note, run a pipeline.

No spec of it is in our contracts; this follows GitLab's REST API v4 documentation:
``PRIVATE-TOKEN`` header; ``POST /projects/{id}/issues`` (201, ``iid``), ``POST
/projects/{id}/issues/{iid}/notes`` (201), ``POST /projects/{id}/pipeline`` with ``ref`` and
``variables`` (201). A project is named by its numeric id or its path (``group/project``,
URL-encoded here).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class GitLabSettings(ConnectionSettings):
    """A GitLab instance and an access token (personal, group or project)."""

    token: SecretStr
    api_url: str = "https://gitlab.com/api/v4"


def _endpoint(settings: GitLabSettings) -> Endpoint:
    return Endpoint(
        settings.api_url.rstrip("/"), {"PRIVATE-TOKEN": settings.token.get_secret_value()}
    )


connector = Connector(
    "gitlab", GitLabSettings, title="GitLab", endpoint=_endpoint, doc=__doc__ or ""
)


def _project(project: str) -> str:
    return quote(project, safe="")


class CreateIssue(BaseModel):
    """A new issue."""

    project: str = Field(description="Project id or path (group/project).")
    title: str = Field(min_length=1)
    description: str | None = None
    labels: list[str] | None = None


class Issue(BaseModel):
    """The issue created."""

    iid: int
    web_url: str


class AddNote(BaseModel):
    """A comment on an issue."""

    project: str
    issue_iid: int
    body: str = Field(min_length=1)


class Note(BaseModel):
    """The note created."""

    id: int


class RunPipeline(BaseModel):
    """A new pipeline on a branch or tag, with variables."""

    project: str
    ref: str = "main"
    variables: dict[str, str] | None = None


class Pipeline(BaseModel):
    """The pipeline started."""

    id: int
    status: str
    web_url: str


@connector.action
async def create_issue(ctx: ActionContext[GitLabSettings], data: CreateIssue) -> Issue:
    """Open an issue."""
    body: dict[str, Any] = {"title": data.title}
    if data.description:
        body["description"] = data.description
    if data.labels:
        body["labels"] = ",".join(data.labels)
    answer = await ctx.client.json("POST", f"/projects/{_project(data.project)}/issues", json=body)
    return Issue(iid=answer["iid"], web_url=answer["web_url"])


@connector.action
async def add_note(ctx: ActionContext[GitLabSettings], data: AddNote) -> Note:
    """Comment on an issue."""
    path = f"/projects/{_project(data.project)}/issues/{data.issue_iid}/notes"
    return Note(id=(await ctx.client.json("POST", path, json={"body": data.body}))["id"])


@connector.action
async def run_pipeline(ctx: ActionContext[GitLabSettings], data: RunPipeline) -> Pipeline:
    """Run a pipeline on a ref."""
    body: dict[str, Any] = {"ref": data.ref}
    if data.variables:
        body["variables"] = [{"key": k, "value": v} for k, v in data.variables.items()]
    answer = await ctx.client.json(
        "POST", f"/projects/{_project(data.project)}/pipeline", json=body
    )
    return Pipeline(id=answer["id"], status=answer["status"], web_url=answer["web_url"])
