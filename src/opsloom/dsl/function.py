"""Calls that run in the workflow itself: catalog functions, ``use.functions``, subflows.

A catalog function (``call: slack-post-message:1.0.0@default``) is an async function that gets
the run's context, so it can take steps, sleep and wait like workflow code. A function of
``use.functions`` is a task definition run with the call's ``with`` as its input.
``run: workflow`` starts the named document as a child run and waits for its output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloom.dsl.problem import TaskError
from opsloom.dsl.scope import RunState, Scope, variables
from opsloom.errors import ChildFailedError, OpsloomError, WorkflowNotFoundError

if TYPE_CHECKING:
    from opsloom.dsl.interpreter import Interpreter


def parse_reference(text: str) -> tuple[str, str | None, str | None]:
    """``name[:version][@catalog]`` as its parts."""
    catalog = None
    if "@" in text:
        text, catalog = text.rsplit("@", 1)
    version = None
    if ":" in text:
        text, version = text.split(":", 1)
    return text, version, catalog


async def call_function(
    interp: Interpreter,
    name: str,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    """Run ``call: <function>`` (a ``use.functions`` entry or a catalog function)."""
    from opsloom.dsl.flow import run_task

    target = str(task["call"])
    names = variables(state, scope, input=value)
    args = await interp.render(task.get("with") or {}, value, names)
    local = (interp.use.get("functions") or {}).get(target)
    if local is not None:
        output, _ = await run_task(
            interp, target, local, f"/use/functions/{target}", args, state, scope
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
    from opsloom.dsl.catalog import FunctionCall

    call = FunctionCall(
        arguments=args, ctx=state.ctx, task=pointer, secrets=interp.secrets, input=value
    )
    try:
        return await fn(call)
    except TaskError:
        raise
    except OpsloomError as exc:
        raise TaskError.standard(
            "runtime", f"{type(exc).__name__}: {exc}", instance=pointer
        ) from None


async def run_workflow(
    interp: Interpreter,
    task: dict[str, Any],
    pointer: str,
    value: Any,
    state: RunState,
    scope: Scope,
) -> Any:
    """``run: workflow``: a deployed document as a child run; its output."""
    spec = task["run"]["workflow"]
    names = variables(state, scope, input=value)
    child_input = await interp.render(spec.get("input", value), value, names)
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
        return await state.ctx.child(workflow, child_input)
    except ChildFailedError as exc:
        message = str(exc.error.get("message", "")) if exc.error else ""
        raise TaskError.standard(
            "runtime",
            f"subflow {target} ended {exc.status}" + (f": {message}" if message else ""),
            title="Subflow failed",
            instance=pointer,
        ) from None
