"""Anomalies: a workflow's latest bucket measured against its own recent baseline.

For each workflow the finished runs of a window are cut into buckets (see
:func:`opsloom.analytics.report.trends`); the newest complete bucket is compared with the ones
before it on three series: p95 duration (a regression), failure rate (a jump) and finished runs
(a throughput drop). The baseline is an exponentially weighted moving average of the earlier
buckets; the scale is their median absolute deviation (robust to the odd spike), with a floor so
that a perfectly steady history does not make every wobble an anomaly. A bucket is anomalous
when it lies more than ``threshold`` scales from the baseline in the bad direction.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opsloom.store.stats import FinishedRun

#: Weight of the newest bucket in the moving average.
ALPHA = 0.3
#: Earlier buckets needed before a series is judged.
MIN_HISTORY = 6


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One series of one workflow out of line in the newest bucket, with the numbers."""

    kind: str  # duration_regression | failure_rate_jump | throughput_drop
    workflow: str
    bucket_start: float
    value: float
    baseline: float
    score: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "workflow": self.workflow,
            "bucket_start": self.bucket_start,
            "value": round(self.value, 6),
            "baseline": round(self.baseline, 6),
            "score": round(self.score, 2),
            "evidence": self.evidence,
        }


def robust_score(history: Sequence[float], value: float, floor: float) -> tuple[float, float]:
    """(baseline, score): EWMA of ``history`` and how many robust scales ``value`` is above it."""
    baseline = history[0]
    for point in history[1:]:
        baseline = ALPHA * point + (1 - ALPHA) * baseline
    median = statistics.median(history)
    mad = statistics.median(abs(p - median) for p in history) * 1.4826
    scale = max(mad, floor, 0.1 * abs(median), 1e-9)
    return baseline, (value - baseline) / scale


@dataclass(slots=True)
class Bucket:
    """What one workflow did in one bucket of time: finished and failed runs, p95 duration."""

    finished: int = 0
    failed: int = 0
    p95: float | None = None
    durations: list[float] = field(default_factory=list)

    def settle(self) -> Bucket:
        """Compute ``p95`` from the collected ``durations`` (nearest rank), if any."""
        if self.durations:
            ordered = sorted(self.durations)
            self.p95 = ordered[max(0, -(-95 * len(ordered) // 100) - 1)]
        return self


def detect(
    runs: Sequence[FinishedRun],
    since: float,
    until: float,
    bucket: float,
    threshold: float = 4.0,
) -> list[Anomaly]:
    """Anomalies of the newest bucket of ``[since, until)``, per workflow, from single runs."""
    count = int((until - since) // bucket)
    if count < MIN_HISTORY + 1:
        return []
    series: dict[str, list[Bucket]] = defaultdict(lambda: [Bucket() for _ in range(count)])
    for run in runs:
        index = int((run.completed_at - since) // bucket)
        if not 0 <= index < count:
            continue
        cell = series[run.workflow][index]
        cell.finished += 1
        cell.failed += run.status != "completed"
        begun = run.started_at if run.started_at is not None else run.created_at
        cell.durations.append(max(0.0, run.completed_at - begun))
    for cells in series.values():
        for cell in cells:
            cell.settle()
    return judge(series, since + (count - 1) * bucket, threshold)


def judge(series: dict[str, list[Bucket]], start: float, threshold: float = 4.0) -> list[Anomaly]:
    """Anomalies of each workflow's last bucket (which begins at ``start``) against the
    buckets before it."""
    found: list[Anomaly] = []
    for workflow, cells in sorted(series.items()):
        if len(cells) < MIN_HISTORY + 1:
            continue
        *past, last = cells
        found.extend(_judge(workflow, past, last, start, threshold))
    return found


def _judge(
    workflow: str, past: list[Bucket], last: Bucket, start: float, threshold: float
) -> list[Anomaly]:
    out: list[Anomaly] = []
    durations = [b.p95 for b in past if b.p95 is not None]
    if len(durations) >= MIN_HISTORY and last.p95 is not None:
        baseline, score = robust_score(durations, last.p95, 0.0)
        if score > threshold:
            evidence = {"p95_s": last.p95, "runs": last.finished}
            out.append(
                Anomaly("duration_regression", workflow, start, last.p95, baseline, score, evidence)
            )
    rates = [b.failed / b.finished for b in past if b.finished]
    if len(rates) >= MIN_HISTORY and last.finished:
        rate = last.failed / last.finished
        baseline, score = robust_score(rates, rate, 0.02)
        if score > threshold and last.failed >= 3:
            evidence = {"failed": last.failed, "runs": last.finished}
            out.append(
                Anomaly("failure_rate_jump", workflow, start, rate, baseline, score, evidence)
            )
    counts = [float(b.finished) for b in past]
    if sum(1 for c in counts if c) >= MIN_HISTORY:
        baseline, score = robust_score(counts, float(last.finished), 1.0)
        # Counts are noisy (Poisson on top of the hour's own swing): a drop must also be large,
        # below 40 % of the baseline, and then half the usual distance is enough.
        if -score > threshold / 2 and last.finished <= 0.4 * baseline and baseline >= 5:
            evidence = {"runs": last.finished}
            out.append(
                Anomaly(
                    "throughput_drop",
                    workflow,
                    start,
                    float(last.finished),
                    baseline,
                    -score,
                    evidence,
                )
            )
    return out
