"""The replay cursor of one execution and the accounting of its branches.

A workflow is replayed from its start on every claim. Each durable call takes the next position
(``seq``) and compares itself with the history entry recorded there: the same kind and name
return the recorded outcome; anything else is a :class:`NonDeterminismError`.

Branches (the main coroutine and each ``gather`` branch) are *parked* when they wait on
something durable or on their own branches. When every live branch is parked and at least one
waits on something durable, the run is quiescent and can leave memory.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from opsloom.engine.registry import StepSpec, WorkflowSpec
from opsloom.errors import LeaseLostError, NonDeterminismError, StoreError
from opsloom.model import RunRecord, StepKind, StepRecord, StepStatus
from opsloom.model.observer import Observer
from opsloom.store.base import Claim

if TYPE_CHECKING:
    from opsloom.clock import Clock
    from opsloom.engine.execution import Execution
    from opsloom.engine.registry import Registry
    from opsloom.store.base import Store


#: ``frozen`` of an execution that replays a run to answer a query: it writes nothing and
#: starts nothing; every durable call past the recorded history parks.
READ_ONLY = "read-only"


class Host(Protocol):
    """What an execution needs from the worker that runs it."""

    store: Store
    clock: Clock
    registry: Registry
    observer: Observer

    @property
    def hold_seconds(self) -> float:
        """A timer due in less than this many seconds is waited for in memory instead of
        parking."""
        ...

    @property
    def keeps_parked(self) -> bool:
        """Whether a run that parks may keep its live execution here (see :meth:`keep`)."""
        ...

    def notify(self) -> None: ...

    def keep(self, execution: Execution) -> bool:
        """The run is parking with every branch at a wait it can go on from: keep its live
        execution until the run is claimed again. False: the execution is not kept."""
        ...

    def forget(self, execution: Execution) -> None:
        """The kept execution could not park its run: it is no longer kept."""
        ...

    def execution_done(self, execution: Execution) -> None: ...

    def run_finished(self, run: RunRecord) -> None: ...


class DetachedHost:
    """The host of an execution that no worker runs (a replay that answers a query, or one
    that checks code against a history): nothing to wake, nothing to report when it ends."""

    def __init__(self, store: Store, clock: Clock, registry: Registry) -> None:
        self.store = store
        self.clock = clock
        self.registry = registry
        self.observer = Observer()
        self.hold_seconds = 0.0
        self.keeps_parked = False

    def notify(self) -> None:
        return None

    def keep(self, execution: Execution) -> bool:
        return False

    def forget(self, execution: Execution) -> None:
        return None

    def execution_done(self, execution: Execution) -> None:
        return None

    def run_finished(self, run: RunRecord) -> None:
        return None


#: Entries no later call looks up once the call at their position has read them.
_FINAL = (StepStatus.COMPLETED, StepStatus.FAILED)

#: What a final entry becomes once its call has read it: the position stays known (a patch
#: check, a race settling its losers and the end of the code ask whether it was recorded and
#: whether it was final), its record and output leave memory.
READ = StepRecord(run_id="", seq=0, kind=StepKind.VALUE, name="", status=StepStatus.COMPLETED)

#: Freezes after which the run parks (instead of closing) once its running steps are done.
_PARKING = ("drain", "pause")


class _Group:
    """Branches of one ``gather`` call still running."""

    __slots__ = ("future", "remaining")

    def __init__(self, remaining: int, future: asyncio.Future[None]) -> None:
        self.remaining = remaining
        self.future = future


def _first_failure(branches: list[asyncio.Future[Any]]) -> BaseException | None:
    """The first failure in argument order; every branch's outcome is read (so none is
    reported as never retrieved)."""
    failures = [branch.exception() for branch in branches]
    return next((exc for exc in failures if exc is not None), None)


class ReplayState:
    """History, position and branch accounting shared by every durable primitive."""

    def __init__(self, host: Host, claim: Claim, spec: WorkflowSpec) -> None:
        self.host = host
        self.store = host.store
        self.clock = host.clock
        self.observer = host.observer
        self.run = claim.run
        self.fence = claim.fence
        self.history = claim.history
        self.signals = claim.signals
        self.spec = spec
        self.seq = 0
        self.units = 1  # the main coroutine, plus one per live gather branch
        self.parked = 0  # units waiting on a durable wait or on their gather branches
        self.blocked = 0  # units waiting on a durable wait
        self.wakes: list[float] = []
        self._in_main = False  # the workflow coroutine is running in ``task``
        self._interrupted = False
        self._last_write: asyncio.Future[None] | None = None
        self.stack: list[tuple[StepSpec, tuple[Any, ...], dict[str, Any]]] = []
        # "cancel", "timeout", "drain", "pause" or READ_ONLY: start nothing new.
        self.frozen: str | None = None
        self.tearing_down = False
        self.fatal: BaseException | None = None
        # ``fatal`` as it was first re-raised, and its traceback then (see ``_raise_fatal``).
        self._fatal_origin: BaseException | None = None
        self._fatal_tb: TracebackType | None = None
        self.task: asyncio.Task[None] | None = None
        self._taken: set[int] = set()
        # The last position of the run's history as stored (see ``Store.claim``'s ``known``).
        self.last_seq = max(self.history, default=0)
        self.fixed = 0  # units at a wait that cannot go on in place (see ``_rest``)
        self._resting: list[tuple[asyncio.Future[None], float | None]] = []
        # The run is parking with its live execution (``_keep``), or was kept.
        self._parking = False
        #: Child runs the workflow waits for, by position: closing the run on its deadline
        #: cancels them (those started by this execution are not in ``history``).
        self.open_children: dict[int, str] = {}

    # --- branches and positions ---------------------------------------------------------------

    def _check_quiet(self) -> None:
        if self._parking:
            return
        # A freeze (drain, pause) needs no case of its own: a branch it holds back waits in
        # ``_block``, so it counts as blocked. And with every live branch parked, one is: a
        # branch parked on its own branches (gather, race) has one of them still live.
        if self.parked >= self.units and self.blocked:
            self._quiet()

    def _quiet(self) -> None:
        """Every branch waits: interrupt the workflow, which then parks or closes."""
        self._settle()

    async def _block(self, wake: float | None) -> NoReturn:
        """Wait for good: the run parks (or closes) and is replayed when it goes on."""
        self.fixed += 1
        try:
            await self._wait(wake, None)
        finally:
            if not self._interrupted:
                self.fixed -= 1
        raise AssertionError("a parked branch was resumed")  # pragma: no cover

    async def _rest(self, wake: float | None) -> None:
        """Wait on something durable (a signal, a timer, a child run) from which the branch
        can go on in place: when the worker keeps the parked run's live execution and claims
        the run again, this returns, and the caller looks again at what it waits for."""
        future = asyncio.get_running_loop().create_future()
        resting = (future, wake)
        self._resting.append(resting)
        try:
            await self._wait(wake, future)
        except asyncio.CancelledError:
            if not self._interrupted:
                self._resting.remove(resting)
            raise

    async def _wait(self, wake: float | None, future: asyncio.Future[None] | None) -> None:
        self.parked += 1
        self.blocked += 1
        if wake is not None:
            self.wakes.append(wake)
        self._check_quiet()
        try:
            await (asyncio.get_running_loop().create_future() if future is None else future)
        except asyncio.CancelledError:
            if not self._interrupted:
                # Only a race stops one branch while the run goes on: it waits no more.
                self.parked -= 1
                self.blocked -= 1
                if wake is not None:
                    self.wakes.remove(wake)
            raise

    def _wake_resting(self) -> None:
        """Let every resting branch go on (the run was claimed again, see ``_rest``)."""
        resting, self._resting = self._resting, []
        for _, wake in resting:
            self.parked -= 1
            self.blocked -= 1
            if wake is not None:
                self.wakes.remove(wake)
        for future, _ in resting:
            future.set_result(None)

    def _frozen_wake(self) -> float | None:
        """When a branch held back by ``frozen`` may go on: at once after a drain or a pause
        (the pause itself holds the run back), never after a cancel or a timeout."""
        return self.clock.now() if self.frozen in _PARKING else None

    def _next(self) -> int:
        # Once interrupted (parked, cancelled, timed out) the workflow may still run code in an
        # ``except CancelledError`` or ``finally``: a durable call there must not wait forever.
        if self.tearing_down or self._interrupted:
            raise asyncio.CancelledError()
        if self.fatal is not None:
            # The run is broken (its replay diverged, a write failed, its lease is gone): code
            # that caught the error goes no further, it neither runs steps nor takes signals.
            self._raise_fatal()
        self.seq += 1
        return self.seq

    def _recorded(self, seq: int) -> StepRecord | None:
        """The history entry at ``seq``, read by the call that takes that position.

        A final entry (completed, failed) is replaced by :data:`READ` as it is read: its call
        never reads it again, so a run resumed after a long history does not carry all of it
        for the rest of its execution. Open entries (a waiting timer or child, a retrying step)
        stay.
        """
        rec = self.history.get(seq)
        if rec is not None and rec.status in _FINAL:
            self.history[seq] = READ
        return rec

    def _check(self, seq: int, rec: StepRecord, kind: StepKind, name: str) -> None:
        if rec.kind is kind and rec.name == name:
            return
        exc = NonDeterminismError(
            f"run {self.run.id} replay diverged at position {seq}: the history has "
            f"{rec.kind} {rec.name!r} but the workflow now calls {kind} {name!r}",
            seq=seq,
            expected=f"{rec.kind} {rec.name}",
            got=f"{kind} {name}",
        )
        self.fatal = exc
        raise exc

    async def _write(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except (LeaseLostError, StoreError) as exc:
            self.fatal = exc
            raise

    def _entry(
        self, seq: int, kind: StepKind, name: str, status: StepStatus, **fields: Any
    ) -> StepRecord:
        """The history entry at ``seq`` of this run."""
        if seq > self.last_seq:
            self.last_seq = seq
        return StepRecord(
            run_id=self.run.id, seq=seq, kind=kind, name=name, status=status, **fields
        )

    def _record(
        self, seq: int, kind: StepKind, name: str, status: StepStatus, **fields: Any
    ) -> Awaitable[None]:
        """Queue the history entry at ``seq`` (fenced: refused once the lease is lost)."""
        if self.frozen == READ_ONLY:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return self.store.record_step(self.fence, self._entry(seq, kind, name, status, **fields))

    def _post(self, pending: Awaitable[None]) -> None:
        """Queue a write without waiting: the store applies a run's writes in call order."""
        future = asyncio.ensure_future(pending)
        future.add_done_callback(self._posted)
        self._last_write = future

    async def _barrier(self) -> None:
        """Wait until every write queued so far is durable (or raise what broke the run)."""
        last = self._last_write
        if last is not None:
            if not last.done():
                # Awaiting the store's future directly is the cheapest wait. Branches are only
                # cancelled all together (the run parks or stops), and a cancelled future still
                # has its write committed, so nothing is lost if this await is interrupted.
                await last
            elif self.fatal is None and not last.cancelled():
                # Failed already, before its done-callback (``_posted``) had its turn: the
                # run must not go on as if that write were durable.
                self._posted(last)
        if self.fatal is not None:
            self._raise_fatal()

    def _raise_fatal(self) -> NoReturn:
        """Raise again what broke the run (``fatal``), with the traceback it had when first
        raised again.

        Raising one exception object adds the raising frames to its traceback: without the
        reset, the error that code catches and meets again at each durable call would carry
        the frames of every earlier raise. The error is read from ``self``, never held in a
        local: this frame goes into its traceback, and would make a cycle of an error that a
        later one replaces as ``fatal`` (``_let_go`` clears only the last one's traceback).
        """
        assert self.fatal is not None
        if self._fatal_origin is not self.fatal:
            self._fatal_origin = self.fatal
            self._fatal_tb = self.fatal.__traceback__
        raise self.fatal.with_traceback(self._fatal_tb)

    def _posted(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None and self.fatal is None:
            self.fatal = exc
            self._settle()

    def _settle(self) -> None:
        """Interrupt the workflow: it went quiescent, must stop, or a write failed."""
        if self._in_main and not self._interrupted and self.task is not None:
            self._interrupted = True
            self.task.cancel()

    # --- fan-out ----------------------------------------------------------------------------

    async def gather(self, awaitables: Sequence[Awaitable[Any]]) -> list[Any]:
        if not awaitables:
            return []
        group = _Group(len(awaitables), asyncio.get_running_loop().create_future())
        branches: list[asyncio.Future[Any]] = []
        for awaitable in awaitables:
            branch: asyncio.Future[Any] = asyncio.ensure_future(awaitable)
            self.units += 1
            branch.add_done_callback(functools.partial(self._branch_done, group))
            branches.append(branch)
        self.parked += 1
        try:
            await group.future
        except asyncio.CancelledError:
            for branch in branches:
                branch.cancel()
            raise
        if any(branch.cancelled() for branch in branches):
            raise asyncio.CancelledError()
        failure = _first_failure(branches)
        if failure is None:
            return [branch.result() for branch in branches]
        # The error's traceback will hold this frame: were the branches' tasks (which hold
        # the error) still in it, only the cycle collector could free them.
        del branches, branch
        try:
            raise failure
        finally:
            del failure

    def _branch_done(self, group: _Group, task: asyncio.Future[Any]) -> None:
        self.units -= 1
        group.remaining -= 1
        if group.remaining == 0:
            self.parked -= 1
            if not group.future.done():
                group.future.set_result(None)
        self._check_quiet()
