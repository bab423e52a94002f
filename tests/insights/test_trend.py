"""Trends: windows by dimension, Wilson intervals, anomalies, and the CLI over results."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_insights_cli import opsloom

from opsloom.insights.trend import Trends, wilson


def result(model: str, started: datetime, flags: list[str], satisfaction: float) -> dict[str, Any]:
    return {
        "conversation": {
            "id": "x",
            "model": model,
            "tags": ["t"],
            "started_at": started.isoformat(),
        },
        "scores": {"satisfaction": {"value": satisfaction, "method": "m", "confidence": 1.0}},
        "flags": [{"code": c, "severity": "high", "turns": [0], "evidence": ""} for c in flags],
        "attention": {"needed": bool(flags), "priority": None, "reasons": []},
    }


def test_wilson__known_interval() -> None:
    low, high = wilson(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-3)
    assert high == pytest.approx(0.1744, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def test_rows__counts_quantiles_and_rates_per_day_and_model() -> None:
    day = datetime(2026, 12, 1, 12, tzinfo=UTC)
    table = Trends("day", "model")
    for n in range(10):
        table.add(result("gpt-a", day, ["user_frustrated"] if n < 3 else [], n / 10))
    table.add(result("gpt-b", day + timedelta(days=1), [], 1.0))
    rows = list(table.rows())
    assert [(r["window"][:10], r["value"], r["conversations"]) for r in rows] == [
        ("2026-12-01", "gpt-a", 10),
        ("2026-12-02", "gpt-b", 1),
    ]
    first = rows[0]
    assert first["flags"]["user_frustrated"]["rate"] == 0.3
    assert (
        first["flags"]["user_frustrated"]["low"] < 0.3 < first["flags"]["user_frustrated"]["high"]
    )
    assert first["scores"]["satisfaction"]["p50"] == 0.5
    assert first["attention"]["count"] == 3


def test_anomalies__rate_jump_over_baseline_only() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    table = Trends("day", "model")
    for day in range(5):
        for n in range(40):
            # 5 % refusals for four days, then 60 % on the last day.
            rate = 0.6 if day == 4 else 0.05
            flags = ["assistant_refusal"] if n < rate * 40 else []
            flags += ["user_frustrated"] if n % 10 == 0 else []  # steady 10 %
            table.add(result("gpt-a", start + timedelta(days=day), flags, 0.8))
    [anomaly] = table.anomalies()
    assert (anomaly["flag"], anomaly["value"]) == ("assistant_refusal", "gpt-a")
    assert anomaly["rate"]["rate"] == 0.6
    assert anomaly["baseline"]["rate"] == 0.05


def test_anomalies__too_few_conversations_say_nothing() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    table = Trends("hour", "model")
    table.add(result("m", start, [], 0.9))
    table.add(result("m", start + timedelta(hours=1), ["assistant_refusal"], 0.2))
    assert table.anomalies() == []


def test_cli__trends_over_results_file(tmp_path: Path) -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    lines = [result("gpt-a", start, ["pii_leak"], 0.5), result("gpt-a", start, [], 0.9)]
    file = tmp_path / "results.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in lines))
    done = opsloom("insights", "trends", "--results", str(file), "--by", "tag", "--json")
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)["rows"]
    assert (row["value"], row["conversations"], row["flags"]["pii_leak"]["count"]) == ("t", 2, 1)
    bad = opsloom("insights", "trends", "--results", str(file), "--by", "colour")
    assert bad.returncode == 2
