"""GitHub REST API: issues (open, comment, close), workflow dispatch, deployment status.

Follows GitHub's published OpenAPI document for api.github.com: ``Authorization: Bearer``,
``Accept: application/vnd.github+json`` and ``X-GitHub-Api-Version: 2022-11-28``. GitHub
signals a spent rate limit with 403 (or 429) and ``x-ratelimit-remaining: 0``; the transport
turns ``x-ratelimit-reset`` (epoch seconds) into the retry delay. GitHub has no idempotency key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class GitHubSettings(ConnectionSettings):
    """A GitHub token (fine-grained or classic, or an app installation token)."""

    token: SecretStr
    api_url: str = Field(
        default="https://api.github.com", description="GitHub Enterprise: …/api/v3"
    )


def _endpoint(settings: GitHubSettings) -> Endpoint:
    return Endpoint(
        settings.api_url.rstrip("/"),
        {
            "Authorization": f"Bearer {settings.token.get_secret_value()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        },
    )


connector = Connector(
    "github", GitHubSettings, title="GitHub", endpoint=_endpoint, doc=__doc__ or ""
)


class Repo(BaseModel):
    """A repository."""

    owner: str
    repo: str

    @property
    def path(self) -> str:
        return f"/repos/{self.owner}/{self.repo}"


class CreateIssue(Repo):
    """A new issue."""

    title: str = Field(min_length=1)
    body: str | None = None
    labels: list[str] | None = None
    assignees: list[str] | None = None


class Issue(BaseModel):
    """An issue."""

    number: int
    html_url: str
    state: str


class Comment(Repo):
    """A comment on an issue or pull request."""

    number: int
    body: str = Field(min_length=1)


class CommentOut(BaseModel):
    """The comment created."""

    id: int
    html_url: str


class CloseIssue(Repo):
    """Close an issue."""

    number: int
    reason: Literal["completed", "not_planned"] = "completed"


class Dispatch(Repo):
    """Start a workflow that has a ``workflow_dispatch`` trigger."""

    workflow: str = Field(description="Workflow file name (deploy.yml) or id.")
    ref: str = Field(default="main", description="Branch or tag.")
    inputs: dict[str, Any] | None = None


class Dispatched(BaseModel):
    """The dispatch was accepted."""

    workflow: str
    ref: str


class DeploymentStatus(Repo):
    """A new status of a deployment."""

    deployment_id: int
    state: Literal["error", "failure", "inactive", "in_progress", "queued", "pending", "success"]
    description: str | None = Field(default=None, max_length=140)
    environment_url: str | None = None
    log_url: str | None = None


class StatusOut(BaseModel):
    """The status created."""

    id: int
    state: str


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


@connector.action
async def create_issue(ctx: ActionContext[GitHubSettings], data: CreateIssue) -> Issue:
    """Open an issue."""
    body = _clean(data.model_dump(include={"title", "body", "labels", "assignees"}))
    return Issue.model_validate(await ctx.client.json("POST", f"{data.path}/issues", json=body))


@connector.action
async def comment(ctx: ActionContext[GitHubSettings], data: Comment) -> CommentOut:
    """Comment on an issue or pull request."""
    answer = await ctx.client.json(
        "POST", f"{data.path}/issues/{data.number}/comments", json={"body": data.body}
    )
    return CommentOut.model_validate(answer)


@connector.action
async def close_issue(ctx: ActionContext[GitHubSettings], data: CloseIssue) -> Issue:
    """Close an issue as completed or not planned."""
    answer = await ctx.client.json(
        "PATCH",
        f"{data.path}/issues/{data.number}",
        json={"state": "closed", "state_reason": data.reason},
    )
    return Issue.model_validate(answer)


@connector.action
async def dispatch_workflow(ctx: ActionContext[GitHubSettings], data: Dispatch) -> Dispatched:
    """Start a GitHub Actions workflow run (workflow_dispatch)."""
    await ctx.client.request(
        "POST",
        f"{data.path}/actions/workflows/{data.workflow}/dispatches",
        json=_clean({"ref": data.ref, "inputs": data.inputs}),
    )
    return Dispatched(workflow=data.workflow, ref=data.ref)


@connector.action
async def deployment_status(
    ctx: ActionContext[GitHubSettings], data: DeploymentStatus
) -> StatusOut:
    """Set a deployment's status (success, failure, in_progress…)."""
    body = _clean(data.model_dump(include={"state", "description", "environment_url", "log_url"}))
    answer = await ctx.client.json(
        "POST", f"{data.path}/deployments/{data.deployment_id}/statuses", json=body
    )
    return StatusOut.model_validate(answer)


class ListDeployments(Repo):
    """Recent deployments of a repository, newest first."""

    environment: str | None = None
    per_page: int = Field(default=10, ge=1, le=100)


class Deployment(BaseModel):
    """One deployment: what was deployed where, by whom, when."""

    id: int
    sha: str
    ref: str
    environment: str
    created_at: str
    creator: str | None = None
    description: str | None = None


class Deployments(BaseModel):
    """Deployments, newest first."""

    deployments: list[Deployment]


@connector.action
async def list_deployments(
    ctx: ActionContext[GitHubSettings], data: ListDeployments
) -> Deployments:
    """List a repository's recent deployments (optionally of one environment)."""
    query = _clean({"environment": data.environment, "per_page": data.per_page})
    answer = await ctx.client.json("GET", f"{data.path}/deployments", params=query)
    found = [
        Deployment(
            id=d["id"],
            sha=d["sha"],
            ref=d["ref"],
            environment=d["environment"],
            created_at=d["created_at"],
            creator=(d.get("creator") or {}).get("login"),
            description=d.get("description"),
        )
        for d in answer or []
    ]
    return Deployments(deployments=found)


@connector.connection_check
async def _check(ctx: ActionContext[GitHubSettings]) -> str:
    me = await ctx.client.json("GET", "/user")
    return f"GitHub as {me.get('login')}"
