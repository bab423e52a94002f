"""What a task is to the interpreter: its type, whether it is one step, and one call of it.

A :class:`TaskCall` bundles everything a task handler needs (the interpreter, the task's name,
definition and JSON pointer, its input, the run's state and the enclosing scope), so every
handler has the same one-argument shape and the dispatch tables stay plain mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloom.dsl.scope import RunState, Scope, variables
from opsloom.expr.problem import TaskError

if TYPE_CHECKING:
    from opsloom.dsl.interpreter import Interpreter

_TYPES = ("for", "try", "fork", "call", "emit", "listen", "raise", "run", "set", "switch", "wait")
_LEAF_CALLS = ("http", "openapi", "asyncapi", "grpc", "mcp", "a2a")


class EndFlow(Exception):
    """``then: end`` reached: the workflow ends with ``output``."""

    def __init__(self, output: Any) -> None:
        super().__init__("end")
        self.output = output


def task_type(task: Mapping[str, Any]) -> str:
    """The type of a task definition (``"do"`` for a plain composite)."""
    for name in _TYPES:
        if name in task:
            return name
    if "do" in task:
        return "do"
    raise TaskError.standard("validation", f"unknown task type: {sorted(task)}")


def entries(tasks: Any) -> list[tuple[str, dict[str, Any]]]:
    """``[{name: task}, …]`` as ``(name, task)`` pairs."""
    out: list[tuple[str, dict[str, Any]]] = []
    for item in tasks or []:
        ((name, task),) = item.items()
        out.append((name, task))
    return out


def is_leaf(kind: str, task: Mapping[str, Any]) -> bool:
    """Whether the task runs as one step (no durable wait, no nested tasks)."""
    if kind in ("set", "switch", "raise"):
        return True
    if kind == "call":
        return task["call"] in _LEAF_CALLS
    if kind == "run":
        return "workflow" not in (task.get("run") or {})
    return False


@dataclass(frozen=True, slots=True)
class TaskCall:
    """One task about to run, with all that its handler needs.

    Attributes:
        interp: the interpreter of the document.
        name: the task's name in its list.
        task: the task definition.
        pointer: the task's JSON pointer (``/do/0/setRed``); a leaf task's step is named so.
        value: the task's input.
        state: the state of the run.
        scope: variables and deadline of the enclosing tasks.
    """

    interp: Interpreter
    name: str
    task: dict[str, Any]
    pointer: str
    value: Any
    state: RunState
    scope: Scope

    def names(self, **more: Any) -> dict[str, Any]:
        """The variables of an expression of this task (``$input`` is its input)."""
        return variables(self.state, self.scope, input=self.value, **more)

    async def step(self) -> dict[str, Any]:
        """Run this leaf task as its checkpointed step; the step's record."""
        leaf = self.interp.leaf(self.pointer)
        record: dict[str, Any] = await self.state.ctx.step(
            leaf, self.name, self.task, self.value, self.state, self.scope
        )
        return record
