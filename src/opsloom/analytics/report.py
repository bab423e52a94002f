"""Run analytics: how workflows and steps did over a window, read from the store's rollups.

Runs are added to hourly and daily rollups as they finish (see :mod:`opsloom.store.rollup`), so
a report reads a few rows per workflow and period, whatever the history holds, and stays right
after retention has pruned the runs themselves. A window is rounded out to whole hours of
completion (``--since 1h`` at 10:30 covers the runs that finished from 09:00), and a window of
more than two days to whole days (UTC). Percentiles come from the rollups' duration histograms:
within 10 % of the exact figure. Failure reasons are grouped by error
type and a normalised message (numbers, hexadecimal ids and quoted values replaced), so that
``timeout after 31s`` and ``timeout after 30s`` count as one reason.

Trends and anomalies in buckets shorter than the rollups' period read the finished runs of the
window instead (the newest :data:`RUN_LIMIT`).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsloom.analytics.anomaly import Bucket, detect, judge
from opsloom.analytics.recommend import recommend
from opsloom.engine.registry import WorkflowSpec
from opsloom.errors import InputError
from opsloom.store.base import Store
from opsloom.store.rollup import (
    DAY,
    HOUR,
    FailureCell,
    RunCell,
    StepCell,
    bucket_percentile,
    merge,
    normalise,
)
from opsloom.store.stats import FinishedRun

__all__ = ["REPORTS", "normalise", "parse_span", "percentile", "report"]

#: Finished runs read for a trend or anomaly report in sub-hour buckets, newest first.
RUN_LIMIT = 100_000
#: Rows shown in "top" lists.
TOP = 10
REPORTS = ("summary", "workflows", "steps", "trends", "anomalies", "recommend")
_QUANTILES = (50, 95, 99)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_span(text: str, what: str = "--since") -> float:
    """Seconds in ``30m``, ``1h``, ``7d``, ``2w`` (``InputError`` naming ``what`` otherwise)."""
    match = _SPAN.match(text)
    if match is None or float(match[1]) <= 0:
        raise InputError(f"{what} must be a positive duration like 30m, 1h, 7d or 2w, not {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of sorted values; None when there are none."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 6)


def _exact(values: Iterable[float | None]) -> dict[str, float | None]:
    ordered = sorted(v for v in values if v is not None)
    return {f"p{q}": percentile(ordered, q) for q in _QUANTILES}


def _estimated(histograms: Sequence[Sequence[int]]) -> dict[str, float | None]:
    counts = merge(histograms)
    return {f"p{q}": bucket_percentile(counts, q) for q in _QUANTILES}


def _success(statuses: Counter[str]) -> float | None:
    total = sum(statuses.values())
    return None if total == 0 else round(statuses["completed"] / total, 4)


@dataclass(slots=True)
class _Runs:
    """The run cells of one group, added up."""

    statuses: Counter[str] = field(default_factory=Counter)
    durations: list[Sequence[int]] = field(default_factory=list)
    waits: list[Sequence[int]] = field(default_factory=list)
    #: The p95 duration when it is known without the histograms (one summarised hour).
    p95: float | None = None

    def duration_p95(self) -> float | None:
        if self.p95 is not None:
            return self.p95
        return bucket_percentile(merge(self.durations), 95)

    def add(self, cell: RunCell) -> None:
        if cell.measure != "duration":
            self.waits.append(cell.counts)
            return
        if cell.status:
            self.statuses[cell.status] += cell.runs
        if cell.counts:
            self.durations.append(cell.counts)

    def absorb(self, other: _Runs) -> None:
        self.statuses.update(other.statuses)
        self.durations.extend(other.durations)

    @property
    def runs(self) -> int:
        return sum(self.statuses.values())


def _group(cells: Iterable[RunCell]) -> dict[tuple[Any, ...], _Runs]:
    groups: dict[tuple[Any, ...], _Runs] = defaultdict(_Runs)
    for cell in cells:
        groups[cell.key].add(cell)
    return groups


def _reasons(cells: Iterable[FailureCell], top: int) -> list[dict[str, Any]]:
    # Reasons rolled up before messages were normalised (an upgrade's backfill) merge here.
    counts: Counter[tuple[str, str]] = Counter()
    for cell in cells:
        counts[(cell.type, normalise(cell.message))] += cell.failures
    return [
        {"type": kind, "message": message, "count": count}
        for (kind, message), count in counts.most_common(top)
    ]


@dataclass(frozen=True, slots=True)
class Window:
    """A report's window: as asked (``since``, ``until``) and as whole periods of rollups."""

    since: float
    until: float

    @property
    def width(self) -> int:
        """Rollups read: daily ones for windows of more than two days, else hourly."""
        return DAY if self.until - self.since > 2 * DAY else HOUR

    @property
    def first(self) -> int:
        return int(self.since // self.width) * self.width

    @property
    def last(self) -> int:
        return int(self.until // self.width) * self.width

    @property
    def periods(self) -> tuple[int, int, int]:
        return self.width, self.first, self.last

    def to_dict(self) -> dict[str, float]:
        return {"since": self.since, "until": self.until}


def _step_rows(cells: list[StepCell], failures: list[FailureCell]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[StepCell]] = defaultdict(list)
    for cell in cells:
        groups[(cell.workflow, cell.step)].append(cell)
    reasons: dict[tuple[str, str], list[FailureCell]] = defaultdict(list)
    for failure in failures:
        if failure.step:
            reasons[(failure.workflow, failure.step)].append(failure)
    out = []
    for (workflow, name), rows in sorted(groups.items()):
        count = sum(c.steps for c in rows)
        out.append(
            {
                "workflow": workflow,
                "step": name,
                "count": count,
                "failed": sum(c.steps for c in rows if c.status == "failed"),
                "retry_rate": round(sum(c.retried for c in rows) / count, 4) if count else None,
                "duration_s": _estimated([c.counts for c in rows]),
                "failure_reasons": _reasons(reasons[(workflow, name)], 3),
            }
        )
    return out


async def summary(store: Store, window: Window) -> dict[str, Any]:
    """Success rate, throughput, durations, queue wait, retries, failure reasons, bottlenecks."""
    total = _group(await store.run_cells(*window.periods, "all")).get((), _Runs())
    step_cells = await store.step_cells(*window.periods)
    failures = await store.failure_cells(*window.periods)
    step_rows = _step_rows(step_cells, failures)
    attempted = sum(c.steps for c in step_cells)
    hours = max(window.until - window.since, 1.0) / 3600
    return {
        "window": window.to_dict(),
        "runs": total.runs,
        "by_status": dict(sorted(total.statuses.items())),
        "success_rate": _success(total.statuses),
        "throughput_per_hour": round(total.runs / hours, 3),
        "duration_s": _estimated(total.durations),
        "queue_wait_s": _estimated(total.waits),
        "retry_rate": (
            None if not attempted else round(sum(c.retried for c in step_cells) / attempted, 4)
        ),
        "failure_reasons": _reasons((f for f in failures if not f.step), TOP),
        "slowest_steps": sorted(step_rows, key=lambda s: -(s["duration_s"]["p95"] or 0.0))[:5],
        "most_failing_steps": [
            s for s in sorted(step_rows, key=lambda s: -s["failed"]) if s["failed"]
        ][:5],
    }


async def workflows(store: Store, window: Window) -> list[dict[str, Any]]:
    """Per workflow and version: runs, outcomes, success rate and duration percentiles."""
    groups = _group(await store.run_cells(*window.periods, "workflow"))
    return [
        {
            "workflow": workflow,
            "version": version,
            "runs": runs.runs,
            "by_status": dict(sorted(runs.statuses.items())),
            "success_rate": _success(runs.statuses),
            "duration_s": _estimated(runs.durations),
        }
        for (workflow, version), runs in sorted(groups.items())
        if runs.runs
    ]


async def steps(store: Store, window: Window) -> list[dict[str, Any]]:
    """Per workflow and step: count, failures, retry rate, duration percentiles, top errors."""
    periods = window.periods
    return _step_rows(await store.step_cells(*periods), await store.failure_cells(*periods))


def _periods(window: Window, bucket: float) -> tuple[int, int, int] | None:
    """(rollup width, periods per bucket, first period) for whole buckets of rollups that end
    with the window's last period; None when the bucket is shorter than an hour or not made of
    whole hours."""
    for width in (DAY, HOUR):
        per = bucket / width
        if per >= 1 and per == int(per):
            last = int(window.until // width) * width
            count = math.ceil((last - int(window.since // width) * width + width) / bucket)
            return width, int(per), last + width - count * int(bucket)
    return None


async def _duration_cells(
    store: Store, width: int, first: int, last: int, by: str
) -> list[RunCell]:
    """Counts by status, and one duration histogram per group (statuses added up): a period's
    trend needs no histogram per status, and reading fewer of them is most of the cost."""
    counts = await store.run_cells(width, first, last, by, measure="duration", histogram=False)
    spread = await store.run_cells(width, first, last, by, measure="duration", by_status=False)
    return counts + spread


async def _hourly(
    store: Store, window: Window, bucket: float, by: str
) -> tuple[int, int, dict[tuple[Any, ...], list[_Runs]]] | None:
    """Hourly buckets of runs from the hour summaries, which keep them fast over days: ``(first
    bucket start, bucket count, buckets by key)``, the key ``()`` (``by="start"``) or the
    workflow's; None when the buckets are not whole hours. The newest bucket ends with the
    window's hour."""
    shape = _periods(window, bucket)
    if shape is None or shape[0] != HOUR:
        return None
    _, per, first = shape
    last = int(window.until // HOUR) * HOUR
    count = (last - first) // (HOUR * per) + 1
    every = by == "start"
    out: dict[tuple[Any, ...], list[_Runs]] = {}
    for summary in await store.hour_summaries(first, last, window.until, every=every):
        key = () if every else (summary.workflow,)
        cells = out.get(key)
        if cells is None:
            cells = out[key] = [_Runs() for _ in range(count)]
        cell = cells[(summary.start - first) // (HOUR * per)]
        if every:
            cell.statuses.update(summary.statuses())
        else:
            cell.statuses["completed"] += summary.completed
            cell.statuses["other"] += summary.runs - summary.completed
        if not summary.runs:
            continue
        if per == 1:  # one hour per bucket: its p95 is the summary's, no histogram is read
            cell.p95 = summary.p95
        else:
            cell.durations.append(summary.counts())
    return first, count, out


async def trends(store: Store, window: Window, bucket: float) -> list[dict[str, Any]]:
    """Per time bucket (by end time): finished runs, success rate and p95 duration."""
    shape = _periods(window, bucket)
    if shape is None:
        return _raw_trends(await _finished_runs(store, window), window, bucket)
    width, per, first = shape
    hourly = await _hourly(store, window, bucket, "start")
    if hourly is not None:
        first, count, found = hourly
        cells = found.get((), [_Runs() for _ in range(count)])
    else:
        last = int(window.until // width) * width
        by_start = _group(await _duration_cells(store, width, first, last, "start"))
        cells = [_Runs() for _ in range((last - first) // (width * per) + 1)]
        for (start,), runs in by_start.items():
            cells[(int(start) - first) // (width * per)].absorb(runs)
    return [
        {
            "start": float(first + index * width * per),
            "finished": runs.runs,
            "by_status": dict(sorted(runs.statuses.items())),
            "success_rate": _success(runs.statuses),
            "duration_p95_s": runs.duration_p95(),
        }
        for index, runs in enumerate(cells)
    ]


async def anomalies(store: Store, window: Window, bucket: float) -> list[dict[str, Any]]:
    """Workflows whose newest bucket breaks from their own baseline."""
    shape = _periods(window, bucket)
    if shape is None:
        found = detect(await _finished_runs(store, window), window.since, window.until, bucket)
        return [anomaly.to_dict() for anomaly in found]
    # The newest bucket judged is the last one that has ended: the one going on is not whole.
    ended = Window(window.since, int(window.until // shape[0]) * shape[0] - 1.0)
    width, per, first = _periods(ended, bucket) or shape
    if width == HOUR and per == 1:
        return await _hourly_anomalies(store, ended, first)
    hourly = await _hourly(store, ended, bucket, "workflow")
    merged: dict[str, list[_Runs]]
    if hourly is not None:
        first, count, by_workflow = hourly
        merged = {str(key[0]): cells for key, cells in by_workflow.items()}
    else:
        last = int(ended.until // width) * width
        count = (last - first) // (width * per) + 1
        groups = _group(await _duration_cells(store, width, first, last, "workflow_start"))
        merged = defaultdict(lambda: [_Runs() for _ in range(count)])
        for (workflow, start), runs in groups.items():
            merged[workflow][(int(start) - first) // (width * per)].absorb(runs)
    series = {
        workflow: [
            Bucket(
                finished=r.runs,
                failed=r.runs - r.statuses["completed"],
                p95=r.duration_p95() if r.runs else None,
            )
            for r in cells
        ]
        for workflow, cells in merged.items()
    }
    start = float(first + (count - 1) * width * per)
    return [anomaly.to_dict() for anomaly in judge(series, start)]


async def _hourly_anomalies(store: Store, ended: Window, first: int) -> list[dict[str, Any]]:
    """Anomalies in one-hour buckets: each bucket is one summarised hour, as it is stored."""
    last = int(ended.until // HOUR) * HOUR
    count = (last - first) // HOUR + 1
    series: dict[str, list[Bucket]] = defaultdict(lambda: [Bucket() for _ in range(count)])
    for summary in await store.hour_summaries(first, last, ended.until, every=False, light=True):
        cell = series[summary.workflow][(summary.start - first) // HOUR]
        cell.finished = summary.runs
        cell.failed = summary.runs - summary.completed
        cell.p95 = summary.p95 if summary.runs else None
    return [anomaly.to_dict() for anomaly in judge(series, float(last))]


async def _finished_runs(store: Store, window: Window) -> list[FinishedRun]:
    runs = await store.finished_runs(window.since, RUN_LIMIT)
    return [r for r in runs if r.created_at <= window.until]


def _raw_trends(runs: list[FinishedRun], window: Window, bucket: float) -> list[dict[str, Any]]:
    count = math.ceil((window.until - window.since) / bucket)
    groups: dict[int, list[FinishedRun]] = defaultdict(list)
    for run in runs:
        # The window's end belongs to its last bucket; runs that ended after it are left out.
        index = int((run.completed_at - window.since) // bucket)
        if run.completed_at <= window.until:
            groups[min(index, count - 1)].append(run)
    out = []
    for index in range(count):
        members = groups.get(index, [])
        statuses = Counter(r.status for r in members)
        durations = (max(0.0, r.completed_at - (r.started_at or r.created_at)) for r in members)
        out.append(
            {
                "start": window.since + index * bucket,
                "finished": len(members),
                "by_status": dict(sorted(statuses.items())),
                "success_rate": _success(statuses),
                "duration_p95_s": _exact(durations)["p95"],
            }
        )
    return out


async def report(
    store: Store,
    what: str,
    now: float,
    since: float,
    bucket: float = 3600.0,
    specs: Iterable[WorkflowSpec] = (),
) -> dict[str, Any] | list[dict[str, Any]]:
    """One report (``summary``, ``workflows``, ``steps``, ``trends``, ``anomalies`` or
    ``recommend``) of the last ``since`` seconds before ``now``; ``specs``, the registered
    workflows, let recommendations compare timeouts and limits with what runs did."""
    if what not in REPORTS:
        raise InputError(f"unknown report {what!r} (choose {', '.join(REPORTS)})")
    if bucket <= 0:
        raise InputError("--bucket must be positive")
    if since / bucket > 10_000:
        raise InputError("--bucket is too small for the window: more than 10,000 buckets")
    window = Window(now - since, now)
    if what == "summary":
        return await summary(store, window)
    if what == "workflows":
        return await workflows(store, window)
    if what == "steps":
        return await steps(store, window)
    if what == "anomalies":
        return await anomalies(store, window, bucket)
    if what == "recommend":
        return await recommend(store, window.periods, specs, (window.since, window.until))
    return await trends(store, window, bucket)
