"""``fork``: branches run concurrently; with ``compete`` the first to finish wins, and the
others are cancelled.

The engine replays a run by position, so concurrent branches must each make exactly one durable
call for the positions to be the same on every replay. A branch that is a single leaf task is
one step and runs in this run; any other branch runs as a child run (one durable call here,
with its own history). A competition is a ``ctx.race``: its winner is recorded, so it is the
same on every replay.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opsloom.dsl.scope import RunState, Scope
from opsloom.dsl.task import EndFlow, TaskCall, entries, is_leaf, task_type
from opsloom.expr.problem import TaskError

if TYPE_CHECKING:
    from opsloom.dsl.interpreter import Interpreter


async def run_fork(call: TaskCall) -> Any:
    """Run the branches; the list of their outputs, or the winner's output with ``compete``."""
    spec = call.task["fork"]
    compete = bool(spec.get("compete"))
    runs = []
    for i, (name, branch) in enumerate(entries(spec.get("branches"))):
        where = f"{call.pointer}/fork/branches/{i}/{name}"
        branch_call = replace(call, name=name, task=branch, pointer=where)
        if is_leaf(task_type(branch), branch):
            runs.append(branch_call.step())
        else:
            runs.append(_child(branch_call))
    if compete:
        # The first branch to finish wins (recorded, so replays agree); the others are
        # cancelled: a running step is interrupted, a branch's child run is cancelled.
        _, won = await call.state.ctx.race(*runs)
        if "error" in won:
            raise TaskError.from_dict(won["error"])
        return won.get("output")
    outcomes: list[dict[str, Any]] = await call.state.ctx.gather(*runs)
    for outcome in outcomes:
        if "error" in outcome:
            raise TaskError.from_dict(outcome["error"])
    return [outcome.get("output") for outcome in outcomes]


async def _child(call: TaskCall) -> dict[str, Any]:
    state, scope = call.state, call.scope
    payload = {
        "pointer": call.pointer,
        "input": call.value,
        "context": state.context,
        "names": dict(scope.names),
        "deadline": scope.deadline,
        "deadline_owner": scope.deadline_owner,
        "workflow": {k: v for k, v in state.workflow.items() if k != "definition"},
    }
    result: dict[str, Any] = await state.ctx.child(call.interp.branch_workflow, payload)
    return result


async def run_branch(interp: Interpreter, ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """The workflow function of a branch run: one task of the parent's document."""
    pointer = str(payload["pointer"])
    name, task = interp.task_at(pointer)
    state = RunState(
        ctx=ctx,
        context=payload.get("context"),
        workflow={**payload.get("workflow", {}), "definition": interp.data},
        runtime=interp.runtime.describe(),
        secrets=interp.secrets,
    )
    scope = Scope(
        payload.get("names") or {}, payload.get("deadline"), payload.get("deadline_owner")
    )
    try:
        call = TaskCall(interp, name, task, pointer, payload.get("input"), state, scope)
        output, _ = await interp.run_task(call)
    except EndFlow as end:
        output = end.output
    except TaskError as error:
        return {"error": error.to_dict(), "at": ctx.now().timestamp()}
    return {"output": output, "at": ctx.now().timestamp()}
