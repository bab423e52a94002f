"""Per-connection rate limit: a token bucket, so bursts pass and the average is held.

A connection's ``rate_limit`` setting (``{"rate": 1, "burst": 5}``: one call per second on
average, five at once) stops a workflow fan-out from hammering a vendor into 429s. The bucket
lives in the process: with several workers each holds its own share, which keeps a decision
free of any store round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    tokens: float = field(default=-1.0)
    updated: float = 0.0

    def take(self, now: float) -> float:
        """Take a token: 0.0 when one was there, else the seconds until one will be.

        A refused call takes nothing, so waiting and calling again is fair.
        """
        if self.tokens < 0:
            self.tokens, self.updated = float(self.limit.burst), now
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.limit.rate
