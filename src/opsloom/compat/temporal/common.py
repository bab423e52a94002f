"""Shared types: the retry policy of activities, as in ``temporalio.common``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum

from opsloom.model import RetryPolicy as OpsloomRetryPolicy

#: Temporal's ``maximum_attempts=0`` means no limit; opsloom counts attempts, so "no limit"
#: is this many (an activity retried every 100 s for 6,800 years).
UNLIMITED_ATTEMPTS = 2**31 - 1


@dataclass
class RetryPolicy:
    """How an activity is retried (the fields and defaults of Temporal's ``RetryPolicy``).

    Args:
        initial_interval: delay before the first retry.
        backoff_coefficient: factor applied to the delay after each retry.
        maximum_interval: ceiling of the delay (default: 100 times ``initial_interval``).
        maximum_attempts: attempts in all, the first included; 0 means unlimited.
        non_retryable_error_types: ``ApplicationError.type`` values (for other exceptions,
            their class name) that fail the activity at once.
    """

    initial_interval: timedelta = timedelta(seconds=1)
    backoff_coefficient: float = 2.0
    maximum_interval: timedelta | None = None
    maximum_attempts: int = 0
    non_retryable_error_types: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.maximum_attempts < 0:
            raise ValueError("RetryPolicy.maximum_attempts must not be negative")
        if self.backoff_coefficient < 1:
            raise ValueError("RetryPolicy.backoff_coefficient must be at least 1")
        if self.initial_interval.total_seconds() <= 0:
            raise ValueError("RetryPolicy.initial_interval must be positive")

    def to_opsloom(self) -> OpsloomRetryPolicy:
        """The same schedule as opsloom's step retry policy (no jitter, as in Temporal)."""
        initial = self.initial_interval.total_seconds()
        ceiling = (
            self.maximum_interval.total_seconds()
            if self.maximum_interval is not None
            else 100 * initial
        )
        return OpsloomRetryPolicy(
            attempts=self.maximum_attempts or UNLIMITED_ATTEMPTS,
            initial_delay=initial,
            backoff=self.backoff_coefficient,
            max_delay=max(ceiling, initial),
            jitter=0.0,
            non_retryable=tuple(self.non_retryable_error_types or ()),
            honour_retry_after=False,
        )


class WorkflowIDReusePolicy(IntEnum):
    """Accepted for source compatibility; an opsloom run id is never reused."""

    UNSPECIFIED = 0
    ALLOW_DUPLICATE = 1
    ALLOW_DUPLICATE_FAILED_ONLY = 2
    REJECT_DUPLICATE = 3
    TERMINATE_IF_RUNNING = 4
