"""What an application can run: its registered workflows; pausing and resuming all their runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsloom.app import App
from opsloom.errors import WorkflowNotFoundError
from opsloom.model.ratelimit import RateLimit
from opsloom.store import RunFilter
from opsloom.store.pause import WorkflowPause
from opsloom.store.ratelimit import WorkflowRateLimit


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """One registered workflow version; ``latest`` is the version new runs get."""

    name: str
    version: str
    latest: bool
    timeout: float | None
    priority: int
    concurrency: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "latest": self.latest,
            "timeout": self.timeout,
            "priority": self.priority,
            "concurrency": self.concurrency,
        }


def list_workflows(app: App) -> list[WorkflowInfo]:
    """Registered workflows, by name then version."""
    registry = app.registry
    infos = [
        WorkflowInfo(
            name=spec.name,
            version=spec.version,
            latest=registry.workflow(spec.name) is spec,
            timeout=spec.timeout,
            priority=spec.priority,
            concurrency=spec.concurrency,
        )
        for spec in registry.workflows()
    ]
    return sorted(infos, key=lambda info: (info.name, info.version))


async def _known(app: App, workflow: str) -> str:
    """The name runs of ``workflow`` are stored under: a registered workflow, a deployed
    document (``namespace/name``), or a workflow with stored runs (a client process, such as
    the CLI, need not have the code)."""
    try:
        return app.registry.workflow(workflow).name
    except WorkflowNotFoundError as exc:
        if "/" in workflow:
            name, _ = await app.documents.resolve(workflow)
            return name
        if await app.store.list_runs(RunFilter(workflow=workflow, limit=1)):
            return workflow
        raise WorkflowNotFoundError(f"{exc}; and no run of it is stored") from None


async def pause_workflow(app: App, workflow: str, *, actor: str) -> list[str]:
    """Pause every open run of a workflow and queue its new runs until it is resumed; audited
    as ``workflow.pause`` with the runs paused. ``WorkflowNotFoundError`` if it is unknown."""
    name = await _known(app, workflow)
    ids = await app.pause_workflow(name, by=actor)
    await app.audit.append(actor, "workflow.pause", f"workflow:{name}", {"paused": ids})
    return ids


async def resume_workflow(app: App, workflow: str, *, actor: str) -> list[str]:
    """Resume a paused workflow and the runs paused with it, audited as ``workflow.resume``.

    Raises ``RunStateError`` when the workflow is not paused.
    """
    ids = await app.resume_workflow(workflow)
    await app.audit.append(actor, "workflow.resume", f"workflow:{workflow}", {"resumed": ids})
    return ids


async def paused_workflows(app: App) -> list[WorkflowPause]:
    """The paused workflows, by name."""
    return await app.store.workflow_pauses()


async def limit_rate(app: App, workflow: str, limit: RateLimit | None, *, actor: str) -> None:
    """Limit how many runs of a workflow start per second, per key if the limit has one (None
    lifts the limit); audited as ``workflow.rate_limit``. ``WorkflowNotFoundError`` if the
    workflow is unknown."""
    name = await _known(app, workflow)
    await app.limit_rate(name, limit)
    details = {"per_second": None} if limit is None else limit.to_dict()
    await app.audit.append(actor, "workflow.rate_limit", f"workflow:{name}", details)


async def rate_limits(app: App) -> list[WorkflowRateLimit]:
    """The workflows under a rate limit."""
    return await app.store.rate_limits()
