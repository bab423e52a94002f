"""The body of a leaf task's step: its whole data flow and its work.

The step returns a small record rather than raising, so that a task error is kept with all its
fields and is never retried by the engine: ``{"output", "then", "context"?}`` or
``{"error": {...}}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from opsloom.dsl.auth import AuthResolver
from opsloom.dsl.http import call_http
from opsloom.dsl.openapi import call_openapi
from opsloom.dsl.process import run_process
from opsloom.dsl.scope import RunState, Scope
from opsloom.dsl.task import TaskCall, task_type
from opsloom.expr.problem import TaskError

if TYPE_CHECKING:
    from opsloom.dsl.interpreter import Interpreter

LeafHandler = Callable[[TaskCall, dict[str, Any]], Awaitable[dict[str, Any]]]
"""A leaf task's work: gets the call and its expression variables; the step record."""


async def run_leaf(
    interp: Interpreter,
    pointer: str,
    name: str,
    task: dict[str, Any],
    raw: Any,
    state: RunState,
    scope: Scope,
) -> dict[str, Any]:
    """Run the leaf task at ``pointer`` on input ``raw``; its step record.

    The document's secrets are masked in the record (output, error, exported context) before
    it is stored, and the run goes on with the masked record, as a replay would.
    """
    record = await _run_leaf(interp, pointer, name, task, raw, state, scope)
    redactor = interp.redactor
    if not redactor:
        return record
    masked: dict[str, Any] = redactor.value(record)
    if "context" in masked:
        state.context = masked["context"]
    return masked


async def _run_leaf(
    interp: Interpreter,
    pointer: str,
    name: str,
    task: dict[str, Any],
    raw: Any,
    state: RunState,
    scope: Scope,
) -> dict[str, Any]:
    limit: float | None = None
    owner = pointer
    try:
        kind = task_type(task)
        value = await interp.transform_input(task.get("input"), raw, state, scope, pointer)
        call = TaskCall(interp, name, task, pointer, value, state, scope)
        condition = task.get("if")
        if condition is not None and not await interp.evaluator.condition(
            condition, value, call.names()
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
            record = await LEAVES[kind](call, call.names(task=info))
        output = await interp.transform_output(
            task.get("output"), record["output"], value, state, scope
        )
        record["output"] = output
        if task.get("export"):
            await interp.export(task.get("export"), output, value, state, scope)
            record["context"] = state.context
        record.setdefault("then", task.get("then"))
        record["at"] = interp.runtime.clock.now()  # when it finished
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


def now_iso() -> str:
    """Wall-clock time for fields recorded inside a step (``$task.startedAt``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def _set(call: TaskCall, names: dict[str, Any]) -> dict[str, Any]:
    return {"output": await call.interp.render(call.task["set"], call.value, names)}


async def _switch(call: TaskCall, names: dict[str, Any]) -> dict[str, Any]:
    default: Any = None
    for case in call.task["switch"]:
        ((_, spec),) = case.items()
        when = spec.get("when")
        if when is None:
            default = spec
            continue
        if await call.interp.evaluator.condition(when, call.value, names):
            return {"output": call.value, "then": spec.get("then")}
    if default is not None:
        return {"output": call.value, "then": default.get("then")}
    return {"output": call.value}


async def _raise(call: TaskCall, names: dict[str, Any]) -> dict[str, Any]:
    spec = call.task["raise"]["error"]
    if isinstance(spec, str):
        spec = call.interp.component("errors", spec)
    error = await call.interp.render(spec, call.value, names)
    if not isinstance(error, dict) or "type" not in error or "status" not in error:
        raise TaskError.standard("validation", "raise.error needs a type and a status")
    raise TaskError(
        str(error["type"]),
        int(error["status"]),
        title=error.get("title"),
        detail=error.get("detail"),
        instance=error.get("instance") or call.pointer,
    )


async def _call(call: TaskCall, names: dict[str, Any]) -> dict[str, Any]:
    interp, kind, value = call.interp, call.task["call"], call.value
    args = await interp.render(call.task.get("with") or {}, value, names)
    if kind in ("http", "openapi"):
        policies = await interp.render(interp.use.get("authentications") or {}, value, names)
        async with interp.runtime.http_client() as client:
            auth = AuthResolver(policies, interp.secrets, client)
            if kind == "http":
                return {"output": await call_http(args, input=value, auth=auth, client=client)}
            return {"output": await call_openapi(args, input=value, auth=auth, client=client)}
    raise TaskError.standard(
        "configuration", f"call: {kind} is not supported by this runtime", instance=call.pointer
    )


async def _run(call: TaskCall, names: dict[str, Any]) -> dict[str, Any]:
    return {"output": await run_process(call.interp, call.task["run"], call.value, names)}


LEAVES: dict[str, LeafHandler] = {
    "set": _set,
    "switch": _switch,
    "raise": _raise,
    "call": _call,
    "run": _run,
}
