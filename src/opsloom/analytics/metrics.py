"""Prometheus metrics of one opsloom process: what its worker, writer and intake did.

Two kinds of series, kept apart on purpose so that several processes sharing one PostgreSQL
store can all be scraped:

- **Per-process counters and histograms** (runs started and finished, run, step and queue-wait
  durations, retries, lease recoveries, write batches, webhook requests)
  count what *this* process did, in memory, from the :class:`~opsloom.model.observer.Observer`
  calls of the engine. No store round trip is spent on them; Prometheus adds the processes up
  (``sum by (workflow) (rate(opsloom_runs_finished_total[5m]))``). A restarted process starts
  from zero, which ``rate`` and ``increase`` handle.
- **Store-derived series** (runs by open status, approval decisions, SLA breaches, the state
  of each connection's circuit breaker) describe
  the shared store, not the process. They are read from the store when scraped (one indexed
  count each), so every process reports the same value: aggregate them with ``max``, not
  ``sum``. There is no multi-process file mode to set up: nothing is shared between processes
  except the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from opsloom.analytics.tally import BATCH_BUCKETS, Spread, Tally
from opsloom.model import RunRecord, RunStatus
from opsloom.model.observer import Observer, StepAttempt
from opsloom.store.base import Store
from opsloom.store.connection import BreakerRecord
from opsloom.store.stats import OPEN_STATUSES, ApprovalCounts

#: Breaker states as gauge values (worse is higher).
_BREAKER_LEVELS = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
#: The ``Content-Type`` of :meth:`Metrics.render`'s output.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics(Observer, Collector):
    """Counts what the engine reports and renders it, with the store's gauges, for Prometheus.

    Args:
        registry: where the families are registered (default: a registry of its own, so that
            several apps in one process — tests — do not mix their counts). Process metrics
            (CPU, memory, file descriptors) are added to a registry made here.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.started = Tally(
            "opsloom_runs_started",
            "Runs whose first execution began here.",
            ("workflow", "version"),
        )
        self.finished = Tally(
            "opsloom_runs_finished",
            "Runs that ended here, by final status (completed, failed, cancelled, timed_out).",
            ("workflow", "version", "status"),
        )
        self.run_duration = Spread(
            "opsloom_run_duration_seconds",
            "From a run's first execution to its end, waits included.",
            ("workflow", "version", "status"),
        )
        self.step_duration = Spread(
            "opsloom_step_duration_seconds",
            "One attempt of a step, by outcome (completed, retrying, failed, cancelled).",
            ("workflow", "step", "outcome"),
        )
        self.retries = Tally(
            "opsloom_step_retries",
            "Failed step attempts that are tried again under the step's retry policy.",
            ("workflow", "step"),
        )
        self.queue_wait = Spread(
            "opsloom_queue_wait_seconds",
            "From a run's creation to its first claim by a worker.",
            ("workflow",),
        )
        self.parked = Tally(
            "opsloom_runs_parked",
            "Times a run left memory to wait (timer, signal, child).",
            ("workflow",),
        )
        self.recoveries = Tally(
            "opsloom_lease_recoveries",
            "Runs returned to the queue because the worker holding them vanished.",
        )
        self.watchdog = Tally(
            "opsloom_watchdog_findings",
            "Runs the watchdog reported, once each: stuck (no progress far beyond the "
            "workflow's usual duration), overdue (due and unclaimed) or quarantined.",
            ("kind", "workflow"),
        )
        self.batch_size = Spread(
            "opsloom_store_commit_operations",
            "State changes committed together in one write transaction (group commit).",
            (),
            BATCH_BUCKETS,
        )
        self.commit_duration = Spread(
            "opsloom_store_commit_duration_seconds",
            "How long one write transaction took, from BEGIN to COMMIT.",
        )
        self.webhooks = Tally(
            "opsloom_webhook_requests",
            "Webhook requests, accepted or rejected, by source and reason.",
            ("source", "outcome", "reason"),
        )
        self.webhook_events = Tally(
            "opsloom_webhook_events", "Events that accepted webhook requests carried.", ("source",)
        )
        self._tallies: tuple[Tally | Spread, ...] = (
            self.started,
            self.finished,
            self.run_duration,
            self.step_duration,
            self.retries,
            self.queue_wait,
            self.parked,
            self.recoveries,
            self.watchdog,
            self.batch_size,
            self.commit_duration,
            self.webhooks,
            self.webhook_events,
        )
        self.open_runs: dict[RunStatus, int] | None = None
        self.approvals: ApprovalCounts | None = None
        self.breakers: list[BreakerRecord] | None = None
        self.quarantined: int | None = None
        self.store_error: str | None = None
        if registry is None:
            registry = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=registry)
        self.registry = registry
        registry.register(self)

    # --- Observer -----------------------------------------------------------------------------

    def run_claimed(self, run: RunRecord, first: bool, now: float) -> None:
        if first:
            self.started.inc((run.workflow, run.version))
            self.queue_wait.observe((run.workflow,), max(0.0, now - run.created_at))

    def run_parked(self, run: RunRecord, wake_at: float | None, now: float) -> None:
        self.parked.inc((run.workflow,))

    def run_finished(self, run: RunRecord, now: float) -> None:
        key = (run.workflow, run.version, str(run.status))
        self.finished.inc(key)
        begun = run.started_at if run.started_at is not None else run.created_at
        self.run_duration.observe(key, max(0.0, now - begun))

    def step_attempted(self, run: RunRecord, step: StepAttempt) -> None:
        seconds = step.ended_at - step.started_at
        self.step_duration.observe(
            (run.workflow, step.name, step.outcome), seconds if seconds > 0.0 else 0.0
        )
        if step.outcome == "retrying":
            self.retries.inc((run.workflow, step.name))

    def runs_recovered(self, run_ids: list[str]) -> None:
        self.recoveries.inc((), len(run_ids))

    def watchdog_found(self, kind: str, workflow: str) -> None:
        self.watchdog.inc((kind, workflow))

    def store_committed(self, operations: int, seconds: float) -> None:
        self.batch_size.observe((), operations)
        self.commit_duration.observe((), seconds)

    def webhook_received(self, source: str, accepted: bool, reason: str, events: int) -> None:
        self.webhooks.inc((source, "accepted" if accepted else "rejected", reason))
        if accepted and events:
            self.webhook_events.inc((source,), events)

    # --- exposition ---------------------------------------------------------------------------

    async def refresh(self, store: Store) -> None:
        """Read the store-derived series now (at scrape time); a failure is reported, not raised.

        When the store cannot answer, its series are left out of the scrape rather than shown
        with stale values, and ``opsloom_store_up`` is 0.
        """
        try:
            self.open_runs = await store.open_run_counts()
            self.approvals = await store.approval_counts()
            self.breakers = await store.list_breakers()
            self.quarantined = await store.quarantined_count()
        except Exception as exc:  # a scrape answers even when the store is down
            self.open_runs = self.approvals = self.breakers = self.quarantined = None
            self.store_error = f"{type(exc).__name__}: {exc}"
        else:
            self.store_error = None

    def render(self) -> bytes:
        """The text exposition format of everything registered."""
        return generate_latest(self.registry)

    def collect(self) -> Iterable[Metric]:
        """Prometheus' collector protocol: called by the registry at each scrape."""
        for tally in self._tallies:
            yield tally.family()
        yield from self._store_families()

    def _store_families(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "opsloom_store_up", "Whether the store answered this scrape's queries (1) or not (0)."
        )
        up.add_metric([], 0.0 if self.store_error else 1.0)
        yield up
        if self.open_runs is not None:
            runs = GaugeMetricFamily(
                "opsloom_runs",
                "Runs in the store that have not ended, by status (same value in every process).",
                labels=("status",),
            )
            for status in OPEN_STATUSES:
                runs.add_metric([str(status)], float(self.open_runs.get(status, 0)))
            yield runs
        if self.quarantined is not None:
            quarantined = GaugeMetricFamily(
                "opsloom_runs_quarantined",
                "Open runs quarantined for crashing their workers, waiting for `opsloom runs "
                "requeue` (same value in every process).",
            )
            quarantined.add_metric([], float(self.quarantined))
            yield quarantined
        if self.approvals is not None:
            decided = CounterMetricFamily(
                "opsloom_approval_decisions",
                "Approval requests decided, by outcome (same value in every process).",
                labels=("outcome",),
            )
            for outcome, count in sorted(self.approvals.decided.items()):
                decided.add_metric([outcome], float(count))
            yield decided
            breaches = CounterMetricFamily(
                "opsloom_approval_sla_breaches",
                "Approval deadlines that passed: escalations and decisions taken at the SLA.",
            )
            breaches.add_metric([], float(self.approvals.sla_breaches))
            yield breaches
        if self.breakers is not None:
            state = GaugeMetricFamily(
                "opsloom_connector_breaker_state",
                "The circuit breaker of each connection: 0 closed, 1 half open, 2 open (calls "
                "refused); same value in every process.",
                labels=("connection",),
            )
            failures = GaugeMetricFamily(
                "opsloom_connector_breaker_failures",
                "Failed calls counted by each connection's breaker since it last closed.",
                labels=("connection",),
            )
            for breaker in self.breakers:
                level = _BREAKER_LEVELS.get(breaker.state, 2.0)
                state.add_metric([breaker.connection], level)
                failures.add_metric([breaker.connection], float(breaker.failures))
            yield state
            yield failures


def metrics_of(observers: Iterable[Observer]) -> Metrics | None:
    """The :class:`Metrics` among ``observers``, if one was attached."""
    return next((o for o in observers if isinstance(o, Metrics)), None)
