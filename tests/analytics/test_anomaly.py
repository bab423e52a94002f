"""The anomaly detector on hand-made histories: each regression found, a steady history quiet."""

from __future__ import annotations

from opsloom.analytics.anomaly import detect
from opsloom.store.stats import FinishedRun

HOUR = 3600.0
BUCKETS = 24


def hours(
    per_hour: list[int], seconds: list[float], failed: list[int], workflow: str = "wf"
) -> list[FinishedRun]:
    """Runs per bucket: ``per_hour[b]`` runs taking ``seconds[b]``, ``failed[b]`` of them failed."""
    runs = []
    for b, (n, took, bad) in enumerate(zip(per_hour, seconds, failed, strict=True)):
        for i in range(n):
            start = b * HOUR + i * (HOUR / (n + 1))
            # A little spread, the same in every bucket, so that the MAD is not zero.
            spread = took * (1 + 0.1 * ((i + b) % 3))
            status = "failed" if i < bad else "completed"
            runs.append(FinishedRun(workflow, "1", status, start, start, start + spread))
    return runs


def steady(**last: object) -> tuple[list[int], list[float], list[int]]:
    per_hour = [20 + (b % 3) for b in range(BUCKETS)]
    seconds = [1.0 + 0.05 * (b % 4) for b in range(BUCKETS)]
    failed = [b % 2 for b in range(BUCKETS)]
    if "per_hour" in last:
        per_hour[-1] = int(last["per_hour"])  # type: ignore[call-overload]
    if "seconds" in last:
        seconds[-1] = float(last["seconds"])  # type: ignore[arg-type]
    if "failed" in last:
        failed[-1] = int(last["failed"])  # type: ignore[call-overload]
    return per_hour, seconds, failed


def kinds(runs: list[FinishedRun]) -> list[str]:
    return [a.kind for a in detect(runs, 0.0, BUCKETS * HOUR, HOUR)]


def test_anomaly__a_steady_history_is_quiet() -> None:
    assert kinds(hours(*steady())) == []


def test_anomaly__duration_regression_with_its_evidence() -> None:
    [found] = detect(hours(*steady(seconds=4.0)), 0.0, BUCKETS * HOUR, HOUR)
    assert found.kind == "duration_regression"
    assert found.workflow == "wf" and found.bucket_start == (BUCKETS - 1) * HOUR
    assert found.value > 3 * found.baseline
    assert found.evidence["runs"] == 20 + (BUCKETS - 1) % 3


def test_anomaly__failure_rate_jump() -> None:
    assert kinds(hours(*steady(failed=8))) == ["failure_rate_jump"]


def test_anomaly__throughput_drop() -> None:
    assert kinds(hours(*steady(per_hour=3))) == ["throughput_drop"]


def test_anomaly__too_little_history_is_not_judged() -> None:
    per_hour, seconds, failed = steady(seconds=9.0)
    runs = hours(per_hour[-4:], seconds[-4:], failed[-4:])
    assert detect(runs, 0.0, 4 * HOUR, HOUR) == []
