"""Recommendations: concrete changes to workflows, each with the run history behind it.

Read from the rollups of a window (so they cost what the other reports cost), and from the
registered workflows when the caller has them (their timeouts and concurrency limits):

- ``retries_never_help``: a step retried on failure whose retries never saved it in the window
  (no completed step needed one): the retries only add attempts and time. Stop retrying it, or
  make its error non-retryable.
- ``retries_rescue``: a step that often succeeds only on a later attempt, while its failures
  gave up after few attempts: one more attempt would have saved some of them.
- ``step_timeouts_hit``: a step whose attempts fail on its timeout (at least
  :data:`TIMED_OUT_SHARE` of its final outcomes) while its completed attempts take a known
  time: a timeout of :data:`TIMEOUT_MARGIN` times their p99 leaves them room.
- ``dominant_step``: a step that takes most of its workflow's time: where to look first.
- ``timeout_far_above_p99``: a workflow whose timeout is many times its observed p99 duration:
  a hung run holds its slot that long. ``timeouts_hit``: runs that time out although the runs
  that complete stay well under the timeout's order of magnitude.
- ``schedule_overlaps``: a cron or ``every`` schedule whose runs outlast the time between its
  ticks (a run started while an earlier one of the schedule still ran, or their p95 duration
  reaches the interval): read from the runs of its latest ticks (their ids name the tick).
  The scheduler has no skip-if-running policy, so the suggestion is an ``after`` schedule
  (the next run a while after the previous ends: never two at once) or a longer interval. A
  concurrency limit of 1 would only queue the runs that pile up.
- ``queue_contention``: runs that wait longer to start than they take to run: the workflow's
  concurrency limit (when it has one) or the workers' concurrency is the bottleneck.

Each recommendation has a ``kind``, its ``workflow`` (and ``step``), a sentence saying what to
change, a ``suggestion`` (the setting and a value) and the ``evidence`` (the numbers).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsloom.engine.registry import WorkflowSpec
from opsloom.errors import StepTimeoutError
from opsloom.model.schedule import ScheduleRecord, tick_run_id
from opsloom.store.base import RunSpan, Store
from opsloom.store.rollup import FailureCell, RunCell, StepCell, bucket_percentile, merge

#: Fewer runs (or steps) than this in the window say nothing reliable.
MIN_RUNS = 10
#: A timeout this many times the p99 duration is "far above" it; a suggested one is
#: :data:`TIMEOUT_MARGIN` times the p99.
FAR_ABOVE = 10.0
TIMEOUT_MARGIN = 3.0
#: Timeouts in this share of a workflow's runs (or a step's) are worth a recommendation.
TIMED_OUT_SHARE = 0.05
#: A schedule's runs are read for its latest this many ticks of the window, and judged from
#: this many; a longer interval suggested is this many times their p95 duration.
SCHEDULE_TICKS = 500
SCHEDULE_MIN_RUNS = 3
SCHEDULE_MARGIN = 1.5
#: A step taking this share of its workflow's time dominates it.
DOMINANT_SHARE = 0.5


@dataclass(slots=True)
class Recommendation:
    kind: str
    workflow: str
    message: str
    suggestion: dict[str, Any]
    evidence: dict[str, Any]
    step: str | None = None
    #: Orders the list: roughly, the seconds or runs at stake.
    weight: float = field(default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "workflow": self.workflow,
            "step": self.step,
            "message": self.message,
            "suggestion": self.suggestion,
            "evidence": self.evidence,
        }


def _p(counts: Iterable[Iterable[int]], q: float) -> float | None:
    return bucket_percentile(merge([list(c) for c in counts]), q)


def _top_reason(failures: list[FailureCell], workflow: str, step: str) -> dict[str, Any] | None:
    mine = [f for f in failures if f.workflow == workflow and f.step == step]
    if not mine:
        return None
    top = max(mine, key=lambda f: f.failures)
    return {"type": top.type, "message": top.message, "count": top.failures}


def _timeout_advice(
    workflow: str,
    step: str,
    done: StepCell | None,
    failed: StepCell | None,
    failures: list[FailureCell],
) -> Recommendation | None:
    """``step_timeouts_hit``: a step that fails on its timeout while its completed attempts
    show how long it takes."""
    if done is None or failed is None or done.steps < 3:
        return None
    timed_out = sum(
        f.failures
        for f in failures
        if f.workflow == workflow and f.step == step and f.type == StepTimeoutError.__name__
    )
    total = done.steps + failed.steps
    p99 = _p([done.counts], 99)
    if timed_out < 3 or timed_out / total < TIMED_OUT_SHARE or p99 is None:
        return None
    suggested = max(1.0, math.ceil(TIMEOUT_MARGIN * p99))
    return Recommendation(
        "step_timeouts_hit",
        workflow,
        f"step {step!r} of {workflow!r}: {timed_out} of {total} steps failed on their timeout; "
        f"its completed attempts take {p99:.3g} s at p99: a timeout of {suggested:g} s leaves "
        "them room (if the step's is shorter)",
        {"step_timeout": suggested},
        {
            "timed_out": timed_out,
            "steps": total,
            "completed_p50_s": _p([done.counts], 50),
            "completed_p99_s": p99,
        },
        step,
        weight=float(timed_out),
    )


def step_advice(steps: list[StepCell], failures: list[FailureCell]) -> list[Recommendation]:
    """Retry and timeout recommendations per step."""
    out: list[Recommendation] = []
    groups: dict[tuple[str, str], dict[str, StepCell]] = defaultdict(dict)
    for cell in steps:
        groups[(cell.workflow, cell.step)][cell.status] = cell
    for (workflow, step), cells in sorted(groups.items()):
        done, failed = cells.get("completed"), cells.get("failed")
        slow = _timeout_advice(workflow, step, done, failed, failures)
        if slow is not None:
            out.append(slow)
        rescued = 0 if done is None else done.retried
        if failed is None or failed.steps < 3:
            continue
        wasted = failed.attempts - failed.steps
        evidence: dict[str, Any] = {
            "completed": 0 if done is None else done.steps,
            "completed_after_retry": rescued,
            "failed": failed.steps,
            "failed_attempts": failed.attempts,
            "top_failure": _top_reason(failures, workflow, step),
        }
        if wasted > 0 and rescued == 0:
            out.append(
                Recommendation(
                    "retries_never_help",
                    workflow,
                    f"step {step!r} of {workflow!r}: {wasted} retries in the window, none "
                    "succeeded; retry it once at most, or mark its error non-retryable",
                    {"retry": {"attempts": 1}},
                    evidence,
                    step,
                    weight=float(wasted),
                )
            )
            continue
        if done is None or rescued < 3:
            continue
        tried = failed.attempts / failed.steps
        retried_total = rescued + failed.steps
        share = rescued / retried_total
        if share >= 0.3:
            attempts = math.ceil(tried) + 1
            out.append(
                Recommendation(
                    "retries_rescue",
                    workflow,
                    f"step {step!r} of {workflow!r}: {rescued} of {retried_total} steps that "
                    f"failed once succeeded on a later attempt; the {failed.steps} that failed "
                    f"gave up after {tried:.1f} attempts on average: allow {attempts}",
                    {"retry": {"attempts": attempts}},
                    {**evidence, "rescue_rate": round(share, 4)},
                    step,
                    weight=float(failed.steps) * share,
                )
            )
    return out


def _by_workflow(cells: list[RunCell]) -> dict[str, dict[tuple[str, str], list[RunCell]]]:
    out: dict[str, dict[tuple[str, str], list[RunCell]]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        out[str(cell.key[0])][(cell.measure, cell.status)].append(cell)
    return out


def workflow_advice(
    runs: list[RunCell], steps: list[StepCell], specs: dict[str, WorkflowSpec]
) -> list[Recommendation]:
    """Timeout, contention and bottleneck recommendations per workflow."""
    out: list[Recommendation] = []
    step_seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    step_counts: dict[tuple[str, str], list[tuple[int, ...]]] = defaultdict(list)
    for cell in steps:
        step_seconds[cell.workflow][cell.step] += cell.seconds
        step_counts[(cell.workflow, cell.step)].append(cell.counts)
    for workflow, cells in sorted(_by_workflow(runs).items()):
        durations = [c for (m, _), group in cells.items() if m == "duration" for c in group]
        total = sum(c.runs for c in durations)
        if total < MIN_RUNS:
            continue
        completed = cells.get(("duration", "completed"), [])
        p99 = _p((c.counts for c in completed), 99)
        p50 = _p((c.counts for c in durations), 50)
        timed_out = sum(c.runs for c in cells.get(("duration", "timed_out"), []))
        spec = specs.get(workflow)
        timeout = None if spec is None else spec.timeout
        if timeout is not None and p99 is not None and timeout > max(FAR_ABOVE * p99, p99 + 60):
            suggested = max(1.0, math.ceil(TIMEOUT_MARGIN * p99))
            out.append(
                Recommendation(
                    "timeout_far_above_p99",
                    workflow,
                    f"{workflow!r} times out after {timeout:g} s but its completed runs take "
                    f"{p99:.3g} s at p99: a hung run holds its slot that long; "
                    f"set timeout={suggested:g}",
                    {"timeout": suggested},
                    {"timeout_s": timeout, "p99_s": p99, "runs": total},
                    weight=timeout - p99,
                )
            )
        if timed_out and timed_out / total >= TIMED_OUT_SHARE and p99 is not None:
            suggested = max(1.0, math.ceil(TIMEOUT_MARGIN * p99))
            if timeout is None or suggested > timeout:
                out.append(
                    Recommendation(
                        "timeouts_hit",
                        workflow,
                        f"{timed_out} of {total} runs of {workflow!r} timed out; completed "
                        f"runs take {p99:.3g} s at p99: a timeout of {suggested:g} s would "
                        "leave them room",
                        {"timeout": suggested},
                        {"timed_out": timed_out, "runs": total, "p99_s": p99, "timeout_s": timeout},
                        weight=float(timed_out),
                    )
                )
        waits = [c for (m, _), group in cells.items() if m == "wait" for c in group]
        wait_p95 = _p((c.counts for c in waits), 95)
        if wait_p95 is not None and p50 is not None and wait_p95 > max(1.0, p50):
            limit = None if spec is None else spec.concurrency
            where = (
                f"its concurrency limit ({limit})"
                if limit is not None
                else "the workers' concurrency (OPSLOOM_WORKER_CONCURRENCY, or more workers)"
            )
            suggestion = (
                {"concurrency": limit * 2} if limit is not None else {"worker_concurrency": "more"}
            )
            out.append(
                Recommendation(
                    "queue_contention",
                    workflow,
                    f"runs of {workflow!r} wait {wait_p95:.3g} s at p95 before they start, "
                    f"longer than they take to run ({p50:.3g} s at p50): raise {where}",
                    suggestion,
                    {"queue_wait_p95_s": wait_p95, "duration_p50_s": p50, "runs": total},
                    weight=wait_p95 * total,
                )
            )
        seconds = sum(c.seconds for c in durations)
        if seconds > 0 and step_seconds.get(workflow):
            name, spent = max(step_seconds[workflow].items(), key=lambda kv: kv[1])
            share = spent / seconds
            if share >= DOMINANT_SHARE and len(step_seconds[workflow]) > 1:
                out.append(
                    Recommendation(
                        "dominant_step",
                        workflow,
                        f"step {name!r} takes {share:.0%} of the time of {workflow!r}: make it "
                        "faster (cache, batch, run parts in parallel) before anything else",
                        {"look_at": name},
                        {
                            "share": round(share, 4),
                            "step_p95_s": _p(step_counts[(workflow, name)], 95),
                            "run_p95_s": _p((c.counts for c in durations), 95),
                        },
                        name,
                        weight=spent,
                    )
                )
    return out


def schedule_advice(
    rec: ScheduleRecord, ticks: list[float], spans: list[RunSpan], now: float
) -> Recommendation | None:
    """``schedule_overlaps``: a schedule whose runs outlast the time between its ticks."""
    # By start only: runs claimed together start at the same instant (spans do not compare).
    started = sorted(
        ((s.started_at, s) for s in spans if s.started_at is not None), key=lambda pair: pair[0]
    )
    if len(started) < SCHEDULE_MIN_RUNS or len(ticks) < 2:
        return None
    interval = min(b - a for a, b in itertools.pairwise(ticks))
    durations = sorted(
        (s.completed_at if s.completed_at is not None else now) - begun for begun, s in started
    )
    overlapping = 0
    busy_until = -math.inf
    for begun, span in started:
        if begun < busy_until:
            overlapping += 1
        busy_until = max(busy_until, math.inf if span.completed_at is None else span.completed_at)
    running = sum(1 for _, s in started if s.completed_at is None)
    p50, p95 = _exact_p(durations, 50), _exact_p(durations, 95)
    if not overlapping and p95 < interval:
        return None
    after = max(1.0, math.ceil(interval - p50))
    every = math.ceil(p95 * SCHEDULE_MARGIN / 60) * 60
    return Recommendation(
        "schedule_overlaps",
        rec.workflow,
        f"schedule {rec.id!r} of {rec.workflow!r} fires every {interval:g} s but its runs "
        f"take {p95:.4g} s at p95 ({overlapping} of {len(started)} started while an earlier "
        f"one still ran): make it Schedule(after={after:g}) (the next run {after:g} s after "
        f"the previous ends, never two at once), or fire it at most every {every:g} s",
        {"schedule": rec.id, "after": after, "interval": every},
        {
            "schedule": rec.id,
            "kind": rec.kind,
            "spec": rec.spec,
            "interval_s": interval,
            "runs": len(started),
            "duration_p50_s": round(p50, 3),
            "duration_p95_s": round(p95, 3),
            "overlapping": overlapping,
            "running_now": running,
        },
        weight=float(overlapping) * interval + max(0.0, p95 - interval),
    )


def _exact_p(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` of sorted ``values``."""
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


async def schedules_advice(store: Store, since: float, until: float) -> list[Recommendation]:
    """Overlap recommendations of the cron and ``every`` schedules, from their runs of the
    latest ticks in ``[since, until]`` (found by the run ids ticks have, see
    :func:`~opsloom.model.schedule.tick_run_id`)."""
    out: list[Recommendation] = []
    for rec in await store.list_schedules():
        if rec.kind == "after":
            continue  # its runs never overlap
        first = max(since, rec.created_at)
        ticks = rec.schedule().latest_ticks(first, until, rec.anchor, SCHEDULE_TICKS)
        spans = await store.run_spans([tick_run_id(rec.id, t) for t in ticks])
        found = schedule_advice(rec, ticks, spans, until)
        if found is not None:
            out.append(found)
    return out


async def recommend(
    store: Store,
    periods: tuple[int, int, int],
    specs: Iterable[WorkflowSpec] = (),
    window: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """Recommendations from the rollups of ``periods`` (width, first, last), biggest first.

    ``specs``: the registered workflows (their latest version by name is compared).
    ``window``: (since, now), where the schedules' runs are read (default: the periods').
    """
    runs = await store.run_cells(*periods, "workflow")
    steps = await store.step_cells(*periods)
    failures = await store.failure_cells(*periods)
    latest = {spec.name: spec for spec in specs}
    width, first, last = periods
    since, now = window if window is not None else (float(first), float(last + width))
    found = (
        step_advice(steps, failures)
        + workflow_advice(runs, steps, latest)
        + await schedules_advice(store, since, now)
    )
    found.sort(key=lambda r: -r.weight)
    return [r.to_dict() for r in found]
