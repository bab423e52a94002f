"""The opsloom workflow function that runs a ``@workflow.defn`` class, and asyncio in workflows.

Each execution (first run and every replay) builds a new instance of the class, registers its
signal, query and update methods as handlers of the run's context, and awaits its ``run``
method. The run's input is ``{"args": [...], "task_queue": ...}`` (plus ``workflow_id`` and
``continued_from`` for a run that continues another); its output is the JSON of the result.

``continue_as_new`` starts the next run as a child of this one, whose result becomes this run's:
each run's history stays short, the first run's result is the chain's, and a cancel reaches the
run that is current.

Temporal runs workflows on its own event loop, where ``asyncio.sleep`` is a durable timer and
``asyncio.gather`` waits for durable work. opsloom runs them on the worker's loop, shared with
everything else in the process, so ``asyncio.sleep`` and ``asyncio.gather`` are replaced only
while workflow code itself runs: each resumption of the workflow's coroutine (and of its gather
branches and async handlers) puts the durable versions in place and puts back what was there
when it yields. Every other task, native workflows, the server and other libraries included,
sees asyncio's functions (or whatever another library installed) at all times; code called from
workflow code that is not workflow code (an activity run inline) is told apart by the context
variable the activity clears.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from opsloom.compat.temporal.converter import (
    SCALARS,
    args_from_json,
    converts,
    parameter_hints,
    to_json,
)
from opsloom.compat.temporal.runtime import (
    Runtime,
    WorkflowState,
    current_workflow,
    in_workflow,
    running,
)
from opsloom.compat.temporal.workflow import ContinueAsNewError, WorkflowDefinition, sleep
from opsloom.engine import Context


def split_input(value: Any) -> tuple[list[Any], dict[str, Any]]:
    """The workflow's arguments and the run's metadata from its input.

    Runs started elsewhere (``opsloom start``, the API) may give a bare value: a list is the
    arguments, anything else the single argument.
    """
    if isinstance(value, dict):
        args = value.get("args")
        if isinstance(args, list):
            return args, value  # decoded for this execution: not shared
    if value is None:
        return [], {}
    if isinstance(value, list):
        return value, {}
    return [value], {}


def make_runner(
    definition: WorkflowDefinition, runtime: Runtime
) -> Callable[[Context, Any], Awaitable[Any]]:
    """The opsloom workflow function of ``definition``."""
    run_hints = parameter_hints(definition.run_fn, method=True)
    if not any(converts(hint) for hint in run_hints):
        run_hints = ()  # arguments as they are: nothing to rebuild
    handlers = _handlers(definition)

    async def runner(ctx: Context, input: Any) -> Any:
        if input.__class__ is dict and (values := input.get("args")).__class__ is list:
            meta = input  # as the client starts runs: decoded for this execution, not shared
        else:
            values, meta = split_input(input)
        state = WorkflowState(
            ctx=ctx,
            runtime=runtime,
            clock=ctx.clock,
            workflow_id=str(meta.get("workflow_id") or ctx.run_id),
            workflow_type=definition.name,
            task_queue=str(meta.get("task_queue") or "default"),
            # Set only for a child or a continued run: most runs have neither.
            parent_id=None if (parent := meta.get("parent")) is None else str(parent),
            continued_run_id=None if (was := meta.get("continued_from")) is None else str(was),
        )
        token = running.set(state)
        try:
            run_args = args_from_json(values, run_hints) if run_hints else values
            instance = definition.cls(*run_args) if definition.init_takes_args else definition.cls()
            state.instance = instance
            if handlers:
                _register(ctx, handlers, instance)
            try:
                result = await WorkflowCode(definition.run_fn(instance, *run_args))
            except ContinueAsNewError as exc:
                following = {
                    "args": exc.arguments,
                    "task_queue": exc.task_queue or state.task_queue,
                    "workflow_id": state.workflow_id,
                    "continued_from": ctx.run_id,
                }
                return await ctx.child(exc.workflow or definition.name, following)
            return result if result.__class__ in SCALARS else to_json(result)
        finally:
            running.reset(token)

    runner.__name__ = runner.__qualname__ = definition.name
    return runner


@dataclass(frozen=True, slots=True)
class _Handler:
    """A signal, query or update method with its parameters' hints (found once per class)."""

    kind: str
    name: str
    fn: Callable[..., Any]
    hints: Sequence[Any]
    validator: Callable[..., Any] | None = None
    validator_hints: Sequence[Any] = ()


def _handlers(definition: WorkflowDefinition) -> list[_Handler]:
    found = [_Handler("signal", name, fn, _hints(fn)) for name, fn in definition.signals.items()]
    found += [_Handler("query", name, fn, _hints(fn)) for name, fn in definition.queries.items()]
    for name, fn in definition.updates.items():
        check = definition.validator(name)
        found.append(
            _Handler("update", name, fn, _hints(fn), check, () if check is None else _hints(check))
        )
    return found


def _register(ctx: Context, handlers: list[_Handler], instance: Any) -> None:
    for handler in handlers:
        fn, hints = handler.fn, handler.hints
        if handler.kind == "signal":
            ctx.on_signal(handler.name, functools.partial(_call, instance, fn, hints))
        elif handler.kind == "query":
            ctx.on_query(handler.name, functools.partial(_answer, instance, fn, hints))
        else:
            check = handler.validator
            ctx.on_update(
                handler.name,
                functools.partial(_apply, instance, fn, hints),
                None
                if check is None
                else functools.partial(_call, instance, check, handler.validator_hints),
            )


def _hints(fn: Callable[..., Any]) -> Sequence[Any]:
    return parameter_hints(fn, method=True)


def _values(data: Any, hints: Sequence[Any]) -> Sequence[Any]:
    values = data if isinstance(data, list) else ([] if data is None else [data])
    return args_from_json(values, hints)


def _call(instance: Any, fn: Callable[..., Any], hints: Sequence[Any], data: Any) -> Any:
    result = fn(instance, *_values(data, hints))
    return WorkflowCode(result) if inspect.iscoroutine(result) else result


def _answer(instance: Any, fn: Callable[..., Any], hints: Sequence[Any], data: Any) -> Any:
    return to_json(fn(instance, *_values(data, hints)))


async def _apply(instance: Any, fn: Callable[..., Any], hints: Sequence[Any], data: Any) -> Any:
    result = fn(instance, *_values(data, hints))
    if inspect.iscoroutine(result):
        result = await WorkflowCode(result)
    elif inspect.isawaitable(result):
        result = await result
    return to_json(result)


# --- asyncio inside workflow code -----------------------------------------------------------------


#: What ``asyncio.sleep`` and ``asyncio.gather`` were when workflow code last resumed: what
#: non-workflow code called from it (an activity run inline, another thread) is given.
_outside: list[Any] = [asyncio.sleep, asyncio.gather]


async def _bridged_sleep(delay: float, result: Any = None) -> Any:
    if delay > 0 and in_workflow():
        await sleep(delay)
        return result
    return await _outside[0](delay, result)


def _bridged_gather(*aws: Awaitable[Any], return_exceptions: bool = False) -> Any:
    if not in_workflow():
        return _outside[1](*aws, return_exceptions=return_exceptions)
    if return_exceptions:
        branches: list[Awaitable[Any]] = [WorkflowCode(_captured(aw)) for aw in aws]
    else:
        branches = [WorkflowCode(aw) if inspect.iscoroutine(aw) else aw for aw in aws]
    return current_workflow().ctx.gather(*branches)


async def _awaited(aw: Awaitable[Any]) -> Any:
    return await aw


async def _captured(aw: Awaitable[Any]) -> Any:
    try:
        return await aw
    except Exception as exc:
        return exc


class WorkflowCode:
    """Awaits a coroutine of workflow code with the durable ``asyncio.sleep`` and ``gather`` in
    place while, and only while, it runs.

    Each resumption swaps them in and, when the coroutine yields, puts back what it found,
    unless something else replaced them meanwhile (that replacement is kept). Nothing stays
    patched between resumptions, so no other task ever sees the durable versions.
    """

    __slots__ = ("_coro", "_raise")

    def __init__(self, code: Awaitable[Any]) -> None:
        self._coro: Coroutine[Any, Any, Any] = (
            code if isinstance(code, types.CoroutineType) else _awaited(code)
        )
        #: What the next resumption throws in (see ``throw``); None: it sends.
        self._raise: tuple[Any, ...] | None = None

    def __await__(self) -> WorkflowCode:
        return self

    def __iter__(self) -> WorkflowCode:
        return self

    def send(self, value: Any = None) -> Any:
        # The durable versions in place for this resumption (unless already: workflow code
        # nested in itself), then what was there before, unless something else was installed
        # meanwhile. Inline: this runs at every resumption of every workflow.
        found_sleep, found_gather = asyncio.sleep, asyncio.gather
        if found_sleep is not _bridged_sleep:
            _outside[0] = found_sleep
            asyncio.sleep = _bridged_sleep
        if found_gather is not _bridged_gather:
            _outside[1] = found_gather
            asyncio.gather = _bridged_gather  # type: ignore[assignment]
        try:
            if self._raise is None:
                return self._coro.send(value)
            exc, self._raise = self._raise, None
            return self._coro.throw(*exc)
        finally:
            if asyncio.sleep is _bridged_sleep:
                asyncio.sleep = found_sleep
            if asyncio.gather is _bridged_gather:
                asyncio.gather = found_gather

    __next__ = send  # what a task's step calls (without a value): one frame, not two

    def throw(self, *exc: Any) -> Any:
        self._raise = exc  # one resumption that raises, then sends again
        return self.send(None)

    def close(self) -> None:
        self._coro.close()
