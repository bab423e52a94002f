"""opsloom: durable, event-driven workflow automation for operations teams."""

from opsloom.app import App, RunHandle
from opsloom.clock import Clock, FakeClock, SystemClock
from opsloom.engine.context import Context, StepInfo, current_step
from opsloom.errors import (
    ChildFailedError,
    InputError,
    LeaseLostError,
    NonDeterminismError,
    NotAnOpsloomDatabaseError,
    OpsloomError,
    RateLimitExceededError,
    RunFailedError,
    RunNotFoundError,
    SchemaTooNewError,
    StepFailedError,
    StepTimeoutError,
    WaitTimeoutError,
    WorkflowNotFoundError,
)
from opsloom.model import RetryPolicy, RunRecord, RunStatus
from opsloom.model.ratelimit import RateLimit
from opsloom.worker import WorkerOptions

__all__ = [
    "App",
    "ChildFailedError",
    "Clock",
    "Context",
    "FakeClock",
    "InputError",
    "LeaseLostError",
    "NonDeterminismError",
    "NotAnOpsloomDatabaseError",
    "OpsloomError",
    "RateLimit",
    "RateLimitExceededError",
    "RetryPolicy",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "SchemaTooNewError",
    "StepFailedError",
    "StepInfo",
    "StepTimeoutError",
    "SystemClock",
    "WaitTimeoutError",
    "WorkerOptions",
    "WorkflowNotFoundError",
    "current_step",
]
