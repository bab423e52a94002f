"""``ctx.race``: branches run concurrently, the first to finish wins, the others are cancelled.

Each branch is one durable call (a step, a timer, a signal wait, a child run). The race takes
a position of its own; when a branch finishes, the winner's index is recorded there together
with a final entry ("lost the race") at every loser's position, in one write. A loser's running
step is cancelled, its child run is cancelled, its timer or wait is dropped.

On replay the recorded winner wins again, whatever finishes first this time: every branch is
started (so that each takes the same position as before), the winner replays its recorded
outcome, and the losers, whose entries are final, are cancelled without running anything.
When a run stopped after its winner finished but before the race was recorded, the race is
run again: the branches recorded as finished finish at once, and the lowest index among the
branches finished when the race wakes wins — on every replay alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import CodeType
from typing import Any

from opsloom.engine.replay import READ_ONLY, ReplayState
from opsloom.engine.step import StepRunner
from opsloom.engine.wait import Waits
from opsloom.errors import OpsloomError
from opsloom.model import ErrorInfo, StepKind, StepStatus

_FINAL = (StepStatus.COMPLETED, StepStatus.FAILED)


class RaceLostError(OpsloomError):
    """Recorded at the position of a branch that lost a race (it was cancelled)."""

    code = "race_lost"


class Races(ReplayState):
    """``ctx.race``."""

    def race(self, awaitables: Sequence[Awaitable[Any]]) -> Coroutine[Any, Any, tuple[int, Any]]:
        if not awaitables:
            raise ValueError("ctx.race needs at least one branch")
        return self._race(self._next(), list(awaitables))

    async def _race(self, seq: int, awaitables: list[Awaitable[Any]]) -> tuple[int, Any]:
        rec = self._recorded(seq)
        known: int | None = None
        if rec is not None:
            self._check(seq, rec, StepKind.VALUE, "race")
            known = int(rec.output["winner"])
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        tasks: list[asyncio.Future[Any]] = []
        for awaitable in awaitables:
            task: asyncio.Future[Any] = asyncio.ensure_future(awaitable)
            self.units += 1
            tasks.append(task)
        for task in tasks:
            task.add_done_callback(functools.partial(self._race_branch_done, waiter, tasks, known))
        if not waiter.done():
            self.parked += 1
            try:
                await waiter
            except asyncio.CancelledError:
                for task in tasks:
                    task.cancel()
                raise
        winner = known if known is not None else min(i for i, t in enumerate(tasks) if t.done())
        losers = [(i, task) for i, task in enumerate(tasks) if i != winner]
        calls = {i: _durable_call(task) for i, task in losers if not task.done()}
        for _, task in losers:
            task.cancel()
        for _, task in losers:
            task.add_done_callback(_retrieve)
        if known is None:
            await self._record_race(seq, winner, calls)
        else:
            await self._cancel_children(calls.values())
        outcome = tasks[winner]
        exc = outcome.exception()
        if exc is not None:
            raise exc
        return winner, outcome.result()

    def _race_branch_done(
        self,
        waiter: asyncio.Future[None],
        tasks: list[asyncio.Future[Any]],
        known: int | None,
        task: asyncio.Future[Any],
    ) -> None:
        self.units -= 1
        decided = task is tasks[known] if known is not None else not task.cancelled()
        if decided and not waiter.done():
            self.parked -= 1
            waiter.set_result(None)
        self._check_quiet()

    async def _record_race(
        self, seq: int, winner: int, calls: dict[int, tuple[int, StepKind, str] | None]
    ) -> None:
        if self.frozen == READ_ONLY:  # a query's replay writes nothing and cancels nothing
            return
        now = self.clock.now()
        lost = ErrorInfo(
            RaceLostError.__name__,
            f"cancelled: branch {winner} won the race at position {seq}",
            data={"code": RaceLostError.code, "race": seq},
        ).to_dict()
        entries = [
            self._entry(
                at, kind, name, StepStatus.FAILED, error=lost, started_at=now, completed_at=now
            )
            for call in calls.values()
            if call is not None
            for at, kind, name in [call]
            if (rec := self.history.get(at)) is None or rec.status not in _FINAL
        ]
        losers = sorted(call[0] for call in calls.values() if call is not None)
        entries.append(
            self._entry(
                seq,
                StepKind.VALUE,
                "race",
                StepStatus.COMPLETED,
                output={"winner": winner, "losers": losers},
                started_at=now,
                completed_at=now,
            )
        )
        # One write: the race is never recorded without its losers' final entries, so a replay
        # that knows the winner finds nothing of the losers left to run.
        self._post(self.store.record_steps(self.fence, entries))
        await self._cancel_children(calls.values())

    async def _cancel_children(self, calls: Any) -> None:
        """Cancel the child runs of losing branches (those still open)."""
        for call in calls:
            if call is None or call[1] is not StepKind.CHILD:
                continue
            child_id = f"{self.run.id}.{call[0]}"
            with contextlib.suppress(OpsloomError):  # never started, or ended meanwhile
                await self.store.request_cancel(child_id, self.clock.now())


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Read a cancelled loser's outcome so that asyncio does not report it as never read."""
    if not task.cancelled():
        task.exception()


def _durable_call(task: asyncio.Future[Any]) -> tuple[int, StepKind, str] | None:
    """The position, kind and name of the durable call a pending branch is making, if known."""
    coro: Any = task.get_coro() if isinstance(task, asyncio.Task) else None
    while coro is not None:
        frame = getattr(coro, "cr_frame", None)
        if frame is not None:
            found = _CALLS.get(frame.f_code)
            if found is not None:
                return found(frame.f_locals)
        coro = getattr(coro, "cr_await", None)
    return None


#: The coroutines of the durable calls a branch may make, and how to read what they are.
_CALLS: dict[CodeType, Callable[[Mapping[str, Any]], tuple[int, StepKind, str]]] = {
    StepRunner._step.__code__: lambda f: (f["seq"], StepKind.STEP, f["spec"].name),
    Waits._sleep.__code__: lambda f: (f["seq"], StepKind.SLEEP, "sleep"),
    Waits._wait_for.__code__: lambda f: (f["seq"], StepKind.SIGNAL, f["name"]),
    Waits._child.__code__: lambda f: (f["seq"], StepKind.CHILD, f["workflow"]),
}
