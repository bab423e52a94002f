"""Circuit breaker of one connection: stop calling an endpoint that is down, try again later.

States::

    closed --(N consecutive failures, or failure rate over a window)--> open
    open   --(cooldown elapsed)--> half_open
    half_open --(M consecutive successes)--> closed
    half_open --(any failure)--> open (a new cooldown)

The state machine is pure: :meth:`Breaker.allow` and :meth:`Breaker.record` take ``now`` and
return what changed, and never do I/O, so a decision costs no store round trip. The runtime
writes each *transition* to the store in the background and reads other workers' transitions
on an interval (:meth:`Breaker.adopt`), which is how every worker shares one breaker and how it
survives a restart.

Only failures that say something about the endpoint count: a refused connection, a timeout, a
5xx. A 4xx answer is the caller's mistake, and a 429 is the remote's rate limit, not an outage.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class BreakerState(enum.StrEnum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerPolicy(BaseModel):
    """When a connection's breaker opens and how it recovers (a connection's ``breaker`` setting).

    Attributes:
        failures: consecutive failures that open it.
        failure_rate: share of failed calls in the last ``window`` seconds that opens it
            (once at least ``min_calls`` calls were made in that window); 1.0 turns it off.
        window: seconds of history the failure rate looks at.
        min_calls: calls in the window before the failure rate counts.
        cooldown: seconds open before a trial call is let through.
        successes: consecutive successful trial calls that close it.
        half_open_calls: trial calls allowed at once while half open.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    failures: int = Field(default=5, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    window: float = Field(default=60.0, gt=0)
    min_calls: int = Field(default=20, ge=1)
    cooldown: float = Field(default=30.0, gt=0)
    successes: int = Field(default=2, ge=1)
    half_open_calls: int = Field(default=1, ge=1)


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """What the store keeps of a breaker: enough to resume it elsewhere."""

    connection: str
    state: BreakerState
    opened_at: float | None
    reopen_at: float | None
    failures: int
    changed_at: float


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, to persist and announce."""

    connection: str
    before: BreakerState
    after: BreakerState
    at: float
    reason: str


@dataclass(slots=True)
class Breaker:
    """The breaker of one connection (see the module docstring)."""

    connection: str
    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    opened_at: float | None = None
    reopen_at: float | None = None
    changed_at: float = 0.0
    trials: int = 0
    _calls: deque[tuple[float, bool]] = field(default_factory=deque)

    def allow(self, now: float) -> tuple[float | None, Transition | None]:
        """Whether a call may go now.

        Returns:
            ``(None, transition)`` when it may (the transition is open → half-open, if this
            call is the first trial), or ``(seconds, None)``: how long until a trial may go.
        """
        if self.state is BreakerState.CLOSED:
            return None, None
        if self.state is BreakerState.OPEN:
            assert self.reopen_at is not None
            if now < self.reopen_at:
                return self.reopen_at - now, None
            change = self._move(BreakerState.HALF_OPEN, now, "cooldown elapsed")
            self.trials = 1
            return None, change
        if self.trials >= self.policy.half_open_calls:
            # Another trial is under way: come back after one more cooldown at most.
            return self.policy.cooldown, None
        self.trials += 1
        return None, None

    def record(self, ok: bool, now: float) -> Transition | None:
        """Count the outcome of an allowed call; the transition it caused, if any."""
        if self.state is BreakerState.HALF_OPEN:
            self.trials = max(0, self.trials - 1)
            if not ok:
                return self._open(now, "a trial call failed")
            self.consecutive_successes += 1
            if self.consecutive_successes >= self.policy.successes:
                return self._move(BreakerState.CLOSED, now, "trial calls succeeded")
            return None
        if self.state is BreakerState.OPEN:
            # A call allowed before another worker's opening was adopted: nothing to learn.
            return None
        calls = self._calls
        calls.append((now, ok))
        horizon = now - self.policy.window
        while calls and calls[0][0] < horizon:
            calls.popleft()
        if ok:
            self.consecutive_failures = 0
            return None
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.policy.failures:
            return self._open(now, f"{self.consecutive_failures} consecutive failures")
        if self.policy.failure_rate < 1 and len(calls) >= self.policy.min_calls:
            failed = sum(1 for _, good in calls if not good)
            if failed / len(calls) >= self.policy.failure_rate:
                return self._open(
                    now, f"{failed} of {len(calls)} calls failed in {self.policy.window:g}s"
                )
        return None

    def snapshot(self) -> BreakerSnapshot:
        """The persistent part of the state."""
        return BreakerSnapshot(
            self.connection,
            self.state,
            self.opened_at,
            self.reopen_at,
            self.consecutive_failures,
            self.changed_at,
        )

    def adopt(self, snap: BreakerSnapshot) -> bool:
        """Take over a state another worker stored, when it is newer than ours."""
        if snap.changed_at <= self.changed_at or snap.state is self.state:
            if snap.changed_at > self.changed_at:
                self.changed_at = snap.changed_at
            return False
        self.state = snap.state
        self.opened_at = snap.opened_at
        self.reopen_at = snap.reopen_at
        self.consecutive_failures = snap.failures
        self.consecutive_successes = 0
        self.changed_at = snap.changed_at
        self.trials = 0
        self._calls.clear()
        return True

    def _open(self, now: float, reason: str) -> Transition:
        self.opened_at = now
        self.reopen_at = now + self.policy.cooldown
        return self._move(BreakerState.OPEN, now, reason)

    def _move(self, state: BreakerState, now: float, reason: str) -> Transition:
        before = self.state
        self.state = state
        self.changed_at = now
        self.consecutive_successes = 0
        if state is BreakerState.CLOSED:
            self.consecutive_failures = 0
            self.opened_at = self.reopen_at = None
            self._calls.clear()
        if state is not BreakerState.HALF_OPEN:
            self.trials = 0
        return Transition(self.connection, before, state, now, reason)
