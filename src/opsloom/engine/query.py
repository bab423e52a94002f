"""Reading a run's live state: queries, and the validation of updates.

Both replay the run from its recorded history to its present in a read-only execution (see
:meth:`~opsloom.engine.execution.Execution.replay`): nothing is written, no step runs, no
signal is consumed, so a query never changes a run and may be answered by any process that has
the workflow's code, whether or not a worker holds the run at that moment.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from opsloom.codec import decode, encode
from opsloom.engine.execution import Execution
from opsloom.engine.handler import UPDATE_RESULT, HandlerTable
from opsloom.engine.replay import DetachedHost
from opsloom.errors import (
    InputError,
    OpsloomError,
    QueryError,
    RunNotFoundError,
    UpdateFailedError,
    UpdatePendingError,
    UpdateRejectedError,
)
from opsloom.model import SignalRecord, StepKind, StepRecord, StepStatus
from opsloom.model.run import Fence
from opsloom.store.base import Claim

if TYPE_CHECKING:
    from opsloom.clock import Clock
    from opsloom.engine.registry import Registry
    from opsloom.store.base import Store

#: Longest a replay may take to reach the present (a workflow awaiting something that is not
#: durable, a real ``asyncio.sleep``, would otherwise hold the caller forever).
REPLAY_LIMIT = 30.0


async def replay_present(
    store: Store, clock: Clock, registry: Registry, run_id: str
) -> HandlerTable:
    """Replay run ``run_id`` to its present; return the handlers its workflow registered.

    The present includes the signals sent and not yet taken: the replay takes them (without
    recording anything), so a query sent after a signal sees its effect, as in Temporal.
    """
    run = await store.get_run(run_id, with_steps=True)
    if run is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    spec = registry.workflow(run.workflow, run.version)
    history = {step.seq: step for step in run.steps}
    signals = [] if run.status.terminal else await _pending_as_of(store, run_id, history)
    claim = Claim(run=run, fence=Fence(run.id, "reader", 0), history=history, signals=signals)
    execution = Execution(DetachedHost(store, clock, registry), claim, spec)
    try:
        async with asyncio.timeout(REPLAY_LIMIT):
            handlers = await asyncio.ensure_future(execution.replay())
    except TimeoutError:
        raise QueryError(
            f"replaying run {run_id} did not reach its present within {REPLAY_LIMIT:g}s "
            "(does the workflow await something that is not durable?)"
        ) from None
    if execution.fatal is not None:
        raise QueryError(f"replaying run {run_id} failed: {execution.fatal}")
    return handlers


async def _pending_as_of(
    store: Store, run_id: str, history: dict[int, StepRecord]
) -> list[SignalRecord]:
    """The signals not taken as of ``history``: read after it, a signal the run took since
    (its wait not completed in ``history``) still counts as pending."""
    open_waits = [
        seq
        for seq, step in history.items()
        if step.kind is StepKind.SIGNAL and step.status is not StepStatus.COMPLETED
    ]
    since = min(open_waits, default=max(history, default=0) + 1)
    return [
        signal
        for signal in await store.signals_since(run_id, since)
        if signal.consumed_seq is None
        or signal.consumed_seq not in history
        or history[signal.consumed_seq].status is not StepStatus.COMPLETED
    ]


async def query(
    store: Store, clock: Clock, registry: Registry, run_id: str, name: str, data: Any
) -> Any:
    """The answer of the run's query handler ``name`` to ``data``, as JSON."""
    handlers = await replay_present(store, clock, registry, run_id)
    handler = handlers.queries.get(name)
    if handler is None:
        known = ", ".join(sorted(handlers.queries)) or "none"
        raise QueryError(f"run {run_id} has no query {name!r} (known: {known})")
    try:
        answer = handler(data)
    except OpsloomError:
        raise
    except Exception as exc:
        raise QueryError(
            f"query {name!r} of run {run_id} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if inspect.isawaitable(answer):
        close = getattr(answer, "close", None)
        if close is not None:
            close()
        raise QueryError(f"query {name!r} must be a plain function, not async")
    return decode(encode(answer, what=f"the answer of query {name!r}"))


async def validate_update(
    store: Store, clock: Clock, registry: Registry, run_id: str, name: str, data: Any
) -> None:
    """Check that the run handles update ``name`` and that its validator accepts ``data``."""
    try:
        encode(data, what=f"the data of update {name!r}")
    except OpsloomError as exc:
        raise InputError(str(exc)) from None
    handlers = await replay_present(store, clock, registry, run_id)
    entry = handlers.updates.get(name)
    if entry is None:
        known = ", ".join(sorted(handlers.updates)) or "none"
        raise QueryError(f"run {run_id} has no update {name!r} (known: {known})")
    validator = entry[1]
    if validator is None:
        return
    try:
        verdict = validator(data)
        if inspect.isawaitable(verdict):
            await verdict
    except Exception as exc:
        raise UpdateRejectedError(
            f"update {name!r} of run {run_id} was rejected: {type(exc).__name__}: {exc}"
        ) from exc


async def update_outcome(store: Store, run_id: str, update_id: str, timeout: float | None) -> Any:
    """Wait for the recorded result of update ``update_id``; raise ``UpdateFailedError``.

    The result is a history entry of the run; until it is there the run's steps are read again
    at a growing interval (a run busy with steps takes its update at its next wait).
    """
    delay = 0.002
    loop = asyncio.get_running_loop()
    end = None if timeout is None else loop.time() + timeout
    while True:
        run = await store.get_run(run_id, with_steps=True)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r}")
        for step in run.steps:
            if (
                step.kind is StepKind.VALUE
                and step.name == UPDATE_RESULT
                and isinstance(step.output, dict)
                and step.output.get("id") == update_id
            ):
                if "error" in step.output:
                    error = step.output["error"]
                    raise UpdateFailedError(run_id, str(step.output.get("name")), error)
                return step.output.get("result")
        if run.status.terminal:
            raise UpdateFailedError(
                run_id,
                update_id,
                {"type": "RunEnded", "message": f"the run ended {run.status} before the update"},
            )
        if end is not None and loop.time() >= end:
            raise UpdatePendingError(
                f"update {update_id} of run {run_id} has no result after {timeout:g}s; it "
                "stays queued for the run's next wait"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
