"""Anomalies as CloudEvents: a workflow can react to its own regressions (self-healing).

With ``OPSLOOM_ANOMALY_EVENTS`` on, every process that runs a worker starts an
:class:`AnomalyWatch`; the holder of the ``anomalies`` singleton looks every ``period`` seconds
at the finished runs of the last ``window`` in ``bucket``-wide buckets (5 minutes by default, so
a regression is seen within minutes) and stores each anomaly of the newest bucket as an
``io.opsloom.anomaly.detected.v1`` event. The event's id names the workflow, the kind and the
bucket, so looking again finds a duplicate and stores nothing: one event per anomaly. Like any
event, it starts the workflows whose triggers match it (``schedule.on`` or ``app.trigger``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from opsloom.analytics.periodic import Emit, Periodic
from opsloom.analytics.report import report
from opsloom.clock import Clock
from opsloom.model.cloudevent import CloudEvent
from opsloom.store.base import Store

log = logging.getLogger("opsloom.anomalies")

#: The CloudEvents type of a detected anomaly.
ANOMALY_TYPE = "io.opsloom.anomaly.detected.v1"
#: The events' source.
SOURCE = "opsloom/analytics"


def anomaly_event(anomaly: dict[str, Any]) -> CloudEvent:
    """The event of one anomaly (as :func:`opsloom.analytics.report.report` gives it)."""
    start = float(anomaly["bucket_start"])
    return CloudEvent(
        id=f"{anomaly['workflow']}:{anomaly['kind']}:{start:.0f}",
        source=SOURCE,
        type=ANOMALY_TYPE,
        subject=str(anomaly["workflow"]),
        time=datetime.fromtimestamp(start, UTC).isoformat(),
        datacontenttype="application/json",
        data=anomaly,
    )


class AnomalyWatch(Periodic):
    """The anomaly-detection loop of one process."""

    name = "anomalies"
    log = log

    def __init__(
        self,
        store: Store,
        clock: Clock,
        owner: str,
        emit: Emit,
        *,
        period: float = 60.0,
        window: float = 4 * 3600.0,
        bucket: float = 300.0,
    ) -> None:
        super().__init__(period)
        self.store = store
        self.clock = clock
        self.owner = owner
        self.emit = emit
        self.window = window
        self.bucket = bucket

    async def run_once(self) -> list[CloudEvent]:
        """Look now (if this process holds the singleton); the events newly stored."""
        now = self.clock.now()
        if not await self.store.hold_singleton("anomalies", self.owner, now, 3 * self.period):
            return []
        found = await report(self.store, "anomalies", now, self.window, self.bucket)
        assert isinstance(found, list)
        events = [anomaly_event(anomaly) for anomaly in found]
        if not events:
            return []
        receipts = await self.emit(events)
        new = [event for event, receipt in zip(events, receipts, strict=True) if receipt.stored]
        for event in new:
            log.warning(
                "anomaly %s in workflow %s",
                event.data["kind"],
                event.subject,
                extra={"event": "anomaly_detected", "workflow": event.subject, **event.data},
            )
        return new
