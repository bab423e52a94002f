"""Is this process able to do its work? The store answers and the worker runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsloom.app import App


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What a health check found.

    Attributes:
        store_reachable: a query against the store succeeded.
        schema_version: the store's schema version (when reachable).
        store_error: why the store is not reachable.
        worker_expected: the app was configured with an embedded worker.
        worker_running: the embedded worker is started.
        executing: runs this process's worker holds right now.
        claimed: runs this process's worker claimed since it started.
        concurrency: the worker's limit of runs executing at once.
        workflows: registered workflow versions.
    """

    store_reachable: bool
    schema_version: int | None
    store_error: str | None
    worker_expected: bool
    worker_running: bool
    executing: int
    claimed: int
    concurrency: int | None
    workflows: int

    @property
    def ok(self) -> bool:
        return self.store_reachable and (self.worker_running or not self.worker_expected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unavailable",
            "store": {
                "reachable": self.store_reachable,
                "schema_version": self.schema_version,
                "error": self.store_error,
            },
            "worker": {
                "running": self.worker_running,
                "executing": self.executing,
                "claimed": self.claimed,
                "concurrency": self.concurrency,
            },
            "workflows": self.workflows,
        }


async def check_health(app: App) -> HealthReport:
    """Query the store once and look at the embedded worker."""
    version: int | None = None
    error: str | None = None
    try:
        version = await app.store.schema_version()
    except Exception as exc:  # whatever the failure, a health check answers and says it
        error = f"{type(exc).__name__}: {exc}"
    worker = app.worker
    return HealthReport(
        store_reachable=error is None,
        schema_version=version,
        store_error=error,
        worker_expected=app.worker_options is not None,
        worker_running=worker is not None,
        executing=0 if worker is None else len(worker.executions),
        claimed=0 if worker is None else worker.claimed,
        concurrency=None if app.worker_options is None else app.worker_options.concurrency,
        workflows=len(app.registry.workflows()),
    )
