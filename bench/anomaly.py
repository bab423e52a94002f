"""Anomaly detection on synthetic histories: precision and recall against injected regressions.

``--workflows`` workflows each get ``--buckets`` hourly buckets of runs (about 20 per hour,
log-normal durations around 1 s, 2 % failures, all with day-to-day noise). Half of them get
one regression in their newest bucket (p95 duration times 3, failure rate 30 %, or throughput
divided by 5), and the detector of :mod:`opsloom.analytics.anomaly` judges every workflow.
Prints one JSON line: precision and recall (targets 0.9 / 0.9), and the counts behind them::

    .venv/bin/python bench/anomaly.py --seed 1
"""

from __future__ import annotations

import argparse
import json
import random

from opsloom.analytics.anomaly import detect
from opsloom.store.stats import FinishedRun

KINDS = ("duration_regression", "failure_rate_jump", "throughput_drop")


def history(
    rng: random.Random, workflow: str, buckets: int, inject: str | None
) -> list[FinishedRun]:
    runs: list[FinishedRun] = []
    level = rng.uniform(0.5, 2.0)  # each workflow its own typical duration
    for b in range(buckets):
        last = b == buckets - 1
        rate = 20 * rng.uniform(0.8, 1.2)
        if last and inject == "throughput_drop":
            rate /= 5
        fail = 0.3 if last and inject == "failure_rate_jump" else 0.02
        slow = 3.0 if last and inject == "duration_regression" else 1.0
        for _ in range(max(0, round(rng.gauss(rate, rate**0.5)))):
            start = b * 3600 + rng.uniform(0, 3500)
            took = level * slow * rng.lognormvariate(0, 0.25)
            status = "failed" if rng.random() < fail else "completed"
            runs.append(FinishedRun(workflow, "1", status, start, start, start + took))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--buckets", type=int, default=48)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    runs: list[FinishedRun] = []
    injected: dict[str, str] = {}
    for i in range(args.workflows):
        kind = KINDS[i % 3] if i % 2 == 0 else None
        if kind is not None:
            injected[f"wf{i}"] = kind
        runs.extend(history(rng, f"wf{i}", args.buckets, kind))
    found = detect(runs, 0.0, args.buckets * 3600.0, 3600.0)
    flagged = {(a.workflow, a.kind) for a in found}
    true_positive = sum(1 for pair in flagged if injected.get(pair[0]) == pair[1])
    precision = true_positive / len(flagged) if flagged else 1.0
    recall = true_positive / len(injected) if injected else 1.0
    print(
        json.dumps(
            {
                "workflows": args.workflows,
                "injected": len(injected),
                "flagged": len(flagged),
                "true_positive": true_positive,
                "precision": round(precision, 3),
                "recall": round(recall, 3),
                "target": 0.9,
                "met": precision >= 0.9 and recall >= 0.9,
            }
        )
    )


if __name__ == "__main__":
    main()
