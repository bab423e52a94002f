"""Serving workflows and activities, with the names of ``temporalio.worker``.

``Worker(client, task_queue=..., workflows=[...], activities=[...])`` registers the workflow
classes with the client's app and, while it runs, runs an opsloom worker on the app's store.
Every worker on the store serves every run of the workflows it has, whatever their task queue
(the queue is kept in each run's input and shown by ``describe()``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from opsloom.compat.temporal.client import Client
from opsloom.worker import WorkerOptions


class UnsandboxedWorkflowRunner:
    """Accepted for compatibility: opsloom runs workflow code without a sandbox."""


class SandboxedWorkflowRunner(UnsandboxedWorkflowRunner):
    """Accepted for compatibility: opsloom runs workflow code without a sandbox."""


class Worker:
    """Runs the given workflows (and the activities they call) from the client's store.

    Args:
        client: the client whose app and store the worker serves.
        task_queue: the queue name, recorded with runs (see the module's note).
        workflows: ``@workflow.defn`` classes.
        activities: ``@activity.defn`` functions (needed for calls that name an activity
            by string; a call with the function itself needs nothing).
        max_concurrent_workflow_tasks: runs executing at once (opsloom's worker concurrency).
    """

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        workflows: Sequence[type] = (),
        activities: Sequence[Callable[..., Any]] = (),
        max_concurrent_workflow_tasks: int | None = None,
        **ignored: Any,
    ) -> None:
        if not workflows and not activities:
            raise ValueError("a Worker needs at least one workflow or activity")
        self.client = client
        self.task_queue = task_queue
        for activity in activities:
            client.runtime.add_activity(activity)
        for workflow in workflows:
            client.register(workflow)
        self._options = WorkerOptions(concurrency=max_concurrent_workflow_tasks or 256)
        self._stopped = asyncio.Event()
        self._running = False

    @property
    def is_running(self) -> bool:
        return self._running

    @property
    def is_shutdown(self) -> bool:
        return self._stopped.is_set()

    async def start(self) -> None:
        """Start serving (``run`` and ``async with`` do it)."""
        app = self.client.app
        if app.worker is not None:
            raise RuntimeError(
                "a worker already runs for this client: give one Worker all the workflows"
            )
        await app.start_worker(self._options)
        self._running = True

    async def run(self) -> None:
        """Serve until :meth:`shutdown` is called or the task is cancelled."""
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self._stop()

    async def shutdown(self) -> None:
        """Stop serving: running steps finish (within the grace period), waiting runs park."""
        self._stopped.set()
        await self._stop()

    async def _stop(self) -> None:
        if self._running:
            self._running = False
            await self.client.app.stop_worker()

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()
