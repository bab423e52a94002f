"""Trends over analysed conversations: windows by a dimension, and flag-rate anomalies.

Each analysed conversation falls in a time window (hour or day, by when it started, else when
it was analysed) and under one value of a dimension (``model``, ``prompt_version``, ``app``, or
each of its ``tag``s). Per window and value: the number of conversations, quantiles of every
score, and the rate of each flag and of attention with a Wilson 95 % interval (honest for
small counts, unlike a bare percentage).

Anomaly: in the latest window, a flag rate whose Wilson interval lies wholly above the
interval of the same value's earlier windows pooled (its baseline), with enough conversations
on both sides to say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Window = Literal["hour", "day"]
DIMENSIONS: tuple[str, ...] = ("model", "prompt_version", "app", "tag")
_Z = 1.96
#: Conversations a window (and its baseline) needs before a rate jump counts as an anomaly.
MIN_CONVERSATIONS = 20


def wilson(hits: int, total: int) -> tuple[float, float]:
    """Wilson score interval (95 %) of the proportion ``hits/total``."""
    if total == 0:
        return 0.0, 1.0
    p = hits / total
    denominator = 1 + _Z * _Z / total
    centre = (p + _Z * _Z / (2 * total)) / denominator
    half = _Z * math.sqrt(p * (1 - p) / total + _Z * _Z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

    return {
        "p10": at(0.1),
        "p50": at(0.5),
        "p90": at(0.9),
        "mean": round(sum(ordered) / len(ordered), 4),
    }


@dataclass(slots=True)
class _Bucket:
    conversations: int = 0
    attention: int = 0
    scores: dict[str, list[float]] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)

    def add(self, result: dict[str, Any]) -> None:
        self.conversations += 1
        self.attention += bool(result["attention"]["needed"])
        for name, score in result["scores"].items():
            self.scores.setdefault(name, []).append(score["value"])
        for code in {f["code"] for f in result["flags"]}:
            self.flags[code] = self.flags.get(code, 0) + 1


def window_start(moment: datetime, window: Window) -> datetime:
    """The start of the window holding ``moment`` (UTC)."""
    moment = moment.astimezone(UTC)
    if window == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _values(result: dict[str, Any], dimension: str) -> list[str]:
    conversation = result["conversation"]
    if dimension == "tag":
        return [str(t) for t in conversation.get("tags") or []] or ["(none)"]
    value = conversation.get(dimension)
    return [str(value) if value is not None else "(none)"]


def _rate(hits: int, total: int) -> dict[str, Any]:
    low, high = wilson(hits, total)
    return {
        "count": hits,
        "rate": round(hits / total, 4),
        "low": round(low, 4),
        "high": round(high, 4),
    }


class Trends:
    """Accumulates results per window and dimension value (score values kept for quantiles)."""

    def __init__(self, window: Window = "day", dimension: str = "model") -> None:
        if dimension not in DIMENSIONS:
            raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}, not {dimension!r}")
        self.window = window
        self.dimension = dimension
        self._buckets: dict[tuple[datetime, str], _Bucket] = {}

    def add(self, result: dict[str, Any], analysed_at: datetime | None = None) -> None:
        """Count one result, placed by its conversation's start (else ``analysed_at``)."""
        started = result["conversation"].get("started_at")
        moment = datetime.fromisoformat(started) if started else analysed_at
        if moment is None:
            return
        start = window_start(moment, self.window)
        for value in _values(result, self.dimension):
            self._buckets.setdefault((start, value), _Bucket()).add(result)

    def extend(self, results: Iterable[tuple[dict[str, Any], datetime | None]]) -> Trends:
        """Count many ``(result, analysed_at)`` pairs; returns self."""
        for result, moment in results:
            self.add(result, moment)
        return self

    def rows(self) -> Iterator[dict[str, Any]]:
        """One row per window and value, oldest window first."""
        for (start, value), bucket in sorted(self._buckets.items()):
            n = bucket.conversations
            yield {
                "window": start.isoformat(),
                "dimension": self.dimension,
                "value": value,
                "conversations": n,
                "attention": _rate(bucket.attention, n),
                "scores": {k: _quantiles(v) for k, v in sorted(bucket.scores.items())},
                "flags": {k: _rate(c, n) for k, c in sorted(bucket.flags.items())},
            }

    def anomalies(self, min_conversations: int = MIN_CONVERSATIONS) -> list[dict[str, Any]]:
        """Flag rates of the latest window that jumped over their baseline."""
        if not self._buckets:
            return []
        latest = max(start for start, _ in self._buckets)
        found: list[dict[str, Any]] = []
        for value in sorted({v for s, v in self._buckets if s == latest}):
            current = self._buckets[(latest, value)]
            earlier = [b for (s, v), b in self._buckets.items() if v == value and s < latest]
            base_n = sum(b.conversations for b in earlier)
            if current.conversations < min_conversations or base_n < min_conversations:
                continue
            for code, hits in sorted(current.flags.items()):
                base_hits = sum(b.flags.get(code, 0) for b in earlier)
                low, _ = wilson(hits, current.conversations)
                _, base_high = wilson(base_hits, base_n)
                if low > base_high:
                    found.append(
                        {
                            "window": latest.isoformat(),
                            "dimension": self.dimension,
                            "value": value,
                            "flag": code,
                            "rate": _rate(hits, current.conversations),
                            "baseline": _rate(base_hits, base_n),
                        }
                    )
        return found
