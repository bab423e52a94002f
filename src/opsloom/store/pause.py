"""Pausing and resuming runs, one at a time or every run of a workflow, written once.

A paused run keeps everything it has: its status, its history, its timers (``available_at``)
and its signals. Only its job is held back (``jobs.blocked = PAUSED``), so no worker claims it;
a worker executing it when it is paused lets the running step finish and parks it. It learns
of the pause at once in this process; in others, at once on PostgreSQL (the pause's commit
sends a ``control`` wake-up, on which workers renew their leases and read what was asked of
their runs) and at the next heartbeat on SQLite. Resuming clears the
hold: a timer that fired meanwhile, or a signal that arrived, is taken at once. A run held
back by its concurrency key when it was paused is checked against its key again on resume.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsloom.errors import RunNotFoundError, RunStateError
from opsloom.model import RunRecord
from opsloom.store.job import fetch_run
from opsloom.store.rows import PAUSED, QUARANTINED
from opsloom.store.tx import CONTROL, WORK, Transactions, Tx


@dataclass(frozen=True, slots=True)
class WorkflowPause:
    """A paused workflow: its new runs queue, paused, until it is resumed."""

    workflow: str
    paused_at: float
    paused_by: str | None


async def _open_run(tx: Tx, run_id: str, doing: str) -> RunRecord:
    run = await fetch_run(tx, run_id)
    if run is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    if run.status.terminal:
        raise RunStateError(f"run {run_id!r} is already {run.status}; it cannot be {doing}")
    return run


async def _hold(tx: Tx, run_ids: list[str], who: str, now: float) -> None:
    """Pause the open runs ``run_ids`` (jobs first: the store's lock order)."""
    if not run_ids:
        return
    among, ids = tx.among("run_id", run_ids)
    # A quarantined job stays held back as such: resuming must not release it.
    await tx.execute(
        f"UPDATE jobs SET blocked = {PAUSED} WHERE {among} AND blocked <> {QUARANTINED}", ids
    )
    among, ids = tx.among("id", run_ids)
    await tx.execute(
        "UPDATE runs SET paused = ?, paused_at = coalesce(paused_at, ?), updated_at = ? "
        f"WHERE {among} AND completed_at IS NULL",
        (who, now, now, *ids),
    )


async def _release(tx: Tx, run_ids: list[str], now: float) -> None:
    """Resume the paused runs ``run_ids``: their jobs are claimable again when due."""
    if not run_ids:
        return
    among, ids = tx.among("run_id", run_ids)
    await tx.execute(f"UPDATE jobs SET blocked = 0 WHERE blocked = {PAUSED} AND {among}", ids)
    among, ids = tx.among("id", run_ids)
    await tx.execute(
        f"UPDATE runs SET paused = NULL, paused_at = NULL, updated_at = ? WHERE {among}",
        (now, *ids),
    )


class PauseOps(Transactions):
    """``pause_run``, ``resume_run``, ``pause_workflow``, ``resume_workflow``."""

    async def pause_run(self, run_id: str, now: float) -> RunRecord:
        """Pause one open run (again: unchanged); ``RunStateError`` if it ended or is being
        cancelled."""

        async def pause(tx: Tx) -> RunRecord:
            run = await _open_run(tx, run_id, "paused")
            if run.cancel_requested:
                raise RunStateError(f"run {run_id!r} is being cancelled; it cannot be paused")
            if run.paused != "run":
                await _hold(tx, [run_id], "run", now)
            fetched = await fetch_run(tx, run_id)
            assert fetched is not None
            return fetched

        return await self.write(pause, CONTROL)

    async def resume_run(self, run_id: str, now: float) -> RunRecord:
        """Resume a paused run, even one paused with its workflow; ``RunStateError`` if it is
        not paused."""

        async def resume(tx: Tx) -> RunRecord:
            run = await _open_run(tx, run_id, "resumed")
            if run.paused is None:
                raise RunStateError(f"run {run_id!r} is not paused")
            await _release(tx, [run_id], now)
            fetched = await fetch_run(tx, run_id)
            assert fetched is not None
            return fetched

        return await self.write(resume, WORK)

    async def pause_workflow(self, workflow: str, by: str | None, now: float) -> list[str]:
        """Pause every open run of ``workflow`` and the runs it starts until resumed; the ids
        of the runs paused now (runs paused on their own stay so)."""

        async def pause(tx: Tx) -> list[str]:
            await tx.execute(
                "INSERT INTO workflow_controls (workflow, paused_at, paused_by) VALUES (?, ?, ?) "
                "ON CONFLICT (workflow) DO UPDATE SET paused_at = excluded.paused_at, "
                "paused_by = excluded.paused_by WHERE workflow_controls.paused_at IS NULL",
                (workflow, now, by),
            )
            rows = await tx.all(
                "SELECT id FROM runs WHERE workflow = ? AND completed_at IS NULL "
                "AND paused IS NULL AND cancel_requested = 0 ORDER BY id",
                (workflow,),
            )
            ids = [row[0] for row in rows]
            await _hold(tx, ids, "workflow", now)
            return ids

        return await self.write(pause, CONTROL)

    async def resume_workflow(self, workflow: str, now: float) -> list[str]:
        """Resume a paused workflow and the runs paused with it (not those paused on their
        own); the ids of the runs resumed. ``RunStateError`` if it is not paused."""

        async def resume(tx: Tx) -> list[str]:
            resumed = await tx.execute(
                "UPDATE workflow_controls SET paused_at = NULL, paused_by = NULL "
                "WHERE workflow = ? AND paused_at IS NOT NULL",
                (workflow,),
            )
            if resumed != 1:
                raise RunStateError(f"workflow {workflow!r} is not paused")
            rows = await tx.all(
                "SELECT id FROM runs WHERE workflow = ? AND completed_at IS NULL "
                "AND paused = 'workflow' ORDER BY id",
                (workflow,),
            )
            ids = [row[0] for row in rows]
            await _release(tx, ids, now)
            return ids

        return await self.write(resume, WORK)

    async def workflow_pauses(self) -> list[WorkflowPause]:
        """The paused workflows, by name."""
        rows = await self.read(
            lambda tx: tx.all(
                "SELECT workflow, paused_at, paused_by FROM workflow_controls "
                "WHERE paused_at IS NOT NULL ORDER BY workflow"
            )
        )
        return [WorkflowPause(str(w), float(at), by) for w, at, by in rows]
