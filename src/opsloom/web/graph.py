"""A document's tasks as a graph to draw: each task a node, nested task lists as lanes.

Sequential tasks follow each other; a ``fork`` draws its branches side by side, ``try`` its
body and its ``catch``, ``for`` its body under the loop, and ``switch`` lists its cases with
the task each one goes to (``then``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsloom.dsl.document import Document
from opsloom.dsl.semantic import TASK_KINDS


@dataclass(slots=True)
class Lane:
    """A labelled list of tasks inside a task (a fork branch, a try body, a loop body)."""

    label: str
    nodes: list[Node]
    side_by_side: bool = False


@dataclass(slots=True)
class Node:
    """One task: its name, kind, a short description, where it goes next, and its lanes."""

    name: str
    kind: str
    pointer: str
    detail: str = ""
    then: str = ""
    cases: list[tuple[str, str, str]] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)
    parallel: bool = False
    #: For a run: ``taken``, ``current`` (waiting or retrying there) or ``failed``; else "".
    state: str = ""


def _kind(task: dict[str, Any]) -> str:
    return next((k for k in TASK_KINDS if k in task), "task")


def _detail(kind: str, task: dict[str, Any]) -> str:
    value = task.get(kind)
    if kind == "call":
        return str(value)
    if kind == "wait":
        return str(value)
    if kind == "for":
        spec = value if isinstance(value, dict) else {}
        return f"each {spec.get('each', 'item')} in {spec.get('in', '?')}"
    if kind == "raise":
        error = value.get("error") if isinstance(value, dict) else None
        return str(error.get("title") or error.get("type")) if isinstance(error, dict) else ""
    if kind == "emit":
        event = value.get("event") if isinstance(value, dict) else None
        with_ = event.get("with") if isinstance(event, dict) else None
        return str(with_.get("type", "")) if isinstance(with_, dict) else ""
    if kind == "listen":
        return "waits for events"
    if kind == "run" and isinstance(value, dict):
        return ", ".join(sorted(value))
    return ""


def _nodes(tasks: Any, at: str) -> list[Node]:
    out: list[Node] = []
    if not isinstance(tasks, list):
        return out
    for index, entry in enumerate(tasks):
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        ((name, task),) = entry.items()
        if not isinstance(task, dict):
            continue
        pointer = f"{at}/{index}/{name}"
        kind = _kind(task)
        node = Node(name, kind, pointer, _detail(kind, task), str(task.get("then", "")))
        body = task.get(kind)
        if kind == "do":
            node.lanes.append(Lane("do", _nodes(body, f"{pointer}/do")))
        elif kind == "for":
            node.lanes.append(Lane("each", _nodes(task.get("do"), f"{pointer}/do")))
        elif kind == "fork" and isinstance(body, dict):
            branches = _nodes(body.get("branches"), f"{pointer}/fork/branches")
            node.lanes += [Lane(b.name, [b]) for b in branches]
            node.parallel = True
            node.detail = "first to finish wins" if body.get("compete") else "all branches"
        elif kind == "try":
            node.lanes.append(Lane("try", _nodes(body, f"{pointer}/try")))
            catch = task.get("catch") if isinstance(task.get("catch"), dict) else {}
            assert isinstance(catch, dict)
            node.lanes.append(Lane("catch", _nodes(catch.get("do"), f"{pointer}/catch/do")))
        elif kind == "switch" and isinstance(body, list):
            for case in body:
                if isinstance(case, dict) and len(case) == 1:
                    ((label, spec),) = case.items()
                    if isinstance(spec, dict):
                        when = str(spec.get("when", "otherwise"))
                        node.cases.append((str(label), when, str(spec.get("then", "continue"))))
        out.append(node)
    return out


def document_graph(document: Document) -> list[Node]:
    """The top-level task list of ``document`` as nodes."""
    return _nodes(document.data.get("do"), "/do")


#: Which state wins when a task holds steps in several (a failed branch beats a taken one).
_RANK = {"": 0, "taken": 1, "current": 2, "failed": 3}
_STATE_OF = {"completed": "taken", "waiting": "current", "retrying": "current", "failed": "failed"}


def mark_path(nodes: list[Node], steps: dict[str, str]) -> None:
    """Mark the tasks a run went through, from its steps' names (task pointers) and statuses."""
    for node in nodes:
        for name, status in steps.items():
            if name == node.pointer or name.startswith(node.pointer + "/"):
                state = _STATE_OF.get(status, "")
                if _RANK[state] > _RANK[node.state]:
                    node.state = state
        for lane in node.lanes:
            mark_path(lane.nodes, steps)
