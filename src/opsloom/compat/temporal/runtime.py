"""What a Temporal-style workflow or activity runs with: the current run, activities as steps.

Workflow code reaches its run through a context variable set by the runner (see
:mod:`~opsloom.compat.temporal.runner`); gather branches inherit it, an activity attempt puts its
own state in its place (so an ``asyncio.sleep`` in an activity is a real sleep, in a workflow a
durable timer).

An activity call is one opsloom step: its name is the activity's name, its retry policy and
timeout come from the call's options, and its attempts are the step's attempts.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import inspect
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opsloom.clock import Clock
from opsloom.compat.temporal.common import RetryPolicy
from opsloom.compat.temporal.converter import SCALARS, converts, return_hint, to_json
from opsloom.compat.temporal.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
    failure_from,
)
from opsloom.engine import Context, StepInfo, current_step
from opsloom.engine.context import running_step
from opsloom.engine.registry import StepSpec, make_step_spec
from opsloom.errors import StepFailedError

DEFAULT_RETRY = RetryPolicy()
_ACTIVITY_ATTR = "__temporal_activity_definition__"


@dataclass(frozen=True, slots=True)
class ActivityDefinition:
    """An activity function and its name (``@activity.defn(name=...)``)."""

    fn: Callable[..., Any]
    name: str


def activity_definition(fn: Any) -> ActivityDefinition:
    """The definition of a decorated activity, or one named after a plain function."""
    found = getattr(fn, _ACTIVITY_ATTR, None)
    if isinstance(found, ActivityDefinition):
        return found
    if not callable(fn):
        raise TypeError(f"an activity must be a function or its name, not {fn!r}")
    return ActivityDefinition(fn, getattr(fn, "__name__", repr(fn)))


def mark_activity(fn: Callable[..., Any], name: str | None) -> None:
    setattr(fn, _ACTIVITY_ATTR, ActivityDefinition(fn, name or fn.__name__))


class Runtime:
    """What the Temporal-style workflows of one app share.

    Attributes:
        activities: activities by name, for calls that name them by string.
        heartbeats: the last heartbeat details of each activity, by its step's idempotency
            key; the next attempt reads them (kept in this process).
        runners: the opsloom workflow function of each registered workflow type.
        specs: the step of each activity under each set of options it was called with.
        calls: what an ``execute_activity`` call resolves to, by the activity and the options
            as given, so that a call made again (every call of a loop, every run of a
            workflow) finds its step at once.
    """

    def __init__(self) -> None:
        self.specs: dict[tuple[Any, ...], StepSpec] = {}
        self.calls: dict[tuple[Any, ...], ActivityCall] = {}
        self.activities: dict[str, ActivityDefinition] = {}
        self.heartbeats: dict[str, tuple[Any, ...]] = {}
        self.runners: dict[str, Callable[..., Any]] = {}

    def add_activity(self, fn: Callable[..., Any]) -> None:
        definition = activity_definition(fn)
        self.activities[definition.name] = definition

    def activity_call(
        self,
        activity: Any,
        start_to_close_timeout: timedelta | None,
        schedule_to_close_timeout: timedelta | None,
        heartbeat_timeout: timedelta | None,
        retry_policy: RetryPolicy | None,
    ) -> ActivityCall:
        """The definition, options, step and result hint of one activity call."""
        key: tuple[Any, ...] | None = (
            activity,
            start_to_close_timeout,
            schedule_to_close_timeout,
            heartbeat_timeout,
            None if retry_policy is None else _retry_key(retry_policy),
        )
        try:
            found = self.calls.get(key)  # type: ignore[arg-type]
        except TypeError:  # an unhashable activity object: no caching
            found, key = None, None
        if found is not None:
            # Still what the name or the function stands for (a worker may register another
            # activity under a name; a function may be declared again under another name)?
            known = (
                self.activities.get(activity)
                if isinstance(activity, str)
                else getattr(activity, _ACTIVITY_ATTR, found.definition)
            )
            if known is found.definition:
                return found
        definition = self.resolve(activity)
        options = ActivityOptions.of(
            start_to_close_timeout, schedule_to_close_timeout, heartbeat_timeout, retry_policy
        )
        hint = return_hint(definition.fn)
        found = ActivityCall(
            definition,
            options,
            activity_spec(self, definition, options),
            hint if converts(hint) else None,
            options.timed,
        )
        if key is not None:
            self.calls[key] = found
        return found

    def resolve(self, activity: Any) -> ActivityDefinition:
        if isinstance(activity, str):
            found = self.activities.get(activity)
            if found is None:
                known = ", ".join(sorted(self.activities)) or "none"
                raise ApplicationError(
                    f"unknown activity {activity!r} (registered: {known})", non_retryable=True
                )
            return found
        return activity_definition(activity)


@dataclass(slots=True)
class WorkflowState:
    """The workflow execution the current code belongs to."""

    ctx: Context
    runtime: Runtime
    clock: Clock
    workflow_id: str
    workflow_type: str
    task_queue: str
    parent_id: str | None
    continued_run_id: str | None
    instance: Any = None
    rng: random.Random | None = None


#: The workflow execution the current code belongs to. Code inside one of its activities sees it
#: too, and tells itself apart by the step it runs in (``running_step``): an activity attempt is
#: a step whose ``StepInfo.entered`` is its :class:`ActivityState`, so entering one changes no
#: context variable but the engine's own.
running: contextvars.ContextVar[WorkflowState | None] = contextvars.ContextVar(
    "temporal_running", default=None
)


def current_workflow() -> WorkflowState:
    state = running.get()
    if state is None or running_step.get() is not None:
        raise RuntimeError("not in a workflow: this function is for workflow code")
    return state


def in_workflow() -> bool:
    return running.get() is not None and running_step.get() is None


@dataclass(frozen=True, slots=True)
class ActivityInfo:
    """The running activity, as ``temporalio.activity.Info`` tells it."""

    activity_id: str
    activity_type: str
    attempt: int
    workflow_id: str
    workflow_run_id: str
    workflow_type: str
    task_queue: str
    heartbeat_details: tuple[Any, ...]
    heartbeat_timeout: timedelta | None
    start_to_close_timeout: timedelta | None
    schedule_to_close_timeout: timedelta | None
    scheduled_time: datetime
    started_time: datetime
    is_local: bool = False
    workflow_namespace: str = "default"


class ActivityState:
    """The running activity: what ``activity.info()`` and ``activity.heartbeat()`` use.

    Its :class:`ActivityInfo` is built when first asked for (most activities never ask).
    """

    __slots__ = (
        "_info",
        "_step",
        "definition",
        "last_beat",
        "options",
        "started",
        "state",
    )

    def __init__(
        self,
        state: WorkflowState,
        definition: ActivityDefinition,
        options: ActivityOptions,
        now: float,
    ) -> None:
        self.state = state
        self.definition = definition
        self.options = options
        self.started = self.last_beat = now
        self._step: StepInfo | None = None
        self._info: ActivityInfo | None = None

    @property
    def step(self) -> StepInfo:
        """The step attempt this activity is (read when first needed: few activities ask)."""
        if self._step is None:
            self._step = current_step()
        return self._step

    @property
    def runtime(self) -> Runtime:
        return self.state.runtime

    @property
    def key(self) -> str:
        """The step's idempotency key: what the heartbeat details are kept under."""
        return self.step.idempotency_key

    @property
    def info(self) -> ActivityInfo:
        if self._info is None:
            state, step, options = self.state, self.step, self.options
            started = datetime.fromtimestamp(self.started, tz=UTC)
            self._info = ActivityInfo(
                activity_id=str(step.seq),
                activity_type=self.definition.name,
                attempt=step.attempt,
                workflow_id=state.workflow_id,
                workflow_run_id=state.ctx.run_id,
                workflow_type=state.workflow_type,
                task_queue=state.task_queue,
                heartbeat_details=state.runtime.heartbeats.get(self.key, ()),
                heartbeat_timeout=_delta(options.heartbeat),
                start_to_close_timeout=_delta(options.start_to_close),
                schedule_to_close_timeout=_delta(options.schedule_to_close),
                scheduled_time=started,
                started_time=started,
            )
        return self._info

    def beat(self, details: tuple[Any, ...]) -> None:
        self.runtime.heartbeats[self.key] = details
        self.last_beat = self.state.clock.now()


def current_activity() -> ActivityState:
    step = running_step.get()
    state = None if step is None else step.entered
    if state.__class__ is not ActivityState:
        raise RuntimeError("not in an activity: this function is for activity code")
    return state


def in_activity() -> bool:
    step = running_step.get()
    return step is not None and step.entered.__class__ is ActivityState


@dataclass(frozen=True, slots=True)
class ActivityOptions:
    """The options of one activity call that shape its step."""

    start_to_close: float | None
    schedule_to_close: float | None
    heartbeat: float | None
    retry: RetryPolicy

    @classmethod
    def of(
        cls,
        start_to_close_timeout: timedelta | None,
        schedule_to_close_timeout: timedelta | None,
        heartbeat_timeout: timedelta | None,
        retry_policy: RetryPolicy | None,
    ) -> ActivityOptions:
        if start_to_close_timeout is None and schedule_to_close_timeout is None:
            raise ValueError(
                "an activity needs start_to_close_timeout or schedule_to_close_timeout"
            )
        return cls(
            _seconds(start_to_close_timeout),
            _seconds(schedule_to_close_timeout),
            _seconds(heartbeat_timeout),
            retry_policy or DEFAULT_RETRY,
        )

    @property
    def timed(self) -> bool:
        """Whether the activity's step keeps the time itself: a deadline across attempts or a
        heartbeat timeout (a start-to-close limit alone is the step's timeout)."""
        return self.schedule_to_close is not None or self.heartbeat is not None

    def key(self) -> tuple[Any, ...]:
        """What tells two sets of options apart (the retry policy by its fields)."""
        return (self.start_to_close, self.schedule_to_close, self.heartbeat, _retry_key(self.retry))


def _retry_key(retry: RetryPolicy) -> tuple[Any, ...]:
    """A retry policy by its fields (the dataclass itself is mutable, so unhashable)."""
    return (
        retry.initial_interval,
        retry.backoff_coefficient,
        retry.maximum_interval,
        retry.maximum_attempts,
        tuple(retry.non_retryable_error_types or ()),
    )


@dataclass(frozen=True, slots=True)
class ActivityCall:
    """What an activity call resolves to: its step, and the hint its result is rebuilt by
    (None when the return type needs no conversion)."""

    definition: ActivityDefinition
    options: ActivityOptions
    spec: StepSpec
    result_hint: Any
    #: Whether the step takes the schedule-to-close deadline before the activity's arguments.
    takes_deadline: bool


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def activity_spec(
    runtime: Runtime, definition: ActivityDefinition, options: ActivityOptions
) -> StepSpec:
    """The opsloom step that runs ``definition`` under ``options`` (made once, then cached).

    Its hook makes each attempt activity code (see :class:`_ActivityHook`). With a deadline
    across attempts or a heartbeat timeout, the step is called with the schedule-to-close
    deadline (epoch seconds, or None) before the activity's arguments (see
    :attr:`ActivityCall.takes_deadline`); otherwise the step is the activity function itself.
    """
    key = (definition.name, definition.fn, options.key())
    spec = runtime.specs.get(key)
    if spec is None:
        hook = _ActivityHook(definition, options)
        if options.timed:
            fn: Callable[..., Any] = _timed_body(definition, options)
            timeout = None  # the body keeps the time, knowing which limit ran out
        else:
            # A start-to-close limit alone is the step's timeout (its StepTimeoutError is seen
            # as Temporal's start-to-close TimeoutError); a plain function runs in a thread.
            fn, timeout = definition.fn, options.start_to_close
        spec = make_step_spec(fn, definition.name, options.retry.to_opsloom(), timeout, hook)
        runtime.specs[key] = spec
    return spec


class _ActivityHook:
    """What the engine runs around each attempt of an activity's step.

    Before the attempt: the activity's state in place of the workflow's (``activity.info()``,
    ``heartbeat()``; ``asyncio.sleep`` is a real sleep in activity code). After it: the workflow's
    state back, the heartbeat details dropped once it succeeded, its result as JSON, and the
    retry policy's ``non_retryable_error_types`` applied to what it raised. The step's final
    failure is what Temporal's workflows see: an ``ActivityError`` with the error as its cause.
    """

    __slots__ = ("definition", "non_retryable", "options")

    def __init__(self, definition: ActivityDefinition, options: ActivityOptions) -> None:
        self.definition = definition
        self.options = options
        self.non_retryable = set(options.retry.non_retryable_error_types or ())

    def enter(self, started: float) -> ActivityState:
        # The engine puts what this returns in the attempt's StepInfo: that is what makes the
        # step's code activity code (see ``running``).
        state = running.get()
        if state is None:  # the step was called outside its workflow
            raise RuntimeError("an activity step runs only inside a Temporal-style workflow")
        return ActivityState(state, self.definition, self.options, started)

    def done(self, entered: ActivityState, result: Any) -> Any:
        heartbeats = entered.state.runtime.heartbeats
        if heartbeats:
            heartbeats.pop(entered.key, None)
        return result if result.__class__ in SCALARS else to_json(result)

    def failed(self, entered: ActivityState, exc: BaseException) -> None:
        if not self.non_retryable or not isinstance(exc, Exception):
            return
        kind = exc.type if isinstance(exc, ApplicationError) else type(exc).__name__
        if kind not in self.non_retryable or isinstance(exc, TimeoutError):
            return
        if not isinstance(exc, ApplicationError):
            exc.retryable = False  # type: ignore[attr-defined]
            return
        raise ApplicationError(
            exc.message, *exc.details, type=exc.type, non_retryable=True
        ) from exc

    def failure(self, error: StepFailedError) -> ActivityError:
        cause = failure_from(
            {"type": error.error_type, "message": error.message, "data": error.data}
        )
        maximum = self.options.retry.maximum_attempts
        retry_state = (
            RetryState.MAXIMUM_ATTEMPTS_REACHED
            if maximum and error.attempts >= maximum
            else RetryState.NON_RETRYABLE_FAILURE
        )
        if isinstance(cause, TimeoutError) and not cause.retryable:
            retry_state = RetryState.TIMEOUT
        return ActivityError(
            "Activity task failed",
            scheduled_event_id=error.seq,
            started_event_id=error.seq,
            identity="opsloom",
            activity_type=self.definition.name,
            activity_id=str(error.seq),
            retry_state=retry_state,
            cause=cause,
        )


def _timed_body(
    definition: ActivityDefinition, options: ActivityOptions
) -> Callable[..., Awaitable[Any]]:
    """The step of an activity with a schedule-to-close deadline or a heartbeat timeout: the
    activity's call under the attempt's limits (its hook has made it activity code)."""
    fn = definition.fn
    is_async = inspect.iscoroutinefunction(fn)

    async def body(deadline: float | None, *args: Any) -> Any:
        activity = current_activity()
        limit = options.start_to_close
        final = None
        if deadline is not None:
            remaining = deadline - activity.started
            if remaining <= 0:
                raise TimeoutError(
                    "activity ScheduleToClose timeout", type=TimeoutType.SCHEDULE_TO_CLOSE
                )
            if limit is None or remaining < limit:
                limit, final = remaining, TimeoutType.SCHEDULE_TO_CLOSE
        call = fn(*args) if is_async else asyncio.to_thread(fn, *args)
        if options.heartbeat is None:
            return await (call if deadline is None else _limited(call, limit, final))
        return await _within(call, limit, final, options.heartbeat, activity)

    return body


def _timeout(final: TimeoutType | None) -> TimeoutError:
    kind = final or TimeoutType.START_TO_CLOSE
    name = "ScheduleToClose" if kind is TimeoutType.SCHEDULE_TO_CLOSE else "StartToClose"
    return TimeoutError(f"activity {name} timeout", type=kind)


async def _limited(call: Awaitable[Any], limit: float | None, final: TimeoutType | None) -> Any:
    """Await ``call`` within ``limit`` seconds (no heartbeat to watch: no extra task)."""
    if limit is None:
        return await call
    try:
        async with asyncio.timeout(limit) as scope:
            return await call
    except builtins.TimeoutError:
        if scope.expired():
            raise _timeout(final) from None
        raise


async def _within(
    call: Any,
    limit: float | None,
    final: TimeoutType | None,
    heartbeat: float | None,
    activity: ActivityState,
) -> Any:
    """Await ``call`` under the attempt's time limit and heartbeat timeout."""
    task = asyncio.ensure_future(call)
    loop = asyncio.get_running_loop()
    end = None if limit is None else loop.time() + limit
    try:
        while True:
            waits = [t for t in (end, _beat_due(activity, heartbeat, loop)) if t is not None]
            timeout = None if not waits else max(0.0, min(waits) - loop.time())
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if done:
                return task.result()
            if end is not None and loop.time() >= end:
                kind = final or TimeoutType.START_TO_CLOSE
                name = (
                    "ScheduleToClose" if kind is TimeoutType.SCHEDULE_TO_CLOSE else "StartToClose"
                )
                raise TimeoutError(f"activity {name} timeout", type=kind)
            due = _beat_due(activity, heartbeat, loop)
            if due is not None and loop.time() >= due:
                raise TimeoutError(
                    "activity Heartbeat timeout",
                    type=TimeoutType.HEARTBEAT,
                    last_heartbeat_details=activity.runtime.heartbeats.get(activity.key, ()),
                )
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


def _beat_due(
    activity: ActivityState,
    heartbeat: float | None,
    loop: asyncio.AbstractEventLoop,
) -> float | None:
    if heartbeat is None:
        return None
    # last_beat is on the run's clock; the wait is on the loop's.
    return loop.time() + (activity.last_beat + heartbeat - activity.state.clock.now())


def _delta(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)
