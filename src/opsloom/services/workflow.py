"""What an application can run: its registered workflows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsloom.app import App


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
