"""Run analytics: how workflows and steps did over a window, computed from the store's history.

The figures come from the ``runs`` and ``steps`` tables on demand, with bounded queries: the
newest :data:`RUN_LIMIT` finished runs created in the window (a range of the runs' creation-time
index) and the steps of the newest runs, at most :data:`STEP_LIMIT`. A report says when it was
cut (``truncated``). Percentiles are nearest-rank. Failure reasons are grouped by error type and
a normalised message (numbers, hexadecimal ids and quoted values replaced), so that
``timeout after 31s`` and ``timeout after 30s`` count as one reason.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from opsloom.analytics.anomaly import detect
from opsloom.errors import InputError
from opsloom.store.base import Store
from opsloom.store.stats import FinishedRun, StepOutcome

#: Finished runs read per report, newest first.
RUN_LIMIT = 100_000
#: Steps read per report, of the newest runs first.
STEP_LIMIT = 200_000
#: Rows shown in "top" lists.
TOP = 10
REPORTS = ("summary", "workflows", "steps", "trends", "anomalies")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_NOISE = (
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<value>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b", re.I), "<id>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)


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


def normalise(message: str) -> str:
    """A message with its varying parts (numbers, ids, quoted values) replaced."""
    text = message.strip().splitlines()[0] if message.strip() else ""
    for pattern, placeholder in _NOISE:
        text = pattern.sub(placeholder, text)
    return text[:200]


def _durations(values: Iterable[float | None]) -> dict[str, float | None]:
    ordered = sorted(v for v in values if v is not None)
    return {f"p{q}": percentile(ordered, q) for q in (50, 95, 99)}


def _run_seconds(run: FinishedRun) -> float:
    begun = run.started_at if run.started_at is not None else run.created_at
    return max(0.0, run.completed_at - begun)


def _step_seconds(step: StepOutcome) -> float | None:
    if step.started_at is None or step.completed_at is None:
        return None
    return max(0.0, step.completed_at - step.started_at)


def _success(statuses: Counter[str]) -> float | None:
    total = sum(statuses.values())
    return None if total == 0 else round(statuses["completed"] / total, 4)


def _reason(error: Any) -> tuple[str, str]:
    if not isinstance(error, dict):
        return ("Error", "")
    return (str(error.get("type", "Error")), normalise(str(error.get("message", ""))))


def _reasons(reasons: Counter[tuple[str, str]], top: int) -> list[dict[str, Any]]:
    return [
        {"type": kind, "message": message, "count": count}
        for (kind, message), count in reasons.most_common(top)
    ]


@dataclass(frozen=True, slots=True)
class History:
    """The rows one report is computed from."""

    runs: list[FinishedRun]
    steps: list[StepOutcome]
    since: float
    until: float

    @property
    def truncated(self) -> bool:
        return len(self.runs) >= RUN_LIMIT or len(self.steps) >= STEP_LIMIT


async def load(store: Store, since: float, until: float, *, steps: bool = True) -> History:
    """Read the finished runs (and their steps) created in ``[since, until]``."""
    runs = [r for r in await store.finished_runs(since, RUN_LIMIT) if r.created_at <= until]
    outcomes = await store.step_outcomes(since, STEP_LIMIT) if steps else []
    return History(runs, outcomes, since, until)


def summary(history: History) -> dict[str, Any]:
    """Success rate, throughput, durations, queue wait, retries, failure reasons, bottlenecks."""
    runs = history.runs
    statuses = Counter(r.status for r in runs)
    hours = max(history.until - history.since, 1.0) / 3600
    reasons = Counter(_reason(r.error) for r in runs if r.status != "completed")
    attempted = [s for s in history.steps if s.status in ("completed", "failed")]
    retried = sum(1 for s in attempted if s.attempts > 1)
    step_rows = steps(history)
    return {
        "window": {"since": history.since, "until": history.until},
        "truncated": history.truncated,
        "runs": len(runs),
        "by_status": dict(sorted(statuses.items())),
        "success_rate": _success(statuses),
        "throughput_per_hour": round(len(runs) / hours, 3),
        "duration_s": _durations(_run_seconds(r) for r in runs),
        "queue_wait_s": _durations(
            None if r.started_at is None else max(0.0, r.started_at - r.created_at) for r in runs
        ),
        "retry_rate": None if not attempted else round(retried / len(attempted), 4),
        "failure_reasons": _reasons(reasons, TOP),
        "slowest_steps": sorted(step_rows, key=lambda s: -(s["duration_s"]["p95"] or 0.0))[:5],
        "most_failing_steps": [
            s for s in sorted(step_rows, key=lambda s: -s["failed"]) if s["failed"]
        ][:5],
    }


def workflows(history: History) -> list[dict[str, Any]]:
    """Per workflow and version: runs, outcomes, success rate and duration percentiles."""
    groups: dict[tuple[str, str], list[FinishedRun]] = defaultdict(list)
    for run in history.runs:
        groups[(run.workflow, run.version)].append(run)
    out = []
    for (workflow, version), runs in sorted(groups.items()):
        statuses = Counter(r.status for r in runs)
        out.append(
            {
                "workflow": workflow,
                "version": version,
                "runs": len(runs),
                "by_status": dict(sorted(statuses.items())),
                "success_rate": _success(statuses),
                "duration_s": _durations(_run_seconds(r) for r in runs),
            }
        )
    return out


def steps(history: History) -> list[dict[str, Any]]:
    """Per workflow and step: count, failures, retry rate, duration percentiles, top errors."""
    groups: dict[tuple[str, str], list[StepOutcome]] = defaultdict(list)
    for step in history.steps:
        groups[(step.workflow, step.name)].append(step)
    out = []
    for (workflow, name), rows in sorted(groups.items()):
        failed = [s for s in rows if s.status == "failed"]
        reasons = Counter(_reason(s.error) for s in failed)
        out.append(
            {
                "workflow": workflow,
                "step": name,
                "count": len(rows),
                "failed": len(failed),
                "retry_rate": round(sum(1 for s in rows if s.attempts > 1) / len(rows), 4),
                "duration_s": _durations(_step_seconds(s) for s in rows),
                "failure_reasons": _reasons(reasons, 3),
            }
        )
    return out


def trends(history: History, bucket: float) -> list[dict[str, Any]]:
    """Per time bucket (by end time): finished runs, success rate and p95 duration."""
    if bucket <= 0:
        raise InputError("--bucket must be positive")
    if (history.until - history.since) / bucket > 10_000:
        raise InputError("--bucket is too small for the window: more than 10,000 buckets")
    count = math.ceil((history.until - history.since) / bucket)
    groups: dict[int, list[FinishedRun]] = defaultdict(list)
    for run in history.runs:
        # The window's end belongs to its last bucket; runs that ended after it are left out.
        index = int((run.completed_at - history.since) // bucket)
        if run.completed_at <= history.until:
            groups[min(index, count - 1)].append(run)
    out = []
    for index in range(count):
        runs = groups.get(index, [])
        statuses = Counter(r.status for r in runs)
        out.append(
            {
                "start": history.since + index * bucket,
                "finished": len(runs),
                "by_status": dict(sorted(statuses.items())),
                "success_rate": _success(statuses),
                "duration_p95_s": _durations(_run_seconds(r) for r in runs)["p95"],
            }
        )
    return out


async def report(
    store: Store, what: str, now: float, since: float, bucket: float = 3600.0
) -> dict[str, Any] | list[dict[str, Any]]:
    """One report (``summary``, ``workflows``, ``steps``, ``trends`` or ``anomalies``) of the
    last ``since`` seconds before ``now``."""
    if what not in REPORTS:
        raise InputError(f"unknown report {what!r} (choose {', '.join(REPORTS)})")
    history = await load(store, now - since, now, steps=what in ("summary", "steps"))
    if what == "summary":
        return summary(history)
    if what == "workflows":
        return workflows(history)
    if what == "steps":
        return steps(history)
    if what == "anomalies":
        found = detect(history.runs, history.since, history.until, bucket)
        return [anomaly.to_dict() for anomaly in found]
    return trends(history, bucket)
