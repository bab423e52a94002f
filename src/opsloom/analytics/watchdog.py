"""The watchdog: runs that are stuck, overdue or quarantined are reported, once each.

The store quarantines a run by itself when its worker vanished ``OPSLOOM_QUARANTINE_AFTER``
times while executing it (see :func:`opsloom.store.job.requeue`): a run that crashes whatever
worker takes it would otherwise take them down one after the other forever. The watchdog tells
people about it, and about runs that hang without crashing anything:

- **stuck**: a worker holds the run but it has neither been claimed nor started or ended a step
  for longer than ``factor`` times its workflow's p99 duration over the last week (from the
  rollups), and at least ``floor`` seconds; a workflow without a week of history uses
  ``unknown`` seconds. Runs with a timeout are left to it.
- **overdue**: the run has been due (a timer fired, a signal arrived, it was queued) for more
  than ``floor`` seconds and no worker took it: no worker serves its workflow version, or the
  workers are saturated.
- **quarantined**: the run is set aside until ``opsloom runs requeue``.

With ``OPSLOOM_WATCHDOG`` on (the default), every process that runs a worker starts a
:class:`Watchdog`; the holder of the ``watchdog`` singleton looks every ``period`` seconds.
Each finding is stored as a CloudEvent (``io.opsloom.run.stuck.v1``, with the kind
``stuck`` or ``overdue``, or ``io.opsloom.run.quarantined.v1``) whose id names the run and the
moment it went quiet, so looking again stores nothing new; a newly stored one is also logged,
counted (``opsloom_watchdog_findings``) and written to the audit log as ``system:watchdog``.
A workflow whose trigger matches these events is a self-healing runbook.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsloom.analytics.periodic import Emit, Periodic
from opsloom.clock import Clock
from opsloom.model.cloudevent import CloudEvent
from opsloom.model.observer import Observer
from opsloom.store.audit import AuditDraft
from opsloom.store.base import RunFilter, Store
from opsloom.store.rollup import DAY, bucket_percentile, merge

log = logging.getLogger("opsloom.watchdog")

#: CloudEvents types of the findings.
STUCK_TYPE = "io.opsloom.run.stuck.v1"
QUARANTINED_TYPE = "io.opsloom.run.quarantined.v1"
SOURCE = "opsloom/watchdog"
#: Who the audit entries name.
ACTOR = "system:watchdog"
#: Days of rollups a workflow's usual duration is read from.
BASELINE_DAYS = 7


@dataclass(frozen=True, slots=True)
class Finding:
    """One run the watchdog reports, with the numbers behind it."""

    kind: str  # stuck | overdue | quarantined
    run_id: str
    workflow: str
    version: str
    since: float
    detail: dict[str, Any]

    def event(self) -> CloudEvent:
        kind = QUARANTINED_TYPE if self.kind == "quarantined" else STUCK_TYPE
        return CloudEvent(
            id=f"{self.run_id}:{self.kind}:{self.since:.0f}",
            source=SOURCE,
            type=kind,
            subject=self.run_id,
            time=datetime.fromtimestamp(self.since, UTC).isoformat(),
            datacontenttype="application/json",
            data={
                "kind": self.kind,
                "run_id": self.run_id,
                "workflow": self.workflow,
                "version": self.version,
                "since": self.since,
                **self.detail,
            },
        )


async def usual_durations(store: Store, now: float) -> dict[str, float]:
    """Each workflow's p99 run duration (seconds) over the last week's daily rollups."""
    last = int(now // DAY) * DAY
    cells = await store.run_cells(
        DAY, last - BASELINE_DAYS * DAY, last, "workflow", measure="duration", by_status=False
    )
    histograms: dict[str, list[tuple[int, ...]]] = {}
    for cell in cells:
        histograms.setdefault(str(cell.key[0]), []).append(cell.counts)
    out = {}
    for workflow, counts in histograms.items():
        p99 = bucket_percentile(merge(counts), 99)
        if p99 is not None:
            out[workflow] = p99
    return out


async def find(
    store: Store,
    now: float,
    *,
    factor: float = 10.0,
    floor: float = 600.0,
    unknown: float = 3600.0,
) -> list[Finding]:
    """What the watchdog would report now (see the module's description)."""
    found: list[Finding] = []
    quarantined = await store.list_runs(RunFilter(quarantined=True, limit=500))
    for held in quarantined:
        assert held.quarantined_at is not None
        detail = {"recovered": held.recovered, "status": str(held.status)}
        found.append(
            Finding(
                "quarantined", held.id, held.workflow, held.version, held.quarantined_at, detail
            )
        )
    stalled = await store.stalled_runs(now - floor)
    if not stalled:
        return found
    usual = await usual_durations(store, now)
    for run in stalled:
        quiet = now - run.active_at
        if not run.held:
            detail = {"quiet_s": round(quiet, 3), "due_at": run.active_at, "status": run.status}
            found.append(
                Finding("overdue", run.run_id, run.workflow, run.version, run.active_at, detail)
            )
            continue
        p99 = usual.get(run.workflow)
        limit = unknown if p99 is None else max(floor, factor * p99)
        if quiet <= limit:
            continue
        detail = {
            "quiet_s": round(quiet, 3),
            "limit_s": round(limit, 3),
            "usual_p99_s": p99,
            "status": run.status,
        }
        found.append(Finding("stuck", run.run_id, run.workflow, run.version, run.active_at, detail))
    return found


class Watchdog(Periodic):
    """The watchdog loop of one process."""

    name = "watchdog"
    log = log

    def __init__(
        self,
        store: Store,
        clock: Clock,
        owner: str,
        emit: Emit,
        observer: Observer | None = None,
        *,
        period: float = 60.0,
        factor: float = 10.0,
        floor: float = 600.0,
        unknown: float = 3600.0,
    ) -> None:
        super().__init__(period)
        self.store = store
        self.clock = clock
        self.owner = owner
        self.emit = emit
        self.observer = observer or Observer()
        self.limits = {"factor": factor, "floor": floor, "unknown": unknown}

    async def run_once(self) -> list[Finding]:
        """Look now (if this process holds the singleton); the findings reported this time."""
        now = self.clock.now()
        if not await self.store.hold_singleton("watchdog", self.owner, now, 3 * self.period):
            return []
        found = await find(self.store, now, **self.limits)
        if not found:
            return []
        receipts = await self.emit([finding.event() for finding in found])
        new = [f for f, receipt in zip(found, receipts, strict=True) if receipt.stored]
        for finding in new:
            self._report(finding, now)
            await self.store.append_audit(
                AuditDraft(
                    ACTOR,
                    f"run.{finding.kind}",
                    f"run:{finding.run_id}",
                    {"workflow": finding.workflow, "since": finding.since, **finding.detail},
                    now,
                )
            )
        return new

    def _report(self, finding: Finding, now: float) -> None:
        self.observer.watchdog_found(finding.kind, finding.workflow)
        extra = {
            "event": f"run_{finding.kind}",
            "run_id": finding.run_id,
            "workflow": finding.workflow,
            **finding.detail,
        }
        if finding.kind == "quarantined":
            log.error(
                "run %s quarantined after its worker vanished %s times; "
                "`opsloom runs requeue %s` once fixed",
                finding.run_id,
                finding.detail["recovered"],
                finding.run_id,
                extra=extra,
            )
        else:
            log.warning(
                "run %s %s: no sign of life for %.0f s",
                finding.run_id,
                finding.kind,
                now - finding.since,
                extra=extra,
            )
