"""What one run of a document carries from task to task: context, variables, deadline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsloom.expr.problem import TaskError

if TYPE_CHECKING:
    from opsloom.engine.context import Context


@dataclass(slots=True)
class RunState:
    """The mutable state of one document run, shared by all its tasks.

    Attributes:
        ctx: the engine context of the run.
        context: ``$context``, changed by ``export.as``.
        workflow: ``$workflow`` (id, definition, input, startedAt).
        runtime: ``$runtime`` (name, version, metadata).
        secrets: ``$secrets``.
    """

    ctx: Context
    context: Any
    workflow: dict[str, Any]
    runtime: dict[str, Any]
    secrets: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Scope:
    """Variables added by enclosing tasks (``for`` item/index, ``catch`` error) and a deadline.

    Attributes:
        names: the extra variables visible to expressions.
        deadline: epoch seconds by which enclosing tasks must end (task/workflow timeouts).
        deadline_owner: the pointer of the task whose timeout set ``deadline``.
    """

    names: Mapping[str, Any] = field(default_factory=dict)
    deadline: float | None = None
    deadline_owner: str | None = None

    def with_names(self, **names: Any) -> Scope:
        return Scope({**self.names, **names}, self.deadline, self.deadline_owner)

    def with_deadline(self, deadline: float, owner: str) -> Scope:
        if self.deadline is not None and self.deadline <= deadline:
            return self
        return Scope(self.names, deadline, owner)


def variables(
    state: RunState, scope: Scope, *, input: Any, task: Mapping[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    """The variables of an expression evaluated in ``scope``."""
    out: dict[str, Any] = dict(scope.names)
    out["context"] = state.context
    out["input"] = input
    out["workflow"] = state.workflow
    out["runtime"] = state.runtime
    out["secrets"] = dict(state.secrets)
    if task is not None:
        out["task"] = task
    out.update(more)
    return out


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
