"""One attempt at advancing one run: replay its history, run new steps, then park or close.

The workflow function is replayed from its start on a claim. Recorded entries return their
recorded value; new ones run and are recorded before the workflow sees their result. When every
branch of the workflow is parked on something durable (a timer, a signal, a child run, a retry
delay) the run is *quiescent*: the job is released with the earliest wake time, so a waiting
run holds no worker slot.

Then either the coroutine is dropped (the run costs no memory; the next claim replays it), or,
when every branch waits on a timer, a signal (an event) or a child run and the worker has room,
the worker *keeps* the live execution: the job is released all the same, and when the same
worker claims the run again and the store says no one else did in between (the fencing token
went up by one, the history ends where it did), the execution goes on from its waits with the
new lease instead of replaying the history. Anything else (another owner meanwhile, a stop, an
eviction) drops the kept execution without writing anything, and the run is replayed: replay
stays the one recovery path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

from opsloom.codec import decode, encode
from opsloom.engine.context import Context, _current_step
from opsloom.engine.event import Events
from opsloom.engine.handler import Handlers, HandlerTable
from opsloom.engine.patch import Patches
from opsloom.engine.race import Races
from opsloom.engine.registry import WorkflowSpec
from opsloom.engine.replay import READ_ONLY, Host
from opsloom.engine.step import StepRunner, error_data
from opsloom.engine.wait import Waits
from opsloom.errors import (
    LeaseLostError,
    NonDeterminismError,
    OpsloomError,
    RunCancelledError,
    RunTimeoutError,
    StepFailedError,
    StoreError,
)
from opsloom.model import ErrorInfo, RunStatus, StepKind, StepStatus
from opsloom.store.base import Claim

log = logging.getLogger("opsloom.engine")

__all__ = ["Execution", "Host"]


class Execution(StepRunner, Events, Handlers, Waits, Races, Patches):
    """Drives one claimed run until it completes, fails, parks or loses its lease."""

    def __init__(self, host: Host, claim: Claim, spec: WorkflowSpec) -> None:
        super().__init__(host, claim, spec)
        self.handlers = HandlerTable()
        self._completion: tuple[Awaitable[None], bytes] | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        # Parking with the live execution kept (see ``_keep``): True once the run is parked.
        self._keeping: asyncio.Future[bool] | None = None
        #: Dropped while kept: the execution ends without writing anything.
        self.discarded = False

    # --- entry points used by the worker ------------------------------------------------------

    async def execute(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        # A run started from a step's code may execute here at once, in a task whose context
        # is a copy of that step's: its workflow code runs in no step (``current_step``).
        _current_step.set(None)
        try:
            self._look_at_run()
            # The workflow runs inside this task. Going quiescent, a cancel, the deadline or a
            # failed write interrupt it (see ``_settle``); anything else cancelling this task is
            # the worker giving the run up, and propagates.
            self._in_main = True
            try:
                result = await self._main()
            except asyncio.CancelledError:
                self._in_main = False
                if not self._interrupted or task.uncancel() > 0:
                    raise
                self.tearing_down = True
                await self._on_quiet()
            except Exception as exc:
                self._in_main = False
                self.tearing_down = True
                if self.fatal is not None:
                    await self._close_fatal()
                else:
                    await self._close(RunStatus.FAILED, exc)
            else:
                self._in_main = False
                self.tearing_down = True
                if self.fatal is not None:
                    await self._close_fatal()
                else:
                    await self._complete(result)
        except LeaseLostError:
            log.warning("lease lost, leaving run to its new owner", extra={"run_id": self.run.id})
        except StoreError:
            log.exception(
                "store write failed; the run will be recovered when its lease expires",
                extra={"run_id": self.run.id},
            )
        finally:
            self.tearing_down = True
            self._disarm()
            self._let_go()
            self.host.execution_done(self)

    def _look_at_run(self) -> None:
        """Freeze the workflow as the claimed run asks (cancelled, paused, past its deadline),
        or arm its deadline."""
        run = self.run
        now = self.clock.now()
        if run.cancel_requested:
            self.frozen = "cancel"
        elif run.paused is not None:
            self.frozen = "pause"
        elif run.deadline is not None and now >= run.deadline:
            self.frozen = "timeout"
        if run.deadline is not None and self.frozen is None:
            loop = asyncio.get_running_loop()
            self._deadline_timer = loop.call_at(
                loop.time() + max(0.0, run.deadline - now), self._timed_out
            )

    def _disarm(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    # --- a kept execution -------------------------------------------------------------------

    def _quiet(self) -> None:
        # The worker takes the execution before the run is parked in the store: a claim that
        # follows the park at once (a signal sent meanwhile) then finds it kept.
        if (
            self.fixed == 0
            and self.frozen is None
            and self.fatal is None
            and not self._interrupted
            and self.host.keeps_parked
            and self.host.keep(self)
        ):
            self._parking = True
            self._disarm()  # the run parks with its deadline as a wake time
            self._keeping = asyncio.ensure_future(self._keep())
        else:
            self._settle()

    async def _keep(self) -> bool:
        """Park the run with its branches left at their waits (the worker keeps the
        execution meanwhile). True once the run is parked in the store."""
        run = self.run
        try:
            await self._barrier()
            now = self.clock.now()
            wake = self._wake_at(None)
            await self.store.suspend(self.fence, wake, now)
        except Exception as exc:  # the usual way out (``_on_quiet``) sees what broke the run
            self.host.forget(self)
            if self.fatal is None:
                self.fatal = exc
            self._parking = False
            self._settle()
            return False
        self.observer.run_parked(run, wake, now)
        return True

    def resume(self, claim: Claim) -> None:
        """The worker claimed the kept run again and no one else did in between: go on from
        the waits with the new lease, the run as it is now and its waiting signals."""
        assert claim.kept and claim.run.id == self.run.id
        self.run, self.fence, self.signals = claim.run, claim.fence, claim.signals
        # Signals taken before parking were consumed in the store: none is handed over again.
        self._taken = set()
        self._parking = False
        self._keeping = None
        self._look_at_run()
        self._wake_resting()

    def discard(self) -> None:
        """Drop a kept execution without writing anything: the run, parked in the store, is
        replayed by whoever claims it next."""
        self.discarded = True
        self._settle()

    async def replay(self) -> HandlerTable:
        """Replay the run to its present without writing or starting anything (for queries).

        Afterwards the workflow's state is what its recorded history built. Returns the
        handlers it registered on the way; the execution keeps none of them (they close over
        the context, which points back at the execution).
        """
        self.frozen = READ_ONLY
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self._in_main = True
        try:
            await self._main()
        except asyncio.CancelledError:
            if not self._interrupted or task.uncancel() > 0:
                raise
        except Exception:
            pass
        finally:
            self._in_main = False
            self.tearing_down = True
            handlers = self._let_go()
            # The task's result will be the handlers: it must not be reachable from here.
            self.task = None
        return handlers

    def _let_go(self) -> HandlerTable:
        """The execution is over: drop what points back at it, so that reference counting
        frees it (and its task, run, futures) at once instead of the cycle collector later.

        That is the handlers the workflow registered (closures over the context, which points
        at the execution), returned to the caller, and the traceback of what broke the run (its
        frames hold the execution); the error itself stays, for whoever reads it afterwards.
        """
        if self.fatal is not None:
            self.fatal.__traceback__ = None
        self._fatal_origin = self._fatal_tb = None
        handlers, self.handlers = self.handlers, HandlerTable()
        return handlers

    def _timed_out(self) -> None:
        self.frozen = "timeout"
        self._settle()

    def request_cancel(self) -> None:
        """Cancel this run now: stop its branches, then compensate and close it."""
        self.frozen = "cancel"
        self._settle()

    def drain(self) -> None:
        """Graceful shutdown: let running steps finish, start no new one, then park."""
        self._freeze("drain")

    def request_pause(self) -> None:
        """The run was paused: let running steps finish, start no new one, then park (its
        job is held back until the run is resumed; its timers keep their times)."""
        self._freeze("pause")

    def _freeze(self, why: str) -> None:
        if self.frozen is None:
            self.frozen = why
            self._check_quiet()

    # --- outcomes ---------------------------------------------------------------------------

    async def _main(self) -> Any:
        # The context points at this execution; this execution keeps no pointer back, so a
        # finished execution is freed by reference counting, not left to the cycle collector.
        ctx = Context(self)
        if self.spec.takes_input:
            result = await self.spec.fn(ctx, self.run.input)
        else:
            result = await self.spec.fn(ctx)
        # Queue the completion in the same turn of the loop as the last step's record, so that
        # both usually share one commit; ``_complete`` then only waits for it.
        if self.fatal is None and not self.tearing_down and self.frozen != READ_ONLY:
            self._completion = self._queue_completion(result)
        return result

    def _queue_completion(self, result: Any) -> tuple[Awaitable[None], bytes] | None:
        """Write the completion, or return None when the run must not complete this way."""
        if self._history_beyond() is not None:
            return None
        try:
            blob = encode(result, what=f"the output of workflow {self.run.workflow!r}")
        except OpsloomError:
            return None
        pending = self.store.finish_run(
            self.fence, RunStatus.COMPLETED, blob, None, self.clock.now()
        )
        return asyncio.ensure_future(pending), blob

    def _history_beyond(self) -> int | None:
        """A recorded position the code did not reach (the code changed), if any."""
        last = max((seq for seq in self.history if seq > 0), default=0)
        return last if last > self.seq else None

    async def _on_quiet(self) -> None:
        if self.discarded:
            return
        keeping, self._keeping = self._keeping, None
        if keeping is not None and await keeping:
            # Interrupted once parked with the execution kept: the run is parked already,
            # and whatever interrupted it is seen when it is claimed again.
            return
        if self.fatal is not None:
            await self._close_fatal()
            return
        if self.frozen == "cancel":
            await self._close(RunStatus.CANCELLED, RunCancelledError("the run was cancelled"))
            return
        if self.frozen == "timeout":
            await self._close(
                RunStatus.TIMED_OUT, RunTimeoutError("the run went past its deadline")
            )
            return
        now = self.clock.now()
        wake = self._wake_at(now if self.frozen == "drain" else None)
        await self.store.suspend(self.fence, wake, now)
        self.observer.run_parked(self.run, wake, now)

    def _wake_at(self, at: float | None) -> float | None:
        """When the parked run must be claimed again: ``at`` (a drain: now), else its earliest
        timer, or its deadline if that comes first."""
        wake = at if at is not None else min(self.wakes) if self.wakes else None
        if self.run.deadline is not None:
            wake = self.run.deadline if wake is None else min(wake, self.run.deadline)
        return wake

    async def _complete(self, result: Any) -> None:
        if self._completion is not None:
            pending, blob = self._completion
            await pending
            self._finished(RunStatus.COMPLETED, decode(blob), None)
            return
        last = self._history_beyond()
        if last is not None:
            entry = self.history[last]
            self.fatal = NonDeterminismError(
                f"run {self.run.id} finished at position {self.seq} but its history goes on to "
                f"position {last} ({entry.kind} {entry.name!r}): the workflow code changed",
                seq=last,
                expected=f"{entry.kind} {entry.name}",
                got="end of workflow",
            )
            await self._close_fatal()
            return
        try:
            blob = encode(result, what=f"the output of workflow {self.run.workflow!r}")
        except OpsloomError as exc:
            await self._close(RunStatus.FAILED, exc)
            return
        await self.store.finish_run(self.fence, RunStatus.COMPLETED, blob, None, self.clock.now())
        self._finished(RunStatus.COMPLETED, decode(blob), None)

    async def _close_fatal(self) -> None:
        fatal = self.fatal
        if isinstance(fatal, LeaseLostError):
            return
        if isinstance(fatal, StoreError):
            # The store, not the workflow, failed (a lost connection, an unknown commit
            # outcome): the run is left to be recovered from its history when the lease
            # expires. Failing it here would turn a transient outage into a failed run.
            raise fatal
        assert fatal is not None
        # A diverged replay cannot be trusted to know what to undo: fail without compensation.
        error = _error_dict(fatal)
        await self.store.finish_run(self.fence, RunStatus.FAILED, None, error, self.clock.now())
        self._finished(RunStatus.FAILED, None, error)

    async def _close(self, status: RunStatus, exc: BaseException) -> None:
        self.tearing_down = True
        failures = await self._compensate()
        error = _error_dict(exc)
        if failures:
            error.setdefault("data", {})["compensation_failures"] = failures
        now = self.clock.now()
        if status is RunStatus.TIMED_OUT:
            children = {
                str(rec.output.get("run_id"))
                for rec in self.history.values()
                if rec.kind is StepKind.CHILD
                and rec.status is StepStatus.WAITING
                and isinstance(rec.output, dict)
            }
            children.update(self.open_children.values())
            for child_id in sorted(children):
                with contextlib.suppress(OpsloomError):  # it may have finished meanwhile
                    await self.store.request_cancel(child_id, now)
        await self.store.finish_run(self.fence, status, None, error, now)
        self._finished(status, None, error)

    def _finished(self, status: RunStatus, output: Any, error: dict[str, Any] | None) -> None:
        run = self.run
        run.status, run.output, run.error = status, output, error
        self.observer.run_finished(run, self.clock.now())
        self.host.run_finished(run)

    async def _compensate(self) -> list[dict[str, Any]]:
        failures: list[dict[str, Any]] = []
        for index, (spec, args, kwargs) in enumerate(reversed(self.stack)):
            seq = -(index + 1)
            rec = self.history.get(seq)
            if rec is not None and rec.status in (StepStatus.COMPLETED, StepStatus.FAILED):
                continue
            try:
                await self._attempts(seq, spec, args, kwargs, StepKind.COMPENSATION, 1, inline=True)
            except StepFailedError as exc:
                failures.append(
                    {"step": spec.name, "seq": seq, "type": exc.error_type, "message": exc.message}
                )
        return failures


def _error_dict(exc: BaseException) -> dict[str, Any]:
    """The stored form of a run's final error."""
    if isinstance(exc, StepFailedError):
        return ErrorInfo(
            exc.error_type,
            exc.message,
            exc.traceback,
            {"step": exc.step, "seq": exc.seq, "attempts": exc.attempts},
        ).to_dict()
    data: dict[str, Any] = {}
    if isinstance(exc, NonDeterminismError):
        data = {"seq": exc.seq, "expected": exc.expected, "got": exc.got}
    if isinstance(exc, OpsloomError):
        data["code"] = exc.code
        # Errors with structured details (a workflow document's error object) keep them.
        data.update(getattr(exc, "details", None) or {})
    data.update(error_data(exc))
    return ErrorInfo.from_exception(exc, **data).to_dict()
