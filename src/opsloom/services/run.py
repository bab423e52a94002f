"""Runs on behalf of the API and the CLI: start, list, show, signal, query, update, pause,
cancel and retry.

Each change says who asked (``actor``: the API token's user, ``cli:<login>`` …) and is written
to the audit log, so the log answers who started, signalled, cancelled or retried a run, not
only who approved what. Reads go through here too, so that no face reaches into the store.
"""

from __future__ import annotations

from typing import Any

from opsloom.app import App
from opsloom.errors import WorkflowNotFoundError
from opsloom.model import RunRecord, RunStatus


async def start_run(
    app: App,
    workflow: str,
    input: Any = None,
    *,
    run_id: str | None = None,
    priority: int | None = None,
    actor: str | None = None,
    traceparent: str | None = None,
    labels: dict[str, str] | None = None,
) -> tuple[RunRecord, bool]:
    """Start a run (or find the existing one with ``run_id``); return it and whether it is new.

    A workflow named ``namespace/name[:version]`` that is not registered yet is looked up among
    the deployed documents. A new run started by an ``actor`` is audited as ``run.start``, and
    the actor is recorded on the run as the one who started it (``started_by``).
    ``traceparent``: a W3C trace context the run's trace continues.

    Raises:
        WorkflowNotFoundError: no such workflow or deployed document.
        InputError: the input cannot be stored or ``run_id`` is not acceptable.
    """
    try:
        handle = await app.start(
            workflow,
            input,
            run_id=run_id,
            priority=priority,
            traceparent=traceparent,
            started_by=actor,
            labels=labels,
        )
    except WorkflowNotFoundError:
        if "/" not in workflow:
            raise
        # A document deployed by another process since this one last looked: load it now
        # rather than answer "not found" until the next reload.
        name, version = await app.documents.resolve(workflow)
        handle = await app.start(
            name,
            input,
            run_id=run_id,
            priority=priority,
            version=version,
            traceparent=traceparent,
            started_by=actor,
            labels=labels,
        )
    run = await app.get_run(handle.run_id)
    if handle.created and actor is not None:
        await app.audit.append(
            actor, "run.start", f"run:{run.id}", {"workflow": run.workflow, "version": run.version}
        )
    return run, handle.created


async def list_runs(
    app: App,
    *,
    status: RunStatus | str | None = None,
    workflow: str | None = None,
    limit: int = 50,
    labels: dict[str, str] | None = None,
) -> list[RunRecord]:
    """Runs, newest first, with all of ``labels`` (``ValueError`` for an unknown status)."""
    return await app.list_runs(status=status, workflow=workflow, limit=limit, labels=labels)


async def show_run(app: App, run_id: str) -> RunRecord:
    """A run with its steps (``RunNotFoundError`` when there is none)."""
    return await app.get_run(run_id)


async def signal_run(app: App, run_id: str, name: str, data: Any, *, actor: str) -> None:
    """Send signal ``name`` to a run, audited as ``run.signal``."""
    await app.signal(run_id, name, data)
    await app.audit.append(actor, "run.signal", f"run:{run_id}", {"signal": name})


async def query_run(app: App, run_id: str, name: str, data: Any) -> Any:
    """The answer of a run's query handler (read-only: not audited, the run is not changed)."""
    return await app.query(run_id, name, data)


async def update_run(
    app: App, run_id: str, name: str, data: Any, *, actor: str, timeout: float | None = None
) -> Any:
    """Send update ``name`` to a run and return its handler's result; an update that its
    validator accepted is audited as ``run.update``."""
    update_id = await app.send_update(run_id, name, data)
    await app.audit.append(
        actor, "run.update", f"run:{run_id}", {"update": name, "update_id": update_id}
    )
    return await app.update_result(run_id, update_id, timeout=timeout)


async def cancel_run(app: App, run_id: str, *, actor: str) -> list[str]:
    """Cancel a run and its open children; audited as ``run.cancel`` with the runs reached."""
    ids = await app.cancel(run_id)
    await app.audit.append(actor, "run.cancel", f"run:{run_id}", {"cancelled": ids})
    return ids


async def retry_run(app: App, run_id: str, *, actor: str) -> RunRecord:
    """Re-queue a failed or timed-out run; audited as ``run.retry``."""
    run = await app.retry(run_id)
    await app.audit.append(actor, "run.retry", f"run:{run_id}", {})
    return run


async def pause_run(app: App, run_id: str, *, actor: str) -> RunRecord:
    """Pause a run (its running step finishes; then it waits for resume), as ``run.pause``."""
    run = await app.pause(run_id)
    await app.audit.append(actor, "run.pause", f"run:{run_id}", {})
    return run


async def resume_run(app: App, run_id: str, *, actor: str) -> RunRecord:
    """Resume a paused run, audited as ``run.resume``."""
    run = await app.resume(run_id)
    await app.audit.append(actor, "run.resume", f"run:{run_id}", {})
    return run


async def requeue_run(app: App, run_id: str, *, actor: str) -> RunRecord:
    """Release a quarantined run (workers claim it again), audited as ``run.requeue``."""
    run = await app.requeue(run_id)
    await app.audit.append(actor, "run.requeue", f"run:{run_id}", {})
    return run


async def reset_run(
    app: App, run_id: str, to_step: int, *, actor: str, version: str | None = None
) -> RunRecord:
    """Start a new run from a finished run's history before step ``to_step`` (its recorded
    results are reused, its side effects not repeated); audited as ``run.reset`` on both."""
    new = await app.reset(run_id, to_step, version=version, started_by=actor)
    details = {"run": new.id, "reset_of": run_id, "to_step": to_step, "version": new.version}
    await app.audit.append(actor, "run.reset", f"run:{run_id}", details)
    return new


async def resets_of(app: App, run_id: str) -> list[RunRecord]:
    """The runs reset from ``run_id``."""
    return await app.store.resets_of(run_id)
