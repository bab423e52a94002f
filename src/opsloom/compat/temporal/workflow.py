"""Workflow definitions and what workflow code calls, with the names of ``temporalio.workflow``.

A ``@workflow.defn`` class runs as an opsloom workflow of the same name: each execution is one
run, replayed from its history like any other (see :mod:`opsloom.engine`). Inside it:

- ``execute_activity`` / ``start_activity`` run the activity as a step (retries, timeouts);
- ``sleep``, ``asyncio.sleep`` and ``wait_condition`` are durable waits during which signal and
  update handlers run (signals sent while an activity runs are handled at the next wait);
- ``now``, ``uuid4``, ``random`` are recorded or seeded from recorded values;
- ``asyncio.gather`` fans out over opsloom's ``gather``;
- a cancelled run sees ``asyncio.CancelledError`` where it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import uuid
from collections.abc import Awaitable, Callable, Generator, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, NoReturn, TypeVar

from opsloom.compat.temporal.common import RetryPolicy
from opsloom.compat.temporal.converter import call_args, from_json, return_hint
from opsloom.compat.temporal.exceptions import (
    ActivityError,
    ChildWorkflowError,
    RetryState,
    failure_from,
)
from opsloom.compat.temporal.runtime import activity_definition, current_workflow
from opsloom.compat.temporal.runtime import in_workflow as in_workflow
from opsloom.errors import ChildFailedError, WaitTimeoutError

T = TypeVar("T")
C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()
_DEFN = "__temporal_workflow_definition__"
_RUN = "__temporal_workflow_run__"
_INIT = "__temporal_workflow_init__"
_HANDLER = "__temporal_handler__"
_VALIDATOR = "__temporal_update_validator__"


# --- definitions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandlerDefinition:
    """A signal, query or update method of a workflow class."""

    kind: str
    name: str
    fn: Callable[..., Any]


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    """A ``@workflow.defn`` class: its name, ``run`` method and handlers."""

    cls: type
    name: str
    run_fn: Callable[..., Awaitable[Any]]
    init_takes_args: bool
    signals: dict[str, Callable[..., Any]]
    queries: dict[str, Callable[..., Any]]
    updates: dict[str, Callable[..., Any]]

    @staticmethod
    def of(workflow: Any) -> WorkflowDefinition:
        """The definition of a workflow class or of its ``run`` method."""
        found = getattr(workflow, _DEFN, None)
        if isinstance(found, WorkflowDefinition):
            return found
        raise TypeError(f"{workflow!r} is not a @workflow.defn class or its run method")

    def validator(self, update: str) -> Callable[..., Any] | None:
        found = getattr(self.updates[update], _VALIDATOR, None)
        return found if callable(found) else None


def workflow_name(workflow: Any) -> str:
    """The workflow type that a class, its run method or a name stands for."""
    if isinstance(workflow, str):
        return workflow
    return WorkflowDefinition.of(workflow).name


def defn(
    cls: C | None = None,
    *,
    name: str | None = None,
    sandboxed: bool = True,
    dynamic: bool = False,
    failure_exception_types: Sequence[type[BaseException]] = (),
    versioning_behavior: Any = None,
) -> Any:
    """Declare a workflow class (one ``@workflow.run`` method; handlers optional).

    ``sandboxed`` and ``versioning_behavior`` are accepted and ignored (opsloom runs workflow
    code as is and keeps each run on the version it started with); ``dynamic`` workflows are
    not supported.
    """
    if dynamic:
        raise ValueError("dynamic workflows are not supported by opsloom.compat.temporal")

    def decorate(target: C) -> C:
        run_fn = None
        init_takes_args = False
        handlers: dict[str, dict[str, Callable[..., Any]]] = {
            "signal": {},
            "query": {},
            "update": {},
        }
        for klass in reversed(target.__mro__):
            for attr in vars(klass).values():
                if getattr(attr, _RUN, False):
                    run_fn = attr
                if getattr(attr, _INIT, False):
                    init_takes_args = True
                handler = getattr(attr, _HANDLER, None)
                if isinstance(handler, HandlerDefinition):
                    handlers[handler.kind][handler.name] = attr
        if run_fn is None:
            raise ValueError(f"workflow class {target.__qualname__} has no @workflow.run method")
        definition = WorkflowDefinition(
            cls=target,
            name=name or target.__name__,
            run_fn=run_fn,
            init_takes_args=init_takes_args,
            signals=handlers["signal"],
            queries=handlers["query"],
            updates=handlers["update"],
        )
        setattr(target, _DEFN, definition)
        setattr(run_fn, _DEFN, definition)
        return target

    return decorate(cls) if cls is not None else decorate


def run(fn: F) -> F:
    """Mark the ``async def run(self, ...)`` method of a workflow class."""
    if not asyncio.iscoroutinefunction(fn):
        raise ValueError(f"@workflow.run method {fn.__qualname__} must be async")
    setattr(fn, _RUN, True)
    return fn


def init(fn: F) -> F:
    """Mark ``__init__`` as taking the workflow's arguments (as ``run`` does)."""
    setattr(fn, _INIT, True)
    return fn


def _handler(kind: str, fn: F | None, name: str | None, dynamic: bool) -> Any:
    if dynamic:
        raise ValueError(f"dynamic {kind} handlers are not supported by opsloom.compat.temporal")

    def decorate(target: F) -> F:
        setattr(target, _HANDLER, HandlerDefinition(kind, name or target.__name__, target))
        if kind == "update":

            def validator(check: Callable[..., Any]) -> Callable[..., Any]:
                setattr(target, _VALIDATOR, check)
                return check

            target.validator = validator  # type: ignore[attr-defined]
        return target

    return decorate(fn) if fn is not None else decorate


def signal(
    fn: F | None = None,
    *,
    name: str | None = None,
    dynamic: bool = False,
    unfinished_policy: Any = None,
    description: str | None = None,
) -> Any:
    """Mark a signal handler method (plain or async)."""
    return _handler("signal", fn, name, dynamic)


def query(
    fn: F | None = None, *, name: str | None = None, dynamic: bool = False, description: Any = None
) -> Any:
    """Mark a query handler method (plain; it must not change the workflow)."""
    return _handler("query", fn, name, dynamic)


def update(
    fn: F | None = None,
    *,
    name: str | None = None,
    dynamic: bool = False,
    unfinished_policy: Any = None,
    description: str | None = None,
) -> Any:
    """Mark an update handler method; ``@method.validator`` adds its validator."""
    return _handler("update", fn, name, dynamic)


# --- what workflow code calls ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Info:
    """The running workflow, as ``temporalio.workflow.Info`` tells it (a subset)."""

    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    namespace: str
    attempt: int
    continued_run_id: str | None
    parent_run_id: str | None


def info() -> Info:
    state = current_workflow()
    return Info(
        workflow_id=state.workflow_id,
        run_id=state.ctx.run_id,
        workflow_type=state.workflow_type,
        task_queue=state.task_queue,
        namespace="default",
        attempt=1,
        continued_run_id=state.continued_run_id,
        parent_run_id=state.parent_id,
    )


def now() -> datetime:
    """The current time (recorded: a replay sees the same)."""
    return current_workflow().ctx.now()


def time() -> float:
    """:func:`now` as epoch seconds."""
    return now().timestamp()


def random() -> _random.Random:
    """A random generator seeded from a recorded value: the same numbers on every replay."""
    state = current_workflow()
    if state.rng is None:
        state.rng = _random.Random(int(state.ctx.random() * 2**53))
    return state.rng


def uuid4() -> uuid.UUID:
    """A random UUID from :func:`random` (deterministic on replay)."""
    return uuid.UUID(int=random().getrandbits(128), version=4)


async def sleep(duration: float | timedelta) -> None:
    """A durable timer; signal and update handlers run while it waits."""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    with contextlib.suppress(WaitTimeoutError):
        await current_workflow().ctx.wait_until(_never, max(seconds, 0.0))


def _never() -> bool:
    return False


async def wait_condition(
    fn: Callable[[], bool],
    *,
    timeout: float | timedelta | None = None,
    timeout_summary: str | None = None,
) -> None:
    """Wait until ``fn()`` is true, running signal and update handlers meanwhile.

    Raises ``asyncio.TimeoutError`` when ``timeout`` passes first.
    """
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    try:
        await current_workflow().ctx.wait_until(fn, seconds)
    except WaitTimeoutError:
        raise TimeoutError("wait_condition timed out") from None


def patched(id: str) -> bool:
    """Whether this run takes the new path of the change ``id`` (opsloom's ``ctx.patched``).

    True for runs that reach this point with the new code, False for runs that already went
    past it with the old code (they keep the old path on replay).
    """
    return current_workflow().ctx.patched(id)


def deprecate_patch(id: str) -> None:
    """Mark a patch whose old path no open run takes any more (opsloom's
    ``ctx.deprecate_patch``)."""
    current_workflow().ctx.deprecate_patch(id)


def all_handlers_finished() -> bool:
    """Handlers run to their end when delivered, so none is ever left unfinished."""
    return True


class _WorkflowLogger(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        if in_workflow():
            state = current_workflow()
            extra = kwargs.setdefault("extra", {})
            extra.setdefault("workflow_id", state.workflow_id)
            extra.setdefault("run_id", state.ctx.run_id)
            extra.setdefault("workflow_type", state.workflow_type)
        return msg, kwargs


#: A logger that adds the workflow's id, run id and type to each record.
logger = _WorkflowLogger(logging.getLogger("opsloom.compat.temporal.workflow"), {})


class unsafe:
    """Escape hatches of Temporal's sandbox; opsloom has no sandbox, so they change nothing."""

    @staticmethod
    @contextlib.contextmanager
    def imports_passed_through() -> Iterator[None]:
        yield

    @staticmethod
    @contextlib.contextmanager
    def sandbox_unrestricted() -> Iterator[None]:
        yield

    @staticmethod
    def is_replaying() -> bool:
        """Always False: opsloom replays whole runs and cannot tell this apart per call."""
        return False


# --- activities -----------------------------------------------------------------------------------


class ActivityCancellationType(IntEnum):
    TRY_CANCEL = 0
    WAIT_CANCELLATION_COMPLETED = 1
    ABANDON = 2


class ActivityHandle(Awaitable[T]):
    """A started activity; await it for its result (``ActivityError`` if it failed)."""

    def __init__(self, run: Awaitable[T], activity_type: str) -> None:
        self._run = run
        self.activity_type = activity_type

    def __await__(self) -> Generator[Any, None, T]:
        return self._run.__await__()


def execute_activity(
    activity: Any,
    arg: Any = _UNSET,
    *,
    args: Sequence[Any] = (),
    task_queue: str | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    activity_id: str | None = None,
    versioning_intent: Any = None,
    summary: str | None = None,
    priority: Any = None,
    result_type: type | None = None,
) -> Awaitable[Any]:
    """Run an activity as a step of this run; await it for its result.

    Like Temporal's, its position in the history is taken at the call; it runs when awaited
    (directly or in ``asyncio.gather``). ``task_queue``, ``schedule_to_start_timeout`` and
    ``cancellation_type`` are accepted and ignored: the activity runs in the worker that runs
    the workflow.
    """
    state = current_workflow()
    call = state.runtime.activity_call(
        activity, start_to_close_timeout, schedule_to_close_timeout, heartbeat_timeout, retry_policy
    )
    if arg is not _UNSET and args:
        raise TypeError("give either a single arg or args=[...], not both")
    # Passed as they are: the activity runs in this process, as a step of this run, whose
    # hook turns its final failure into ActivityError.
    if call.takes_deadline:
        deadline = None
        if call.options.schedule_to_close is not None:
            deadline = state.ctx.now().timestamp() + call.options.schedule_to_close
        values = [deadline, *args] if arg is _UNSET else [deadline, arg]
        pending = state.ctx.step_with(call.spec, *values)
    elif arg is _UNSET:
        pending = state.ctx.step_with(call.spec, *args)
    else:
        pending = state.ctx.step_with(call.spec, arg)
    hint = result_type if result_type is not None else call.result_hint
    if hint is None and activity_id is None:
        return pending  # nothing to convert: the step is the activity call, no layer between
    return _outcome(pending, hint, activity_id)


async def _outcome(pending: Awaitable[Any], hint: Any, activity_id: str | None) -> Any:
    """The activity's result rebuilt by ``hint``; its ``activity_id`` in its ActivityError."""
    try:
        value = await pending
    except ActivityError as exc:
        if activity_id:
            exc.activity_id = activity_id
        raise
    return value if hint is None else from_json(value, hint)


def start_activity(activity: Any, arg: Any = _UNSET, **options: Any) -> ActivityHandle[Any]:
    """Start an activity as a step of this run (the options of :func:`execute_activity`).

    Its position in the history is taken now; it runs when the handle is awaited (directly or
    in ``asyncio.gather``).
    """
    return ActivityHandle(execute_activity(activity, arg, **options), _activity_type(activity))


def _activity_type(activity: Any) -> str:
    return activity if isinstance(activity, str) else activity_definition(activity).name


def start_local_activity(
    activity: Any,
    arg: Any = _UNSET,
    *,
    local_retry_threshold: timedelta | None = None,
    **options: Any,
) -> ActivityHandle[Any]:
    """A local activity is an ordinary one here: every activity runs in the workflow's worker."""
    return start_activity(activity, arg, **options)


async def execute_local_activity(activity: Any, arg: Any = _UNSET, **options: Any) -> Any:
    return await start_local_activity(activity, arg, **options)


# --- child workflows and continue-as-new ----------------------------------------------------------


class ParentClosePolicy(IntEnum):
    UNSPECIFIED = 0
    TERMINATE = 1
    ABANDON = 2
    REQUEST_CANCEL = 3


class ChildWorkflowHandle(Awaitable[T]):
    """A started child workflow; await it for its result (``ChildWorkflowError`` if not)."""

    def __init__(self, run: Awaitable[T], workflow_type: str, id: str | None) -> None:
        self._run = run
        self.workflow_type = workflow_type
        self.id = id

    def __await__(self) -> Generator[Any, None, T]:
        return self._run.__await__()


async def start_child_workflow(
    workflow: Any,
    arg: Any = _UNSET,
    *,
    args: Sequence[Any] = (),
    id: str | None = None,
    task_queue: str | None = None,
    result_type: type | None = None,
    **ignored: Any,
) -> ChildWorkflowHandle[Any]:
    """Start a child run of ``workflow``; its position in the history is taken now.

    The child's run id is opsloom's (``<parent run id>.<position>``), not ``id``; a cancel of
    the parent reaches it. Other options of Temporal's call are accepted and ignored.
    """
    state = current_workflow()
    name = workflow_name(workflow)
    values = call_args(arg, args, unset=_UNSET)
    pending = state.ctx.child(
        name,
        {"args": values, "task_queue": task_queue or state.task_queue, "parent": state.ctx.run_id},
    )
    hint = result_type
    if hint is None and not isinstance(workflow, str):
        hint = return_hint(WorkflowDefinition.of(workflow).run_fn)

    async def outcome() -> Any:
        try:
            value = await pending
        except ChildFailedError as exc:
            cause = failure_from(exc.error)
            if exc.status == "cancelled":
                cause = failure_from({"type": "CancelledError", "message": "Cancelled"})
            raise ChildWorkflowError(
                "Child Workflow execution failed",
                namespace="default",
                workflow_id=exc.run_id,
                run_id=exc.run_id,
                workflow_type=name,
                initiated_event_id=0,
                started_event_id=0,
                retry_state=RetryState.NON_RETRYABLE_FAILURE,
                cause=cause,
            ) from None
        return from_json(value, hint)

    return ChildWorkflowHandle(outcome(), name, id)


async def execute_child_workflow(workflow: Any, arg: Any = _UNSET, **options: Any) -> Any:
    """Run a child workflow and return its result."""
    return await (await start_child_workflow(workflow, arg, **options))


class ContinueAsNewError(BaseException):
    """Raised by :func:`continue_as_new`; the runner turns it into the next run."""

    def __init__(self, workflow: str | None, args: list[Any], task_queue: str | None) -> None:
        super().__init__("continue as new")
        self.workflow = workflow
        self.arguments = args
        self.task_queue = task_queue


def continue_as_new(
    arg: Any = _UNSET,
    *,
    args: Sequence[Any] = (),
    workflow: Any = None,
    task_queue: str | None = None,
    **ignored: Any,
) -> NoReturn:
    """End this run and go on in a new run of the same workflow id with these arguments."""
    current_workflow()
    name = None if workflow is None else workflow_name(workflow)
    raise ContinueAsNewError(name, call_args(arg, args, unset=_UNSET), task_queue)


def get_definition(workflow: Any) -> WorkflowDefinition:
    """The definition of a workflow class (what the worker registers)."""
    return WorkflowDefinition.of(workflow)
