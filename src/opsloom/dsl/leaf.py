"""The body of a leaf task's step: its whole data flow and its work.

The step returns a small record rather than raising, so that a task error is kept with all its
fields and is never retried by the engine: ``{"output", "then", "context"?}`` or
``{"error": {...}}``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from opsloom.dsl.interpreter import now_iso, task_type
from opsloom.dsl.problem import TaskError
from opsloom.dsl.scope import RunState, Scope, variables

if TYPE_CHECKING:
    from opsloom.dsl.interpreter import Interpreter


async def run_leaf(
    interp: Interpreter,
    pointer: str,
    name: str,
    task: dict[str, Any],
    raw: Any,
    state: RunState,
    scope: Scope,
) -> dict[str, Any]:
    """Run the leaf task at ``pointer`` on input ``raw``; its step record."""
    limit: float | None = None
    owner = pointer
    try:
        kind = task_type(task)
        value = await interp.transform_input(task.get("input"), raw, state, scope, pointer)
        condition = task.get("if")
        if condition is not None and not await interp.evaluator.condition(
            condition, value, variables(state, scope, input=value)
        ):
            return {"output": raw, "skipped": True}
        info = {"name": name, "reference": pointer, "definition": task, "input": value}
        info["startedAt"] = {"iso8601": now_iso()}
        now = interp.runtime.clock.now()
        if task.get("timeout") is not None:
            limit = interp.timeout_of(task["timeout"])
        if scope.deadline is not None and (limit is None or scope.deadline - now < limit):
            limit = max(0.0, scope.deadline - now)
            owner = scope.deadline_owner or pointer
        if limit is not None and limit <= 0:
            raise TimeoutError
        async with asyncio.timeout(limit):
            record = await LEAVES[kind](interp, task, pointer, value, state, scope, info)
        output = await interp.transform_output(
            task.get("output"), record["output"], value, state, scope
        )
        record["output"] = output
        if task.get("export"):
            await interp.export(task.get("export"), output, value, state, scope)
            record["context"] = state.context
        record.setdefault("then", task.get("then"))
        record["at"] = interp.runtime.clock.now()  # when it finished: decides ``fork.compete``
        return record
    except TimeoutError:
        seconds = "" if limit is None else f" after {limit:g} s"
        timeout = TaskError.standard(
            "timeout", f"task {owner} timed out{seconds}", title="Timeout", instance=owner
        )
        return {"error": timeout.to_dict()}
    except TaskError as error:
        if error.instance is None:
            error.instance = pointer
        return {"error": error.to_dict()}
    except Exception as exc:  # a bug or an unexpected failure still becomes a DSL error
        failure = TaskError.standard(
            "runtime", f"{type(exc).__name__}: {exc}", title="Runtime error", instance=pointer
        )
        return {"error": failure.to_dict()}


async def _set(
    interp: Interpreter,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
    info: dict[str, Any],
) -> dict[str, Any]:
    names = variables(state, scope, input=value, task=info)
    return {"output": await interp.render(task["set"], value, names)}


async def _switch(
    interp: Interpreter,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
    info: dict[str, Any],
) -> dict[str, Any]:
    names = variables(state, scope, input=value, task=info)
    default: Any = None
    for case in task["switch"]:
        ((_, spec),) = case.items()
        when = spec.get("when")
        if when is None:
            default = spec
            continue
        if await interp.evaluator.condition(when, value, names):
            return {"output": value, "then": spec.get("then")}
    if default is not None:
        return {"output": value, "then": default.get("then")}
    return {"output": value}


async def _raise(
    interp: Interpreter,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
    info: dict[str, Any],
) -> dict[str, Any]:
    spec = task["raise"]["error"]
    if isinstance(spec, str):
        spec = interp.component("errors", spec)
    names = variables(state, scope, input=value, task=info)
    error = await interp.render(spec, value, names)
    if not isinstance(error, dict) or "type" not in error or "status" not in error:
        raise TaskError.standard("validation", "raise.error needs a type and a status")
    raise TaskError(
        str(error["type"]),
        int(error["status"]),
        title=error.get("title"),
        detail=error.get("detail"),
        instance=error.get("instance") or pointer,
    )


async def _call(
    interp: Interpreter,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
    info: dict[str, Any],
) -> dict[str, Any]:
    kind = task["call"]
    names = variables(state, scope, input=value, task=info)
    args = await interp.render(task.get("with") or {}, value, names)
    if kind in ("http", "openapi"):
        from opsloom.dsl.auth import AuthResolver

        policies = await interp.render(interp.use.get("authentications") or {}, value, names)
        async with interp.runtime.http_client() as client:
            auth = AuthResolver(policies, interp.secrets, client)
            if kind == "http":
                from opsloom.dsl.http import call_http

                return {"output": await call_http(args, input=value, auth=auth, client=client)}
            from opsloom.dsl.openapi import call_openapi

            return {"output": await call_openapi(args, input=value, auth=auth, client=client)}
    raise TaskError.standard(
        "configuration", f"call: {kind} is not supported by this runtime", instance=pointer
    )


async def _run(
    interp: Interpreter,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
    info: dict[str, Any],
) -> dict[str, Any]:
    from opsloom.dsl.process import run_process

    names = variables(state, scope, input=value, task=info)
    return {"output": await run_process(interp, task["run"], value, names)}


LEAVES = {
    "set": _set,
    "switch": _switch,
    "raise": _raise,
    "call": _call,
    "run": _run,
}
