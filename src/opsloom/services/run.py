"""Starting runs on behalf of the API and the CLI."""

from __future__ import annotations

from typing import Any

from opsloom.app import App
from opsloom.model import RunRecord


async def start_run(
    app: App,
    workflow: str,
    input: Any = None,
    *,
    run_id: str | None = None,
    priority: int | None = None,
    actor: str | None = None,
) -> tuple[RunRecord, bool]:
    """Start a run (or find the existing one with ``run_id``); return it and whether it is new.

    ``actor`` (the authenticated user) is recorded on the run as the one who started it.
    """
    handle = await app.start(workflow, input, run_id=run_id, priority=priority, started_by=actor)
    return await app.get_run(handle.run_id), handle.created
