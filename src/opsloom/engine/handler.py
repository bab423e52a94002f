"""Handlers: signals, queries and updates served by a workflow while it runs (Temporal's model).

A workflow registers handlers on its context (``ctx.on_signal``, ``ctx.on_query``,
``ctx.on_update``) every time it runs: registrations are not history entries, so a replay
registers them again by running the same code. Signals and updates reach their handlers while
the workflow waits in ``ctx.wait_until``, one delivery at a time; each delivery is a history
entry (a consumed signal at the wait's position), so a replay delivers the same ones at the
same points and rebuilds the same state.

- A *query* replays the run to its present without writing anything (see
  :mod:`opsloom.engine.query`) and calls its handler on the state the replay rebuilt.
- An *update* is checked by its validator the same way, then stored as the signal
  ``update:<name>`` with ``{"id": ..., "data": ...}``. When the workflow takes it, the handler
  runs and its result (or error) is recorded as the value entry ``update``, which the caller
  reads back. A rejected update leaves no trace in the run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from opsloom.codec import encode
from opsloom.engine.wait import Waits
from opsloom.errors import OpsloomError, WaitTimeoutError
from opsloom.model import ErrorInfo, StepKind, StepStatus

#: Signals that carry updates are named with this prefix and the update's name.
UPDATE_PREFIX = "update:"
#: The history name of a ``wait_until`` wait and of a recorded update result.
WAIT_UNTIL = "wait_until"
UPDATE_RESULT = "update"

Handler = Callable[[Any], Any]


@dataclass(slots=True)
class HandlerTable:
    """The handlers a workflow registered in this execution, by name."""

    signals: dict[str, Handler] = field(default_factory=dict)
    queries: dict[str, Handler] = field(default_factory=dict)
    updates: dict[str, tuple[Handler, Handler | None]] = field(default_factory=dict)

    def signal_names(self) -> tuple[str, ...]:
        """The signal names a ``wait_until`` takes: handled signals and update requests."""
        return (*self.signals, *(UPDATE_PREFIX + name for name in self.updates))


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise OpsloomError(f"a {kind} handler needs a non-empty name, not {name!r}")


class Handlers(Waits):
    """``ctx.on_signal``, ``ctx.on_query``, ``ctx.on_update`` and ``ctx.wait_until``."""

    handlers: HandlerTable

    def on_signal(self, name: str, fn: Handler) -> None:
        _check_name("signal", name)
        self.handlers.signals[name] = fn

    def on_query(self, name: str, fn: Handler) -> None:
        _check_name("query", name)
        self.handlers.queries[name] = fn

    def on_update(self, name: str, fn: Handler, validator: Handler | None) -> None:
        _check_name("update", name)
        self.handlers.updates[name] = (fn, validator)

    def wait_until(
        self, predicate: Callable[[], bool], timeout: float | None
    ) -> Coroutine[Any, Any, None]:
        # The deadline is a recorded value: the waits after each delivery share it on replay.
        deadline = None if timeout is None else float(self.value("now")) + timeout
        return self._wait_until(predicate, deadline)

    async def _wait_until(self, predicate: Callable[[], bool], deadline: float | None) -> None:
        while not predicate():
            names = self.handlers.signal_names()
            taken = await self._wait_signal(
                self._next(), WAIT_UNTIL, names, until=deadline, tagged=True
            )
            if taken.get("timeout"):
                raise WaitTimeoutError("the condition did not become true in time")
            await self._deliver(str(taken["name"]), taken["payload"])

    async def _deliver(self, name: str, payload: Any) -> None:
        if not name.startswith(UPDATE_PREFIX):
            await _call(self.handlers.signals[name], payload)
            return
        update = name.removeprefix(UPDATE_PREFIX)
        request = payload if isinstance(payload, dict) else {}
        fn, _ = self.handlers.updates[update]
        outcome: dict[str, Any] = {"id": request.get("id"), "name": update}
        try:
            result = await _call(fn, request.get("data"))
            encode(result, what=f"the result of update {update!r}")
            outcome["result"] = result
        except Exception as exc:  # the update fails, the run goes on (as in Temporal)
            outcome["error"] = ErrorInfo.from_exception(exc).to_dict()
        seq = self._next()
        rec = self._recorded(seq)
        if rec is not None:
            self._check(seq, rec, StepKind.VALUE, UPDATE_RESULT)
            return
        now = self.clock.now()
        self._post(
            self._record(
                seq,
                StepKind.VALUE,
                UPDATE_RESULT,
                StepStatus.COMPLETED,
                output=outcome,
                started_at=now,
                completed_at=now,
            )
        )


async def _call(fn: Handler, data: Any) -> Any:
    result = fn(data)
    if inspect.isawaitable(result):
        result = await result
    return result
