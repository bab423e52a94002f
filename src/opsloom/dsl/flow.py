"""Task lists, flow directives, and the dispatch of a task to its handler.

A leaf task runs as one step (:mod:`opsloom.dsl.leaf`). Every other task (``do``, ``for``,
``try``, ``fork``, ``wait``, ``listen``, ``emit``, catalog functions, ``run: workflow``) must
wait durably or contains other tasks: it runs in the workflow itself, between steps, by the
handler :data:`HANDLERS` names for its type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opsloom.dsl.attempt import run_try
from opsloom.dsl.duration import seconds_of
from opsloom.dsl.fork import run_fork
from opsloom.dsl.function import call_function, run_workflow
from opsloom.dsl.listen import run_listen
from opsloom.dsl.scope import RunState, Scope, sleep_within, variables
from opsloom.dsl.task import EndFlow, TaskCall, entries, is_leaf, task_type
from opsloom.errors import InputError
from opsloom.expr.problem import TaskError

if TYPE_CHECKING:
    from opsloom.dsl.interpreter import Interpreter

# ``is_leaf`` lives in ``task.py``; callers still name it here.
__all__ = ["HANDLERS", "Handler", "is_leaf", "run_list", "run_task"]

Handler = Callable[[TaskCall], Awaitable[Any]]
"""A task handler: runs a task that is not a leaf; the task's raw output."""


async def run_list(
    interp: Interpreter, tasks: Any, base: str, value: Any, state: RunState, scope: Scope
) -> Any:
    """Run a task list from its first task, following ``then`` directives; its output."""
    items = entries(tasks)
    index = {name: i for i, (name, _) in enumerate(items)}
    i = 0
    while i < len(items):
        name, task = items[i]
        call = TaskCall(interp, name, task, f"{base}/{i}/{name}", value, state, scope)
        value, then = await run_task(call)
        if then is None or then == "continue":
            i += 1
        elif then == "exit":
            return value
        elif then == "end":
            raise EndFlow(value)
        elif then in index:
            i = index[then]
        else:
            raise TaskError.standard(
                "configuration", f"then: {then!r} names no task of this list", instance=base
            )
    return value


async def run_task(call: TaskCall) -> tuple[Any, Any]:
    """Run one task; its output and the flow directive that follows it."""
    interp, task, pointer, state = call.interp, call.task, call.pointer, call.state
    kind = task_type(task)
    if is_leaf(kind, task):
        result = await call.step()
        if "error" in result:
            raise TaskError.from_dict(result["error"])
        if "context" in result:
            state.context = result["context"]
        return result.get("output"), result.get("then")
    raw, scope = call.value, call.scope
    timeout = task.get("timeout")
    if timeout is not None:
        after = interp.timeout_of(timeout)
        scope = scope.with_deadline(state.ctx.now().timestamp() + after, pointer)
    try:
        value = await interp.transform_input(task.get("input"), raw, state, scope, pointer)
        condition = task.get("if")
        if condition is not None and not await interp.evaluator.condition(
            condition, value, variables(state, scope, input=value)
        ):
            return raw, None
        output = await HANDLERS[kind](replace(call, value=value, scope=scope))
        output = await interp.transform_output(task.get("output"), output, value, state, scope)
        await interp.export(task.get("export"), output, value, state, scope)
    except TaskError as error:
        if error.instance is None:
            error.instance = pointer
        raise
    return output, task.get("then")


async def _do(call: TaskCall) -> Any:
    where = f"{call.pointer}/do"
    return await run_list(call.interp, call.task["do"], where, call.value, call.state, call.scope)


async def _for(call: TaskCall) -> Any:
    interp, task, state, value = call.interp, call.task, call.state, call.value
    spec = task["for"]
    each = spec.get("each") or "item"
    at = spec.get("at") or "index"
    collection = await interp.evaluator.evaluate(str(spec["in"]), value, call.names())
    if collection is None:
        collection = []
    if isinstance(collection, dict):
        collection = list(collection.values())
    if not isinstance(collection, list):
        raise TaskError.standard(
            "validation", f"for.in must give an array, not {type(collection).__name__}"
        )
    task_input = value
    for i, item in enumerate(collection):
        inner = call.scope.with_names(**{each: item, at: i})
        condition = task.get("while")
        if condition is not None and not await interp.evaluator.condition(
            condition, value, variables(state, inner, input=task_input)
        ):
            break
        value = await run_list(interp, task.get("do"), f"{call.pointer}/do", value, state, inner)
    return value


async def _wait(call: TaskCall) -> Any:
    spec = call.task["wait"]
    if isinstance(spec, str) and spec.strip().startswith("${"):
        spec = await call.interp.evaluator.evaluate(spec, call.value, call.names())
    await sleep_within(call.state, call.scope, seconds_of(spec))
    return call.value


async def _emit(call: TaskCall) -> Any:
    template = call.task["emit"]["event"].get("with") or {}
    attributes = await call.interp.render(template, call.value, call.names())
    if not isinstance(attributes, dict):
        raise TaskError.standard("validation", "emit.event.with must be an object")
    for required in ("source", "type"):
        if not attributes.get(required):
            raise TaskError.standard("validation", f"an emitted event needs a {required!r}")
    try:
        # Stored exactly once for this point of the run; the engine fills in id and time.
        event: dict[str, Any] = await call.state.ctx.emit(attributes)
    except InputError as exc:
        raise TaskError.standard("validation", str(exc)) from None
    return event


HANDLERS: dict[str, Handler] = {
    "do": _do,
    "for": _for,
    "wait": _wait,
    "call": call_function,
    "run": run_workflow,
    "try": run_try,
    "fork": run_fork,
    "listen": run_listen,
    "emit": _emit,
}
