"""Errors, with the names and fields of ``temporalio.exceptions``.

An :class:`ApplicationError` raised in an activity keeps its ``type``, ``non_retryable`` and
``details`` through the run's history (opsloom's ``error_data``), so the workflow sees the same
error as the ``cause`` of an :class:`ActivityError`, on the first execution and on replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from enum import IntEnum
from typing import Any


class TemporalError(Exception):
    """Root of the errors of this package."""


class FailureError(TemporalError):
    """An error that Temporal would carry as a failure: a message and an optional cause."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self._message = message
        self._cause = cause
        if cause is not None:
            self.__cause__ = cause

    @property
    def message(self) -> str:
        return self._message

    @property
    def cause(self) -> BaseException | None:
        return self._cause


class ApplicationError(FailureError):
    """An error raised by user code; ``non_retryable=True`` fails an activity at once."""

    def __init__(
        self,
        message: str,
        *details: Any,
        type: str | None = None,
        non_retryable: bool = False,
        next_retry_delay: timedelta | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, cause=cause)
        self._details = tuple(details)
        self._type = type
        self._non_retryable = non_retryable
        self._next_retry_delay = next_retry_delay

    @property
    def details(self) -> Sequence[Any]:
        return self._details

    @property
    def type(self) -> str | None:
        return self._type

    @property
    def non_retryable(self) -> bool:
        return self._non_retryable

    @property
    def next_retry_delay(self) -> timedelta | None:
        return self._next_retry_delay

    @property
    def retryable(self) -> bool:
        """What opsloom's retry policy reads."""
        return not self._non_retryable

    @property
    def retry_after(self) -> float | None:
        """What opsloom's retry policy reads for ``next_retry_delay``."""
        delay = self._next_retry_delay
        return None if delay is None else delay.total_seconds()

    @property
    def error_data(self) -> dict[str, Any]:
        """What opsloom records with the error, to rebuild it in the workflow."""
        return {
            "temporal": {
                "type": self._type,
                "non_retryable": self._non_retryable,
                "details": list(self._details),
            }
        }


class CancelledError(FailureError):
    """Cancellation, as a failure (a cancelled child workflow, a cancelled run's result)."""

    def __init__(self, message: str = "Cancelled", *details: Any) -> None:
        super().__init__(message)
        self.details = tuple(details)


class TerminatedError(FailureError):
    """The workflow was terminated."""


class TimeoutType(IntEnum):
    START_TO_CLOSE = 1
    SCHEDULE_TO_START = 2
    SCHEDULE_TO_CLOSE = 3
    HEARTBEAT = 4


class TimeoutError(FailureError):
    """An activity or workflow ran out of time; ``type`` says which timeout."""

    def __init__(
        self, message: str, *, type: TimeoutType | None, last_heartbeat_details: Sequence[Any] = ()
    ) -> None:
        super().__init__(message)
        self._type = type
        self._last_heartbeat_details = tuple(last_heartbeat_details)

    @property
    def type(self) -> TimeoutType | None:
        return self._type

    @property
    def last_heartbeat_details(self) -> Sequence[Any]:
        return self._last_heartbeat_details

    @property
    def retryable(self) -> bool:
        # Like Temporal: an attempt's timeout is retried, the whole activity's is final.
        return self._type in (TimeoutType.START_TO_CLOSE, TimeoutType.HEARTBEAT)

    @property
    def error_data(self) -> dict[str, Any]:
        return {"temporal": {"timeout": None if self._type is None else self._type.name}}


class RetryState(IntEnum):
    UNSPECIFIED = 0
    IN_PROGRESS = 1
    NON_RETRYABLE_FAILURE = 2
    TIMEOUT = 3
    MAXIMUM_ATTEMPTS_REACHED = 4
    RETRY_POLICY_NOT_SET = 5
    INTERNAL_SERVER_ERROR = 6
    CANCEL_REQUESTED = 7


class ActivityError(FailureError):
    """An activity failed for good; the reason is its ``cause``."""

    def __init__(
        self,
        message: str,
        *,
        scheduled_event_id: int,
        started_event_id: int,
        identity: str,
        activity_type: str,
        activity_id: str,
        retry_state: RetryState | None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, cause=cause)
        self.scheduled_event_id = scheduled_event_id
        self.started_event_id = started_event_id
        self.identity = identity
        self.activity_type = activity_type
        self.activity_id = activity_id
        self.retry_state = retry_state


class ChildWorkflowError(FailureError):
    """A child workflow did not complete; the reason is its ``cause``."""

    def __init__(
        self,
        message: str,
        *,
        namespace: str,
        workflow_id: str,
        run_id: str,
        workflow_type: str,
        initiated_event_id: int,
        started_event_id: int,
        retry_state: RetryState | None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, cause=cause)
        self.namespace = namespace
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.workflow_type = workflow_type
        self.initiated_event_id = initiated_event_id
        self.started_event_id = started_event_id
        self.retry_state = retry_state


class WorkflowAlreadyStartedError(FailureError):
    """A workflow with this id was started before (an opsloom run id is never reused)."""

    def __init__(self, workflow_id: str, workflow_type: str, *, run_id: str | None = None):
        super().__init__("Workflow execution already started")
        self.workflow_id = workflow_id
        self.workflow_type = workflow_type
        self.run_id = run_id


def failure_from(error: dict[str, Any] | None) -> FailureError:
    """The Temporal-style error an opsloom error record stands for."""
    error = error or {}
    kind = str(error.get("type", "Error"))
    message = str(error.get("message", ""))
    data = error.get("data") or {}
    extra = data.get("temporal") if isinstance(data, dict) else None
    extra = extra if isinstance(extra, dict) else {}
    if kind == "StepTimeoutError":
        return TimeoutError("activity StartToClose timeout", type=TimeoutType.START_TO_CLOSE)
    if "timeout" in extra:
        name = extra.get("timeout")
        return TimeoutError(message, type=TimeoutType[name] if name else None)
    if kind in ("RunCancelledError", "CancelledError") and not extra:
        return CancelledError(message or "Cancelled")
    if kind == "ApplicationError" and extra:
        return ApplicationError(
            message,
            *list(extra.get("details") or ()),
            type=extra.get("type"),
            non_retryable=bool(extra.get("non_retryable")),
        )
    # Like Temporal: any other exception is an application error typed by its class name.
    return ApplicationError(message, type=kind)
