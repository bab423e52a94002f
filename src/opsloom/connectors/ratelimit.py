"""Per-connection rate limit: a token bucket, so bursts pass and the average is held.

A connection's ``rate_limit`` setting (``{"rate": 1, "burst": 5}``: one call per second on
average, five at once) stops a workflow fan-out from hammering a vendor into 429s. The bucket
lives in the process: with several workers each holds its own share, which keeps a decision
free of any store round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class RateLimit(BaseModel):
    """Calls per second on average (``rate``) and at most at once (``burst``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)


@dataclass(slots=True)
class TokenBucket:
    """Tokens refill at ``limit.rate`` per second up to ``limit.burst``; a call takes one."""

    limit: RateLimit
    tokens: float = 0.0
    updated: float = 0.0
    primed: bool = False

    def take(self, now: float, max_wait: float = 0.0) -> tuple[float, bool]:
        """Take a token for a call at ``now``.

        Returns:
            ``(wait, granted)``: ``(0.0, True)`` when a token was there; ``(wait, True)`` when
            one is reserved ``wait`` seconds ahead (at most ``max_wait``: sleep, then call);
            ``(wait, False)`` when none is to be had within ``max_wait`` (nothing is taken, so
            coming back after ``wait`` is fair).
        """
        if not self.primed:
            self.tokens, self.updated, self.primed = float(self.limit.burst), now, True
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0, True
        wait = (1.0 - self.tokens) / self.limit.rate
        if wait <= max_wait:
            self.tokens -= 1.0  # reserved: the next caller waits behind this one
            return wait, True
        return wait, False
