"""Calls that run in the workflow itself: catalog functions, ``use.functions``, subflows.

A catalog function (``call: slack-post-message:1.0.0@default``) is an async function that gets
the run's context, so it can take steps, sleep and wait like workflow code. A function of
``use.functions`` is a task definition run with the call's ``with`` as its input.
``run: workflow`` starts the named document as a child run and waits for its output.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from opsloom.dsl.catalog import FunctionCall
from opsloom.dsl.task import TaskCall
from opsloom.errors import ChildFailedError, OpsloomError, WorkflowNotFoundError
from opsloom.expr.problem import TaskError


def parse_reference(text: str) -> tuple[str, str | None, str | None]:
    """``name[:version][@catalog]`` as its parts."""
    catalog = None
    if "@" in text:
        text, catalog = text.rsplit("@", 1)
    version = None
    if ":" in text:
        text, version = text.split(":", 1)
    return text, version, catalog


async def call_function(call: TaskCall) -> Any:
    """Run ``call: <function>`` (a ``use.functions`` entry or a catalog function)."""
    interp, pointer, value = call.interp, call.pointer, call.value
    target = str(call.task["call"])
    args = await interp.render(call.task.get("with") or {}, value, call.names())
    local = (interp.use.get("functions") or {}).get(target)
    if local is not None:
        where = f"/use/functions/{target}"
        output, _ = await interp.run_task(
            replace(call, name=target, task=local, pointer=where, value=args)
        )
        return output
    if target.startswith(("http://", "https://")):
        raise TaskError.standard(
            "configuration",
            f"functions from remote catalogs are not loaded by this runtime: {target}",
            instance=pointer,
        )
    fn_name, version, catalog_name = parse_reference(target)
    catalog = interp.runtime.catalog
    if catalog is None or (catalog_name not in (None, "default")):
        raise TaskError.standard(
            "configuration", f"no catalog {catalog_name or 'default'!r} for {target}"
        )
    try:
        fn = catalog.function(fn_name, version or "")
    except OpsloomError as exc:
        raise TaskError.standard("configuration", str(exc), instance=pointer) from None
    function_call = FunctionCall(
        arguments=args, ctx=call.state.ctx, task=pointer, secrets=interp.secrets, input=value
    )
    try:
        return await fn(function_call)
    except TaskError:
        raise
    except OpsloomError as exc:
        raise TaskError.standard(
            "runtime", f"{type(exc).__name__}: {exc}", instance=pointer
        ) from None


async def run_workflow(call: TaskCall) -> Any:
    """``run: workflow``: a deployed document as a child run; its output."""
    interp, task, pointer, value = call.interp, call.task, call.pointer, call.value
    spec = task["run"]["workflow"]
    child_input = await interp.render(spec.get("input", value), value, call.names())
    target = f"{spec.get('namespace', 'default')}/{spec['name']}"
    version = spec.get("version")
    try:
        workflow = await interp.runtime.child_workflow(target, version)
    except WorkflowNotFoundError as exc:
        raise TaskError.standard("configuration", str(exc), instance=pointer) from None
    if task["run"].get("await", True) is False:
        raise TaskError.standard(
            "configuration", "run.await: false is not supported for workflows", instance=pointer
        )
    try:
        return await call.state.ctx.child(workflow, child_input)
    except ChildFailedError as exc:
        message = str(exc.error.get("message", "")) if exc.error else ""
        raise TaskError.standard(
            "runtime",
            f"subflow {target} ended {exc.status}" + (f": {message}" if message else ""),
            title="Subflow failed",
            instance=pointer,
        ) from None
