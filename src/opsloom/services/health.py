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


#: Singletons the cluster needs someone to hold: expired leases are reaped, schedules fire.
SINGLETONS = ("reaper", "scheduler")
#: A singleton whose holder stopped renewing this long ago counts as not held.
SINGLETON_SLACK = 10.0
#: Due schedules older than this mean the scheduler is behind.
MAX_SCHEDULER_LAG = 60.0


@dataclass(frozen=True, slots=True)
class Component:
    """One part checked by ``/readyz``: whether it is fine, and what was seen."""

    name: str
    ok: bool
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether this process should get traffic and work, component by component."""

    components: list[Component]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.components)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ok else "not_ready",
            "components": {c.name: {"ok": c.ok, **c.detail} for c in self.components},
        }


async def check_readiness(app: App) -> Readiness:
    """Store reachable, writer serving, worker running, singletons held, scheduler on time.

    Singletons and the scheduler's lag describe the cluster sharing the store: a process that
    runs a worker is not ready while the lease reaper or the scheduler is held by nobody (any
    process may hold them), nor while due schedules wait longer than a minute.
    """
    now = app.clock.now()
    try:
        store = app.store
    except RuntimeError:
        return Readiness([Component("store", False, {"error": "the app is not open"})])
    components: list[Component] = []
    try:
        version = await store.schema_version()
        holders = {h.name: h for h in await store.singleton_holders()}
        due = await store.next_schedule_at()
    except Exception as exc:  # whatever the failure, the probe answers and says it
        error = f"{type(exc).__name__}: {exc}"
        return Readiness([Component("store", False, {"error": error})])
    components.append(Component("store", True, {"schema_version": version}))
    components.append(Component("writer", store.writer_alive, {"alive": store.writer_alive}))
    worker = app.worker
    if app.worker_options is None:
        return Readiness(components)
    components.append(
        Component(
            "worker",
            worker is not None,
            {
                "running": worker is not None,
                "executing": 0 if worker is None else len(worker.executions),
            },
        )
    )
    owner = None if worker is None else worker.owner
    for name in SINGLETONS:
        holder = holders.get(name)
        held = holder is not None and holder.expires_at + SINGLETON_SLACK > now
        components.append(
            Component(
                f"singleton:{name}",
                held,
                {
                    "held": held,
                    "here": holder is not None and holder.owner == owner,
                    "expires_in_s": None if holder is None else round(holder.expires_at - now, 3),
                },
            )
        )
    lag = 0.0 if due is None else max(0.0, now - due)
    components.append(Component("scheduler", lag <= MAX_SCHEDULER_LAG, {"lag_s": round(lag, 3)}))
    return Readiness(components)
