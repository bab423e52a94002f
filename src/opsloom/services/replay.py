"""Checking a deploy against runs in flight: replay stored histories on the current code.

What ``opsloom replay`` rests on. Each selected run is replayed (see
:mod:`opsloom.engine.replayer`) with its workflow at the version it started with; a run whose
version the code no longer registers is reported too when it is still open, since no worker
of this code would ever advance it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from opsloom.app import App
from opsloom.engine.replayer import ReplayOutcome, replay_history
from opsloom.errors import OpsloomError, RunNotFoundError, WorkflowNotFoundError
from opsloom.model import RunRecord
from opsloom.store import RunFilter

#: Outcomes that make the check fail.
PROBLEMS = frozenset({"nondeterminism", "error", "timeout", "unserved"})


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """One run replayed: its outcome (``status`` ``unserved``/``skipped`` when its version is
    not registered: open / finished)."""

    run: RunRecord
    outcome: ReplayOutcome

    @property
    def failed(self) -> bool:
        return self.outcome.status in PROBLEMS

    def to_dict(self) -> dict[str, Any]:
        out = self.outcome
        return {
            "run_id": self.run.id,
            "workflow": self.run.workflow,
            "version": self.run.version,
            "run_status": str(self.run.status),
            "result": out.status,
            "seq": out.seq,
            "expected": out.expected,
            "got": out.got,
            "message": out.message,
        }


async def replay_runs(
    app: App,
    run_ids: list[str] | None = None,
    *,
    workflow: str | None = None,
    limit: int = 100,
    since: float | None = None,
    timeout: float = 10.0,
) -> list[ReplayReport]:
    """Replay the given runs, or the ``limit`` newest ones (of ``workflow``, created since
    ``since``), against the workflows registered in ``app``.

    Raises:
        RunNotFoundError: one of ``run_ids`` does not exist.
    """
    if run_ids:
        runs = []
        for run_id in run_ids:
            run = await app.store.get_run(run_id, with_steps=True)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            runs.append(run)
    else:
        listed = await app.store.list_runs(
            RunFilter(workflow=workflow, limit=limit, created_from=since)
        )
        runs = [
            run
            for item in listed
            if (run := await app.store.get_run(item.id, with_steps=True)) is not None
        ]
    return [await _replay(app, run, timeout) for run in runs]


async def _replay(app: App, run: RunRecord, timeout: float) -> ReplayReport:
    if "/" in run.workflow:  # a deployed document: load it if this process has not yet
        with contextlib.suppress(OpsloomError):
            await app.documents.resolve(f"{run.workflow}:{run.version}")
    history = {step.seq: step for step in run.steps}
    try:
        outcome = await replay_history(app.registry, run, history, timeout=timeout)
    except WorkflowNotFoundError as exc:
        status = "skipped" if run.status.terminal else "unserved"
        outcome = ReplayOutcome(status, str(exc))
    return ReplayReport(run, outcome)
