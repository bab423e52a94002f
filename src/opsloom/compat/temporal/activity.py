"""Activity definitions and what activity code calls, with the names of ``temporalio.activity``.

An activity runs as an opsloom step of the workflow that calls it: each attempt is a step
attempt, and :func:`info` tells which one. :func:`heartbeat` details are kept for the next
attempt (in the worker's process) and a ``heartbeat_timeout`` fails an attempt that stops
beating.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar

from opsloom.compat.temporal.converter import to_json
from opsloom.compat.temporal.runtime import ActivityInfo, current_activity, mark_activity
from opsloom.compat.temporal.runtime import in_activity as in_activity

F = TypeVar("F", bound=Callable[..., Any])

#: The running activity (``activity.info()``), as in ``temporalio.activity.Info``.
Info = ActivityInfo


def defn(
    fn: F | None = None,
    *,
    name: str | None = None,
    no_thread_cancel_exception: bool = False,
    dynamic: bool = False,
) -> Any:
    """Declare an activity (async, or plain: a plain one runs in a thread)."""
    if dynamic:
        raise ValueError("dynamic activities are not supported by opsloom.compat.temporal")

    def decorate(target: F) -> F:
        mark_activity(target, name)
        return target

    return decorate(fn) if fn is not None else decorate


def info() -> ActivityInfo:
    """The running activity: its type, attempt (1-based), workflow, last heartbeat details."""
    return current_activity().info


def heartbeat(*details: Any) -> None:
    """Tell that the activity is alive; ``details`` reach the next attempt's ``info()``."""
    current_activity().beat(tuple(to_json(detail) for detail in details))


class _ActivityLogger(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        if in_activity():
            current = current_activity().info
            extra = kwargs.setdefault("extra", {})
            extra.setdefault("activity_type", current.activity_type)
            extra.setdefault("attempt", current.attempt)
            extra.setdefault("workflow_id", current.workflow_id)
        return msg, kwargs


#: A logger that adds the activity's type, attempt and workflow id to each record.
logger = _ActivityLogger(logging.getLogger("opsloom.compat.temporal.activity"), {})
