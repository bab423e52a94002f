"""What workflow code sees: the :class:`Context` and the current step's :class:`StepInfo`."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from opsloom.clock import Clock
    from opsloom.engine.execution import Execution
    from opsloom.engine.registry import StepSpec
    from opsloom.store.base import Store

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StepInfo:
    """The step being executed: pass ``idempotency_key`` to remote APIs that accept one."""

    run_id: str
    seq: int
    name: str
    attempt: int
    #: What the step's hook made of this attempt when it started (a layer's own state for the
    #: attempt: the Temporal compat layer's running activity); None for ordinary steps.
    entered: Any = None

    @property
    def idempotency_key(self) -> str:
        """Stable across attempts and replays: ``run_id:seq``."""
        return f"{self.run_id}:{self.seq}"


_current_step: contextvars.ContextVar[StepInfo | None] = contextvars.ContextVar(
    "opsloom_current_step", default=None
)


#: The step attempt the current code runs in, None outside one: for a layer that asks on every
#: call (what :func:`current_step` tells, without its error).
running_step = _current_step


def current_step() -> StepInfo:
    """The step this code runs in; raises ``RuntimeError`` outside a step."""
    info = _current_step.get()
    if info is None:
        raise RuntimeError("current_step() called outside of an opsloom step")
    return info


class Context:
    """The durable API of one run, handed to the workflow function.

    Workflow code must be deterministic with respect to this API: everything that varies
    (time, randomness, I/O) goes through a step or through ``now()``, ``uuid()``, ``random()``,
    which are recorded and replayed.
    """

    __slots__ = ("_x",)

    def __init__(self, execution: Execution) -> None:
        self._x = execution

    @property
    def run_id(self) -> str:
        return self._x.run.id

    @property
    def workflow(self) -> str:
        return self._x.run.workflow

    @property
    def started_by(self) -> str | None:
        """Who started the run (a user, ``trigger:<id>``, ``schedule:<id>``), as recorded."""
        return self._x.run.started_by

    @property
    def input(self) -> Any:
        return self._x.run.input

    @property
    def store(self) -> Store:
        """The run's store, for packages that build durable APIs on the context (approvals).

        Workflow code reads and writes it only inside steps: a call outside one is not recorded
        and would run again on every replay.
        """
        return self._x.store

    @property
    def clock(self) -> Clock:
        """The run's clock, for code inside steps; workflow code uses :meth:`now`."""
        return self._x.clock

    @overload
    def step(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> Awaitable[T]: ...

    @overload
    def step(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]: ...

    def step(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Run ``fn(*args, **kwargs)`` as a checkpointed step and return its (JSON) result.

        ``fn`` may be async or plain; a plain function runs in a thread.
        """
        return self._x.step(fn, args, kwargs)

    def step_with(self, spec: StepSpec, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Like :meth:`step`, with the name, retry policy and timeout of ``spec`` for this call.

        Build the spec with :func:`opsloom.engine.registry.make_step_spec`.
        """
        return self._x.step_with(spec, args, kwargs)

    async def gather(self, *awaitables: Awaitable[Any]) -> list[Any]:
        """Run awaitables concurrently (fan-out) and return their results in order (fan-in).

        Every branch runs to its end; then the first failure, in argument order, is raised.
        """
        return await self._x.gather(awaitables)

    def race(self, *awaitables: Awaitable[Any]) -> Awaitable[tuple[int, Any]]:
        """Run branches concurrently; the first to finish wins: ``(index, result)``.

        Each branch is one durable call: ``ctx.step(...)``, ``ctx.sleep(...)``,
        ``ctx.wait_for(...)``, ``ctx.child(...)`` (run anything longer as a child workflow).
        The losers are cancelled: a running step is interrupted, a child run is cancelled, a
        timer or a wait is dropped. If the winner failed, its error is raised. The winner is
        recorded, so a replay takes the same one::

            index, decision = await ctx.race(ctx.wait_for("approval"), ctx.sleep(3600))
            if index == 1: ...  # nobody answered within the hour
        """
        return self._x.race(awaitables)

    async def sleep(self, seconds: float) -> None:
        """A durable timer: the run is parked (no worker slot) until it fires."""
        await self._x.sleep(seconds=seconds)

    async def sleep_until(self, when: datetime) -> None:
        """A durable timer until an aware datetime."""
        if when.tzinfo is None:
            raise ValueError("sleep_until needs a timezone-aware datetime")
        await self._x.sleep(until=when.timestamp())

    async def wait_for(self, signal: str, timeout: float | None = None) -> Any:
        """Wait for a signal sent with ``app.signal``; signals sent earlier are kept for it.

        Raises ``WaitTimeoutError`` when ``timeout`` seconds pass first.
        """
        return await self._x.wait_for(signal, timeout)

    async def child(self, workflow: str, input: Any = None) -> Any:
        """Start a child run and wait for its output (``ChildFailedError`` if it fails)."""
        return await self._x.child(workflow, input)

    def compensate(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Register an undo step; on failure, cancel or timeout they run last-in first-out."""
        self._x.compensate(fn, args, kwargs)

    def set_labels(self, labels: dict[str, str | None]) -> Awaitable[None]:
        """Set labels of this run (a None value removes one), recorded once: runs can be listed
        and filtered by them (``opsloom runs list --label key=value``)."""
        return self._x.set_labels(labels)

    def patched(self, change_id: str) -> bool:
        """Whether this run takes the new path of a code change (see :mod:`opsloom.engine.patch`).

        True for runs that reach this point with the new code; False for runs that already ran
        past it with the old code, which keep their old path on replay.
        """
        return self._x.patched(change_id)

    def deprecate_patch(self, change_id: str) -> None:
        """Mark where a patch was once all runs take its new path (runs that recorded the
        patch still replay); remove it when no open run started before it."""
        self._x.deprecate_patch(change_id)

    # --- handlers (signals, queries, updates) --------------------------------------------------

    def on_signal(self, name: str, fn: Callable[[Any], Any]) -> None:
        """Call ``fn(data)`` (plain or async) for each signal ``name`` that
        :meth:`wait_until` takes."""
        self._x.on_signal(name, fn)

    def on_query(self, name: str, fn: Callable[[Any], Any]) -> None:
        """Answer the query ``name`` with ``fn(data)`` (plain, read-only) on the run's state.

        A query replays the run to its present without changing it (``app.query``).
        """
        self._x.on_query(name, fn)

    def on_update(
        self,
        name: str,
        fn: Callable[[Any], Any],
        validator: Callable[[Any], Any] | None = None,
    ) -> None:
        """Handle the update ``name``: ``validator(data)`` may refuse it (raise) before it is
        stored; ``fn(data)`` runs when :meth:`wait_until` takes it and its result is recorded
        and returned to the caller of ``app.update``.
        """
        self._x.on_update(name, fn, validator)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``predicate()`` is true, serving signals and updates to their handlers.

        The predicate is checked now and after each delivery. Raises ``WaitTimeoutError`` when
        ``timeout`` seconds pass first.
        """
        await self._x.wait_until(predicate, timeout)

    def now(self) -> datetime:
        """The current time, recorded: a replay sees the same value."""
        return datetime.fromtimestamp(float(self._x.value("now")), tz=UTC)

    def uuid(self) -> str:
        """A random UUID (hex form with dashes), recorded."""
        return str(self._x.value("uuid"))

    def random(self) -> float:
        """A uniform random float in [0, 1), recorded."""
        return float(self._x.value("random"))

    # --- events ------------------------------------------------------------------------------

    def subscribe(self, filters: list[dict[str, Any]]) -> Awaitable[str]:
        """Subscribe this run to events; returns the subscription id (recorded).

        Each filter holds CloudEvents attributes with literal values (``type`` is required;
        ``source``, ``subject``, extensions) and optionally ``where``, a jq expression on the
        event that must yield ``true``. An event matching any filter that is stored from now
        on is delivered as the signal ``f"events:{id}"`` with payload
        ``{"filter": index, "event": {...}}``: take them with ``wait_for``.
        """
        return self._x.subscribe(filters)

    def unsubscribe(self, subscription: str) -> Awaitable[None]:
        """Stop the deliveries of a subscription (a finished run's stop by themselves)."""
        return self._x.unsubscribe(subscription)

    def wait_for_event(
        self, filter: dict[str, Any], timeout: float | None = None
    ) -> Awaitable[dict[str, Any]]:
        """Wait for the first event matching ``filter`` stored from now on; return it.

        Subscribes, waits and unsubscribes. Raises ``WaitTimeoutError`` when ``timeout``
        seconds pass first.
        """
        return self._x.wait_for_event(filter, timeout)

    def emit(self, event: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        """Store a CloudEvent, exactly once for this point of the workflow; return it.

        Missing attributes are filled in: ``specversion`` 1.0, an ``id`` derived from the run
        and its position, ``source`` ``opsloom/runs/<run id>`` and ``time``. Runs waiting for
        a matching event are woken.
        """
        return self._x.emit(event)
