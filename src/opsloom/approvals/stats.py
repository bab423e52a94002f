"""Response-time evidence: how fast each stage of approvals gets decided.

Per stage name, over the stages that people or the SLA decided: the time from the stage
opening to its decision (p50 and p95, nearest-rank), the share decided by a person within the
SLA (no escalation, before the deadline, which moves on by the time spent waiting for the
requester's answers), and how many escalations there were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from opsloom.approvals.flow import SLA_ACTOR
from opsloom.model.approval import ApprovalStageRow, ApprovalState, StageStatus


def nearest_rank(values: list[float], percent: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class StageStats:
    """Response times of one stage name."""

    stage: str
    stages: int
    decided: int
    p50_seconds: float | None
    p95_seconds: float | None
    within_sla: float | None
    escalations: int

    def to_dict(self) -> dict[str, object]:
        """As JSON (``within_sla`` is a share between 0 and 1; None without an SLA'd stage)."""
        return {
            "stage": self.stage,
            "stages": self.stages,
            "decided": self.decided,
            "p50_seconds": self.p50_seconds,
            "p95_seconds": self.p95_seconds,
            "within_sla": self.within_sla,
            "escalations": self.escalations,
        }


def _in_time(stage: ApprovalStageRow) -> bool:
    if stage.decided_by == SLA_ACTOR or stage.escalations:
        return False
    return stage.deadline is None or (stage.decided_at or 0.0) <= stage.deadline


def stage_stats(states: list[ApprovalState]) -> list[StageStats]:
    """Statistics per stage name, sorted by name."""
    by_name: dict[str, list[ApprovalStageRow]] = {}
    for state in states:
        for stage in state.stages:
            if stage.opened_at is not None:
                by_name.setdefault(stage.name, []).append(stage)
    out: list[StageStats] = []
    for name in sorted(by_name):
        stages = by_name[name]
        decided = [
            s
            for s in stages
            if s.status in (StageStatus.APPROVED, StageStatus.DENIED) and s.decided_at is not None
        ]
        times = [(s.decided_at or 0.0) - (s.opened_at or 0.0) for s in decided]
        with_sla = [s for s in decided if s.sla is not None]
        out.append(
            StageStats(
                stage=name,
                stages=len(stages),
                decided=len(decided),
                p50_seconds=nearest_rank(times, 50),
                p95_seconds=nearest_rank(times, 95),
                within_sla=(
                    None
                    if not with_sla
                    else sum(1 for s in with_sla if _in_time(s)) / len(with_sla)
                ),
                escalations=sum(s.escalations for s in stages),
            )
        )
    return out
