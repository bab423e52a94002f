"""One structured log line per run lifecycle change, on the ``opsloom.runs`` logger.

Every line has ``event`` (``run_started``, ``run_resumed``, ``run_waiting``, ``run_completed``,
``run_failed``, ``run_cancelled``, ``run_timed_out``, ``run_recovered``, ``step_retrying``,
``step_failed``), ``run_id``, ``workflow``, ``version`` and ``trace_id`` (the run's trace, the
same one its spans carry), plus ``step`` where a step is concerned. Trigger decisions are logged
by the intake itself (``opsloom.triggers``, see :func:`opsloom.store.trigger.note`).

Nothing is formatted unless the logger is enabled at the line's level, so a process that does
not log runs pays one level check per change.
"""

from __future__ import annotations

import logging
from typing import Any

from opsloom.model import RunRecord, RunStatus
from opsloom.model.observer import Observer, StepAttempt
from opsloom.model.tracecontext import run_trace_id

log = logging.getLogger("opsloom.runs")


def _fields(run: RunRecord, event: str, **more: Any) -> dict[str, Any]:
    return {
        "event": event,
        "run_id": run.id,
        "workflow": run.workflow,
        "version": run.version,
        "trace_id": run_trace_id(run.id, run.traceparent),
        **more,
    }


class RunLog(Observer):
    """Logs run lifecycle changes and failed step attempts."""

    def run_claimed(self, run: RunRecord, first: bool, now: float) -> None:
        if log.isEnabledFor(logging.INFO):
            event = "run_started" if first else "run_resumed"
            fields = _fields(run, event, recovered=run.recovered or None)
            log.info("run %s %s (%s)", run.id, event[4:], run.workflow, extra=fields)

    def run_parked(self, run: RunRecord, wake_at: float | None, now: float) -> None:
        if log.isEnabledFor(logging.INFO):
            fields = _fields(run, "run_waiting", wake_in_s=_seconds(wake_at, now))
            log.info("run %s waiting (%s)", run.id, run.workflow, extra=fields)

    def run_finished(self, run: RunRecord, now: float) -> None:
        status = run.status
        level = logging.INFO if status is RunStatus.COMPLETED else logging.WARNING
        if not log.isEnabledFor(level):
            return
        begun = run.started_at if run.started_at is not None else run.created_at
        error = run.error or {}
        data = error.get("data") or {}
        fields = _fields(
            run,
            f"run_{status}",
            duration_s=round(max(0.0, now - begun), 6),
            step=data.get("step"),
            error_type=error.get("type"),
            error=_short(error.get("message")),
        )
        log.log(level, "run %s %s (%s)", run.id, status, run.workflow, extra=fields)

    def step_attempted(self, run: RunRecord, step: StepAttempt) -> None:
        if step.outcome not in ("retrying", "failed") or not log.isEnabledFor(logging.WARNING):
            return
        fields = _fields(
            run,
            f"step_{step.outcome}",
            step=step.name,
            seq=step.seq,
            attempt=step.attempt,
            error_type=step.error_type,
        )
        log.warning(
            "step %s of run %s %s after attempt %d",
            step.name,
            run.id,
            step.outcome,
            step.attempt,
            extra=fields,
        )

    def runs_recovered(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            log.warning(
                "run %s recovered: its worker vanished",
                run_id,
                extra={
                    "event": "run_recovered",
                    "run_id": run_id,
                    "trace_id": run_trace_id(run_id),
                },
            )


def _seconds(at: float | None, now: float) -> float | None:
    return None if at is None else round(max(0.0, at - now), 3)


def _short(message: Any) -> str | None:
    if message is None:
        return None
    text = str(message)
    return text if len(text) <= 300 else text[:297] + "..."
