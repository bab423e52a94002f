"""Pure types of opsloom: runs, steps, statuses, retry policies. No I/O here."""

from opsloom.model.retry import RetryPolicy
from opsloom.model.run import (
    ErrorInfo,
    RunRecord,
    RunStatus,
    SignalRecord,
    StepKind,
    StepRecord,
    StepStatus,
)

__all__ = [
    "ErrorInfo",
    "RetryPolicy",
    "RunRecord",
    "RunStatus",
    "SignalRecord",
    "StepKind",
    "StepRecord",
    "StepStatus",
]
