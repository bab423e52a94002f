"""Sentry: resolve or assign an issue.

Follows Sentry's published OpenAPI document: ``PUT
/api/0/organizations/{organization}/issues/{issue_id}/`` with ``status`` or ``assignedTo`` and
``Authorization: Bearer <auth token>``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint


class SentrySettings(ConnectionSettings):
    """A Sentry auth token and organization."""

    token: SecretStr
    organization: str = Field(description="Organization slug.")
    api_url: str = Field(default="https://sentry.io", description="https://de.sentry.io for EU.")


def _endpoint(settings: SentrySettings) -> Endpoint:
    return Endpoint(
        settings.api_url.rstrip("/"),
        {"Authorization": f"Bearer {settings.token.get_secret_value()}"},
    )


connector = Connector(
    "sentry", SentrySettings, title="Sentry", endpoint=_endpoint, doc=__doc__ or ""
)


class Resolve(BaseModel):
    """Change an issue's status."""

    issue_id: str
    status: Literal["resolved", "unresolved", "ignored", "resolvedInNextRelease"] = "resolved"


class Assign(BaseModel):
    """Assign an issue to a user (username or e-mail) or a team (``team:slug``)."""

    issue_id: str
    assignee: str = Field(min_length=1)


class Issue(BaseModel):
    """The issue after the change."""

    id: str
    status: str | None = None
    assigned_to: Any = None


async def _update(ctx: ActionContext[SentrySettings], issue_id: str, body: dict[str, Any]) -> Issue:
    path = f"/api/0/organizations/{ctx.settings.organization}/issues/{issue_id}/"
    answer = await ctx.client.json("PUT", path, json=body)
    return Issue(
        id=str(answer.get("id", issue_id)),
        status=answer.get("status"),
        assigned_to=answer.get("assignedTo"),
    )


@connector.action
async def resolve_issue(ctx: ActionContext[SentrySettings], data: Resolve) -> Issue:
    """Resolve (or reopen, or ignore) an issue."""
    return await _update(ctx, data.issue_id, {"status": data.status})


@connector.action
async def assign_issue(ctx: ActionContext[SentrySettings], data: Assign) -> Issue:
    """Assign an issue."""
    return await _update(ctx, data.issue_id, {"assignedTo": data.assignee})
