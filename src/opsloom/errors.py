"""The whole opsloom exception tree.

Every error carries a stable ``code`` (used by the API's problem+json answers and by ``--json``
CLI output) and a ``retryable`` flag that tells the engine whether trying again may help.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsloom.expr.diagnostic import Problem


class OpsloomError(Exception):
    """Root of every error raised by opsloom itself."""

    code: str = "opsloom_error"
    retryable: bool = False


# --- configuration and input -------------------------------------------------------------


class ConfigurationError(OpsloomError):
    """A setting, URL or option is invalid."""

    code = "configuration_error"


class InputError(OpsloomError):
    """Input given by a caller cannot be accepted (e.g. it is not JSON-serialisable)."""

    code = "invalid_input"


class SerializationError(OpsloomError):
    """A value that must be stored is not JSON-serialisable."""

    code = "not_serialisable"


class WorkflowNotFoundError(OpsloomError):
    """No workflow (or workflow version) with that name is registered."""

    code = "workflow_not_found"


class RunNotFoundError(OpsloomError):
    """No run with that id exists."""

    code = "run_not_found"


class ScheduleNotFoundError(OpsloomError):
    """No schedule with that id exists."""

    code = "schedule_not_found"


class DeadLetterNotFoundError(OpsloomError):
    """No dead letter with that id exists."""

    code = "dead_letter_not_found"


class DeadLetterStateError(OpsloomError):
    """The dead letter cannot be replayed (replayed already, or it would fail again)."""

    code = "invalid_dead_letter_state"


class RunStateError(OpsloomError):
    """The run is not in a state that allows the requested operation."""

    code = "invalid_run_state"


class RateLimitExceededError(OpsloomError):
    """A start was refused: its workflow's rate limit drops starts past it (``overflow``)."""

    code = "rate_limit_exceeded"
    retryable = True


class DocumentError(OpsloomError):
    """A workflow document cannot be read or is not valid; ``problems`` lists every finding.

    ``problems`` holds :class:`~opsloom.dsl.document.Problem` objects (source, line, column,
    JSON pointer, message); ``str()`` of the error lists them all, one per line.
    """

    code = "invalid_document"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"invalid workflow document ({count} problem{'s' if count != 1 else ''})"
        super().__init__("\n".join([head, *(str(problem) for problem in self.problems)]))


class OverloadedError(OpsloomError):
    """Too much work is waiting to be stored: try again shortly."""

    code = "overloaded"
    retryable = True

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- store ---------------------------------------------------------------------------------


class StoreError(OpsloomError):
    """The store failed or holds something it cannot use."""

    code = "store_error"
    retryable = True


class NotAnOpsloomDatabaseError(StoreError):
    """The database file exists but was not created by opsloom (or is not a database at all)."""

    code = "not_an_opsloom_database"
    retryable = False


class SchemaTooNewError(StoreError):
    """The database was written by a newer opsloom whose schema this version does not know."""

    code = "schema_too_new"
    retryable = False


class LeaseLostError(StoreError):
    """A write was fenced off: this worker no longer holds the run's lease."""

    code = "lease_lost"
    retryable = False


# --- workflow execution --------------------------------------------------------------------


class NonDeterminismError(OpsloomError):
    """A replay took another path than the recorded history."""

    code = "non_determinism"

    def __init__(self, message: str, *, seq: int, expected: str, got: str) -> None:
        super().__init__(message)
        self.seq = seq
        self.expected = expected
        self.got = got


class StepFailedError(OpsloomError):
    """A step failed for good (non-retryable error or attempts exhausted).

    Workflow code sees this same error on the first execution and on every replay, so a
    ``try/except`` around ``ctx.step`` behaves deterministically.
    """

    code = "step_failed"

    def __init__(
        self,
        step: str,
        seq: int,
        error_type: str,
        message: str,
        traceback: str = "",
        attempts: int = 1,
        data: dict[str, object] | None = None,
    ) -> None:
        super().__init__(
            f"step {step!r} (#{seq}) failed after {attempts} attempt(s): {error_type}: {message}"
        )
        self.step = step
        self.seq = seq
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
        self.attempts = attempts
        #: What the step's exception carried in its ``error_data`` mapping, as recorded.
        self.data = data or {}


class StepTimeoutError(OpsloomError):
    """A step attempt ran longer than its timeout."""

    code = "step_timeout"
    retryable = True


class WaitTimeoutError(OpsloomError):
    """``wait_for`` gave up: no signal arrived before its timeout."""

    code = "wait_timeout"


class ChildFailedError(OpsloomError):
    """A child run ended in another status than ``completed``."""

    code = "child_failed"

    def __init__(self, run_id: str, status: str, error: dict[str, object] | None) -> None:
        detail = ""
        if error:
            detail = f": {error.get('type', 'Error')}: {error.get('message', '')}"
        super().__init__(f"child run {run_id!r} ended {status}{detail}")
        self.run_id = run_id
        self.status = status
        self.error = error or {}


class RunFailedError(OpsloomError):
    """Raised by ``RunHandle.result()`` when the run did not complete."""

    code = "run_failed"

    def __init__(self, run_id: str, status: str, error: dict[str, object] | None) -> None:
        detail = ""
        if error:
            detail = f": {error.get('type', 'Error')}: {error.get('message', '')}"
        super().__init__(f"run {run_id!r} ended {status}{detail}")
        self.run_id = run_id
        self.status = status
        self.error = error or {}


class RunTimeoutError(OpsloomError):
    """A run went past its deadline."""

    code = "run_timeout"


class RunCancelledError(OpsloomError):
    """The run was cancelled."""

    code = "run_cancelled"


# --- connectors ----------------------------------------------------------------------------


class ConnectorError(OpsloomError):
    """A connector action failed; ``retryable`` says whether trying again may help.

    Messages never hold a connection's secrets: the connector runtime redacts them before the
    error leaves the action, so what the store records as the step's error is safe to show.

    Attributes:
        status: the HTTP status the remote answered, if any.
        retry_after: seconds the remote (or the circuit breaker, or the rate limit) asked to
            wait; the engine's retry honours it.
    """

    code = "connector_error"

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ConnectorRetryableError(ConnectorError):
    """A failure that may pass: HTTP 429 or 5xx, a refused or reset connection, a timeout."""

    code = "connector_unavailable"
    retryable = True


class ConnectorPermanentError(ConnectorError):
    """A failure that trying again will not fix: a 4xx answer other than 429, bad input."""

    code = "connector_rejected"


class RateLimitedError(ConnectorRetryableError):
    """The remote or the connection's own rate limit refused the call for now."""

    code = "rate_limited"


class CircuitOpenError(ConnectorRetryableError):
    """The connection's circuit breaker is open: the call was not made.

    ``retry_after`` is the time until the breaker lets a trial call through, so a durable retry
    waits exactly that long without holding a worker slot.
    """

    code = "circuit_open"


class ConnectorNotFoundError(OpsloomError):
    """No connector (or action) with that name is registered."""

    code = "connector_not_found"


class ConnectionNotFoundError(OpsloomError):
    """No connection with that name is stored."""

    code = "connection_not_found"


class SecretKeyError(ConfigurationError):
    """The key that encrypts connection secrets is missing, unreadable or wrong."""

    code = "secret_key_error"


class QueryError(OpsloomError):
    """A query or update cannot be answered: the run has no such handler, or its replay failed."""

    code = "query_failed"


class UpdateRejectedError(OpsloomError):
    """An update's validator refused it; nothing was stored in the run."""

    code = "update_rejected"


class UpdateFailedError(OpsloomError):
    """An update was taken by its run and its handler raised (or the run ended first)."""

    code = "update_failed"

    def __init__(self, run_id: str, update: str, error: dict[str, object] | None) -> None:
        error = error or {}
        super().__init__(
            f"update {update!r} of run {run_id} failed: "
            f"{error.get('type', 'Error')}: {error.get('message', '')}"
        )
        self.run_id = run_id
        self.update = update
        self.error = error


class UpdatePendingError(OpsloomError):
    """An update was stored but its run has not handled it within the time waited for it."""

    code = "update_pending"
    retryable = True
