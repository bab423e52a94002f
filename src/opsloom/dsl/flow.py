"""Task lists, flow directives, and the tasks that run in the workflow itself.

Leaf tasks are handed to :mod:`opsloom.dsl.leaf` as one step each; everything that must wait
durably or contains other tasks (``do``, ``for``, ``try``, ``fork``, ``wait``, ``listen``,
catalog functions, ``run: workflow``) is interpreted here, between steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloom.dsl.duration import seconds_of
from opsloom.dsl.interpreter import EndFlow, entries, task_type
from opsloom.dsl.problem import TaskError
from opsloom.dsl.scope import RunState, Scope, variables
from opsloom.errors import InputError

if TYPE_CHECKING:
    from opsloom.dsl.interpreter import Interpreter


async def run_list(
    interp: Interpreter, tasks: Any, base: str, value: Any, state: RunState, scope: Scope
) -> Any:
    """Run a task list from its first task, following ``then`` directives; its output."""
    items = entries(tasks)
    index = {name: i for i, (name, _) in enumerate(items)}
    i = 0
    while i < len(items):
        name, task = items[i]
        value, then = await run_task(interp, name, task, f"{base}/{i}/{name}", value, state, scope)
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


def is_leaf(kind: str, task: dict[str, Any]) -> bool:
    """Whether the task runs as one step (no durable wait, no nested tasks)."""
    if kind in ("set", "switch", "raise"):
        return True
    if kind == "call":
        return task["call"] in ("http", "openapi", "asyncapi", "grpc", "mcp", "a2a")
    if kind == "run":
        return "workflow" not in (task.get("run") or {})
    return False


async def run_task(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> tuple[Any, Any]:
    """Run one task; its output and the flow directive that follows it."""
    kind = task_type(task)
    if is_leaf(kind, task):
        result: dict[str, Any] = await state.ctx.step(
            interp.leaf(pointer), name, task, value, state, scope
        )
        if "error" in result:
            raise TaskError.from_dict(result["error"])
        if "context" in result:
            state.context = result["context"]
        return result.get("output"), result.get("then")
    raw = value
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
        output = await HANDLERS[kind](interp, name, task, pointer, value, state, scope)
        output = await interp.transform_output(task.get("output"), output, value, state, scope)
        await interp.export(task.get("export"), output, value, state, scope)
    except TaskError as error:
        if error.instance is None:
            error.instance = pointer
        raise
    return output, task.get("then")


async def _do(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    return await run_list(interp, task["do"], f"{pointer}/do", value, state, scope)


async def _for(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    spec = task["for"]
    each = spec.get("each") or "item"
    at = spec.get("at") or "index"
    names = variables(state, scope, input=value)
    collection = await interp.evaluator.evaluate(str(spec["in"]), value, names)
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
        inner = scope.with_names(**{each: item, at: i})
        condition = task.get("while")
        if condition is not None and not await interp.evaluator.condition(
            condition, value, variables(state, inner, input=task_input)
        ):
            break
        value = await run_list(interp, task.get("do"), f"{pointer}/do", value, state, inner)
    return value


async def _wait(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    spec = task["wait"]
    if isinstance(spec, str) and spec.strip().startswith("${"):
        spec = await interp.evaluator.evaluate(spec, value, variables(state, scope, input=value))
    seconds = seconds_of(spec)
    await sleep_within(state, scope, seconds)
    return value


async def sleep_within(state: RunState, scope: Scope, seconds: float) -> None:
    """A durable sleep, cut short by the enclosing deadline (then a timeout error)."""
    if scope.deadline is None:
        await state.ctx.sleep(seconds)
        return
    now = state.ctx.now().timestamp()
    if now + seconds <= scope.deadline:
        await state.ctx.sleep(seconds)
        return
    await state.ctx.sleep(max(0.0, scope.deadline - now))
    raise timeout_error(scope)


def timeout_error(scope: Scope) -> TaskError:
    """The error of the task whose deadline passed."""
    return TaskError.standard(
        "timeout",
        f"task {scope.deadline_owner} timed out",
        title="Timeout",
        instance=scope.deadline_owner,
    )


async def _call(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    from opsloom.dsl.function import call_function

    return await call_function(interp, name, task, pointer, value, state, scope)


async def _run(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    from opsloom.dsl.function import run_workflow

    return await run_workflow(interp, task, pointer, value, state, scope)


async def _try(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    from opsloom.dsl.attempt import run_try

    return await run_try(interp, task, pointer, value, state, scope)


async def _fork(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    from opsloom.dsl.fork import run_fork

    return await run_fork(interp, task, pointer, value, state, scope)


async def _emit(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    names = variables(state, scope, input=value)
    attributes = await interp.render(task["emit"]["event"].get("with") or {}, value, names)
    if not isinstance(attributes, dict):
        raise TaskError.standard("validation", "emit.event.with must be an object")
    for required in ("source", "type"):
        if not attributes.get(required):
            raise TaskError.standard("validation", f"an emitted event needs a {required!r}")
    try:
        # Stored exactly once for this point of the run; the engine fills in id and time.
        event: dict[str, Any] = await state.ctx.emit(attributes)
    except InputError as exc:
        raise TaskError.standard("validation", str(exc)) from None
    return event


async def _listen(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    from opsloom.dsl.listen import run_listen

    return await run_listen(interp, task, pointer, value, state, scope)


HANDLERS = {
    "do": _do,
    "for": _for,
    "wait": _wait,
    "call": _call,
    "run": _run,
    "try": _try,
    "fork": _fork,
    "listen": _listen,
    "emit": _emit,
}
