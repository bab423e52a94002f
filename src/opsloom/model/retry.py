"""Retry policies: how many attempts a step gets and how long to wait between them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per-step retry policy.

    Args:
        attempts: total tries, the first included (1 means no retry).
        initial_delay: seconds before the second attempt.
        backoff: factor applied to the delay after each failed attempt.
        max_delay: ceiling of any delay, jitter included.
        jitter: fraction of the delay that is randomised downwards (0 = exact delays).
        non_retryable: exception type names (``"ValueError"``) or classes that fail at once.
        honour_retry_after: use an error's ``retry_after`` seconds (e.g. from an HTTP
            ``Retry-After`` header) when it is longer than the computed delay.
        max_total: seconds from the start of the first attempt after which no attempt starts
            (a retry that would start later is not made): retries are bounded in time as
            well as in number, whatever delays a remote asks for.
    """

    attempts: int = 3
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.1
    non_retryable: tuple[type[BaseException] | str, ...] = field(default_factory=tuple)
    honour_retry_after: bool = True
    max_total: float = 3600.0

    def __post_init__(self) -> None:
        if not self.max_total > 0:
            raise ValueError("RetryPolicy.max_total must be positive (seconds)")
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must not be negative")
        if self.backoff < 1:
            raise ValueError("RetryPolicy.backoff must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("RetryPolicy.jitter must be between 0 and 1")

    def base_delay(self, attempt: int) -> float:
        """Delay after failed attempt number ``attempt`` (1-based), before jitter."""
        # Cap the exponent so huge attempt counts cannot overflow a float.
        exponent = min(attempt - 1, 64)
        return min(self.max_delay, self.initial_delay * self.backoff**exponent)

    def delay(self, attempt: int, rand: float, retry_after: float | None = None) -> float:
        """Delay after failed attempt ``attempt`` given a uniform random number in [0, 1)."""
        value = self.base_delay(attempt) * (1.0 - self.jitter * rand)
        if self.honour_retry_after and retry_after is not None and retry_after > value:
            value = retry_after
        return min(value, self.max_delay) if retry_after is None else value

    def in_time(self, first_started: float, next_start: float) -> bool:
        """Whether an attempt starting at ``next_start`` is within ``max_total`` of the first."""
        return next_start - first_started <= self.max_total

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` may be retried under this policy (attempts aside)."""
        if getattr(exc, "retryable", True) is False:
            return False
        for entry in self.non_retryable:
            if isinstance(entry, str):
                if any(
                    cls.__name__ == entry or f"{cls.__module__}.{cls.__qualname__}" == entry
                    for cls in type(exc).__mro__
                ):
                    return False
            elif isinstance(exc, entry):
                return False
        return True


NO_RETRY = RetryPolicy(attempts=1)
