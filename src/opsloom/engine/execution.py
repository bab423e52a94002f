"""One attempt at advancing one run: replay its history, run new steps, then park or close.

The workflow function is replayed from its start on every claim. Recorded entries return their
recorded value; new ones run and are recorded before the workflow sees their result. When every
branch of the workflow is parked on something durable (a timer, a signal, a child run, a retry
delay) the run is *quiescent*: its coroutine is dropped and the job is released with the
earliest wake time, so a waiting run costs no memory and no worker slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import uuid
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from opsloom.codec import decode, encode
from opsloom.engine.context import Context, StepInfo, _current_step
from opsloom.engine.registry import StepSpec, WorkflowSpec
from opsloom.errors import (
    ChildFailedError,
    LeaseLostError,
    NonDeterminismError,
    OpsloomError,
    RunCancelledError,
    RunTimeoutError,
    StepFailedError,
    StepTimeoutError,
    StoreError,
    WaitTimeoutError,
)
from opsloom.model import ErrorInfo, RunRecord, RunStatus, StepKind, StepRecord, StepStatus
from opsloom.store.base import Claim, NewRun

if TYPE_CHECKING:
    from opsloom.clock import Clock
    from opsloom.engine.registry import Registry
    from opsloom.store.base import Store

log = logging.getLogger("opsloom.engine")


class Host(Protocol):
    """What an execution needs from the worker that runs it."""

    store: Store
    clock: Clock
    registry: Registry

    def notify(self) -> None: ...

    def execution_done(self, execution: Execution) -> None: ...

    def run_finished(self, run: RunRecord) -> None: ...


class _Group:
    """Branches of one ``gather`` call still running."""

    __slots__ = ("future", "remaining")

    def __init__(self, remaining: int, future: asyncio.Future[None]) -> None:
        self.remaining = remaining
        self.future = future


def jitter_source(run_id: str, seq: int, attempt: int) -> float:
    """A uniform number in [0, 1) fixed by (run, step, attempt), so delays replay identically."""
    return zlib.crc32(f"{run_id}:{seq}:{attempt}".encode()) / 2**32


class Execution:
    """Drives one claimed run until it completes, fails, parks or loses its lease."""

    def __init__(self, host: Host, claim: Claim, spec: WorkflowSpec) -> None:
        self.host = host
        self.store = host.store
        self.clock = host.clock
        self.run = claim.run
        self.fence = claim.fence
        self.history = claim.history
        self.signals = claim.signals
        self.spec = spec
        self.ctx = Context(self)
        self.seq = 0
        self.units = 1  # the main coroutine, plus one per live gather branch
        self.parked = 0  # units waiting on a durable wait or on their gather branches
        self.blocked = 0  # units waiting on a durable wait
        self.wakes: list[float] = []
        self._turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stack: list[tuple[StepSpec, tuple[Any, ...], dict[str, Any]]] = []
        self.frozen: str | None = None  # "cancel", "timeout" or "drain": start nothing new
        self.tearing_down = False
        self.fatal: BaseException | None = None
        self.main: asyncio.Task[Any] | None = None
        self.task: asyncio.Task[None] | None = None
        self._taken: set[int] = set()

    # --- entry points used by the worker ------------------------------------------------------

    async def execute(self) -> None:
        run = self.run
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        try:
            now = self.clock.now()
            if run.cancel_requested:
                self.frozen = "cancel"
            elif run.deadline is not None and now >= run.deadline:
                self.frozen = "timeout"
            self.main = loop.create_task(self._main(), name=f"opsloom-run-{run.id}")
            self.main.add_done_callback(self._main_finished)
            if run.deadline is not None and self.frozen is None:
                timer = loop.call_at(loop.time() + max(0.0, run.deadline - now), self._timed_out)
            await self._turn
            if self.main.done():
                await self._on_main_done()
            else:
                await self._on_quiet()
        except LeaseLostError:
            log.warning("lease lost, leaving run to its new owner", extra={"run_id": run.id})
            await self._stop_main()
        except StoreError:
            log.exception("store write failed; the run will be recovered when its lease expires",
                          extra={"run_id": run.id})
            await self._stop_main()
        except asyncio.CancelledError:
            await self._stop_main()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self.host.execution_done(self)

    def _main_finished(self, _: asyncio.Task[Any]) -> None:
        self._settle()

    def _timed_out(self) -> None:
        self.frozen = "timeout"
        self._settle()

    def _settle(self) -> None:
        """The run needs a decision: its workflow ended, went quiescent, or must stop."""
        if not self._turn.done():
            self._turn.set_result(None)

    def request_cancel(self) -> None:
        """Cancel this run now: stop its branches, then compensate and close it."""
        self.frozen = "cancel"
        self._settle()

    def drain(self) -> None:
        """Graceful shutdown: let running steps finish, start no new one, then park."""
        if self.frozen is None:
            self.frozen = "drain"
            self._check_quiet()

    # --- outcomes ---------------------------------------------------------------------------

    async def _main(self) -> Any:
        if self.spec.takes_input:
            return await self.spec.fn(self.ctx, self.run.input)
        return await self.spec.fn(self.ctx)

    async def _stop_main(self) -> None:
        self.tearing_down = True
        main = self.main
        if main is not None and not main.done():
            main.cancel()
            await asyncio.wait({main})

    async def _on_main_done(self) -> None:
        main = self.main
        assert main is not None
        if main.cancelled():
            return
        exc = main.exception()
        if self.fatal is not None:
            await self._close_fatal()
            return
        if exc is None:
            await self._complete(main.result())
        else:
            await self._close(RunStatus.FAILED, exc)

    async def _on_quiet(self) -> None:
        await self._stop_main()
        if self.fatal is not None:
            await self._close_fatal()
            return
        if self.frozen == "cancel":
            await self._close(RunStatus.CANCELLED, RunCancelledError("the run was cancelled"))
            return
        if self.frozen == "timeout":
            await self._close(RunStatus.TIMED_OUT,
                              RunTimeoutError("the run went past its deadline"))
            return
        now = self.clock.now()
        wake = min(self.wakes) if self.wakes else None
        if self.frozen == "drain":
            wake = now
        if self.run.deadline is not None:
            wake = self.run.deadline if wake is None else min(wake, self.run.deadline)
        await self.store.suspend(self.fence, wake, now)

    async def _complete(self, result: Any) -> None:
        last = max((seq for seq in self.history if seq > 0), default=0)
        if last > self.seq:
            entry = self.history[last]
            self.fatal = NonDeterminismError(
                f"run {self.run.id} finished at position {self.seq} but its history goes on to "
                f"position {last} ({entry.kind} {entry.name!r}): the workflow code changed",
                seq=last, expected=f"{entry.kind} {entry.name}", got="end of workflow")
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
            children = [rec.output.get("run_id") for rec in self.history.values()
                        if rec.kind is StepKind.CHILD and rec.status is StepStatus.WAITING
                        and isinstance(rec.output, dict)]
            for child_id in children:
                with contextlib.suppress(OpsloomError):  # it may have finished meanwhile
                    await self.store.request_cancel(str(child_id), now)
        await self.store.finish_run(self.fence, status, None, error, now)
        self._finished(status, None, error)

    def _finished(self, status: RunStatus, output: Any, error: dict[str, Any] | None) -> None:
        run = self.run
        run.status, run.output, run.error = status, output, error
        self.host.run_finished(run)

    async def _compensate(self) -> list[dict[str, Any]]:
        failures: list[dict[str, Any]] = []
        for index, (spec, args, kwargs) in enumerate(reversed(self.stack)):
            seq = -(index + 1)
            rec = self.history.get(seq)
            if rec is not None and rec.status in (StepStatus.COMPLETED, StepStatus.FAILED):
                continue
            try:
                await self._attempts(seq, spec, args, kwargs, StepKind.COMPENSATION, 1,
                                     inline=True)
            except StepFailedError as exc:
                failures.append({"step": spec.name, "seq": seq, "type": exc.error_type,
                                 "message": exc.message})
        return failures

    # --- accounting of branches ---------------------------------------------------------------

    def _check_quiet(self) -> None:
        if self.parked >= self.units and (self.blocked or self.frozen == "drain"):
            self._settle()

    async def _block(self, wake: float | None) -> NoReturn:
        self.parked += 1
        self.blocked += 1
        if wake is not None:
            self.wakes.append(wake)
        self._check_quiet()
        await asyncio.get_running_loop().create_future()
        raise AssertionError("a parked branch was resumed")  # pragma: no cover

    def _frozen_wake(self) -> float | None:
        return self.clock.now() if self.frozen == "drain" else None

    def _next(self) -> int:
        if self.tearing_down:
            raise asyncio.CancelledError()
        self.seq += 1
        return self.seq

    def _check(self, seq: int, rec: StepRecord, kind: StepKind, name: str) -> None:
        if rec.kind is kind and rec.name == name:
            return
        exc = NonDeterminismError(
            f"run {self.run.id} replay diverged at position {seq}: the history has "
            f"{rec.kind} {rec.name!r} but the workflow now calls {kind} {name!r}",
            seq=seq, expected=f"{rec.kind} {rec.name}", got=f"{kind} {name}")
        self.fatal = exc
        raise exc

    async def _write(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except (LeaseLostError, StoreError) as exc:
            self.fatal = exc
            raise

    def _post(self, pending: Awaitable[None]) -> None:
        """Queue a write without waiting: the store applies a run's writes in call order."""
        future = asyncio.ensure_future(pending)
        future.add_done_callback(self._posted)

    def _posted(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None and self.fatal is None:
            self.fatal = exc
            self._settle()

    # --- steps ------------------------------------------------------------------------------

    def step(self, fn: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Coroutine[Any, Any, Any]:
        seq = self._next()
        spec = self.host.registry.step_spec(fn)
        return self._step(seq, spec, args, kwargs)

    async def _step(self, seq: int, spec: StepSpec, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        rec = self.history.get(seq)
        done = 0
        if rec is not None:
            self._check(seq, rec, StepKind.STEP, spec.name)
            if rec.status is StepStatus.COMPLETED:
                return rec.output
            if rec.status is StepStatus.FAILED:
                raise _step_failure(rec)
            done = rec.attempts
            if rec.wake_at is not None and rec.wake_at > self.clock.now():
                await self._block(rec.wake_at)
        if self.frozen is not None:
            await self._block(self._frozen_wake())
        return await self._attempts(seq, spec, args, kwargs, StepKind.STEP, done + 1)

    async def _attempts(self, seq: int, spec: StepSpec, args: tuple[Any, ...],
                        kwargs: dict[str, Any], kind: StepKind, attempt: int, *,
                        inline: bool = False) -> Any:
        policy = spec.retry
        while True:
            started = self.clock.now()
            token = _current_step.set(StepInfo(self.run.id, seq, spec.name, attempt))
            try:
                result = await self._invoke(spec, args, kwargs)
                blob = encode(result, what=f"the result of step {spec.name!r}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure: BaseException = exc
            else:
                value = decode(blob)
                await self._write(self.store.record_step(self.fence, StepRecord(
                    run_id=self.run.id, seq=seq, kind=kind, name=spec.name,
                    status=StepStatus.COMPLETED, output=value, encoded=blob, attempts=attempt,
                    started_at=started, completed_at=self.clock.now())))
                return value
            finally:
                _current_step.reset(token)
            info = ErrorInfo.from_exception(failure)
            now = self.clock.now()
            if attempt < policy.attempts and policy.is_retryable(failure):
                retry_after = getattr(failure, "retry_after", None)
                delay = policy.delay(attempt, jitter_source(self.run.id, seq, attempt),
                                     float(retry_after) if isinstance(retry_after, int | float)
                                     else None)
                if inline:
                    await asyncio.sleep(delay)
                    attempt += 1
                    continue
                wake = now + delay
                await self._write(self.store.record_step(self.fence, StepRecord(
                    run_id=self.run.id, seq=seq, kind=kind, name=spec.name,
                    status=StepStatus.RETRYING, error=info.to_dict(), attempts=attempt,
                    wake_at=wake, started_at=started)))
                if delay <= 0:
                    attempt += 1
                    continue
                await self._block(wake)
            await self._write(self.store.record_step(self.fence, StepRecord(
                run_id=self.run.id, seq=seq, kind=kind, name=spec.name, status=StepStatus.FAILED,
                error=info.to_dict(), attempts=attempt, started_at=started, completed_at=now)))
            raise StepFailedError(spec.name, seq, info.type, info.message, info.traceback,
                                  attempt)

    async def _invoke(self, spec: StepSpec, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        if spec.is_async:
            call: Awaitable[Any] = spec.fn(*args, **kwargs)
        else:
            call = asyncio.to_thread(functools.partial(spec.fn, *args, **kwargs))
        if spec.timeout is None:
            return await call
        try:
            async with asyncio.timeout(spec.timeout) as scope:
                return await call
        except TimeoutError:
            if scope.expired():
                raise StepTimeoutError(
                    f"step {spec.name!r} timed out after {spec.timeout:g}s") from None
            raise

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
        for branch in branches:
            if branch.cancelled():
                raise asyncio.CancelledError()
            exc = branch.exception()
            if exc is not None:
                raise exc
        return [branch.result() for branch in branches]

    def _branch_done(self, group: _Group, task: asyncio.Future[Any]) -> None:
        self.units -= 1
        group.remaining -= 1
        if group.remaining == 0:
            self.parked -= 1
            if not group.future.done():
                group.future.set_result(None)
        self._check_quiet()

    # --- durable waits ------------------------------------------------------------------------

    def sleep(self, *, seconds: float | None = None,
              until: float | None = None) -> Coroutine[Any, Any, None]:
        return self._sleep(self._next(), seconds, until)

    async def _sleep(self, seq: int, seconds: float | None, until: float | None) -> None:
        rec = self.history.get(seq)
        now = self.clock.now()
        if rec is not None:
            self._check(seq, rec, StepKind.SLEEP, "sleep")
            if rec.status is StepStatus.COMPLETED:
                return
            wake = rec.wake_at if rec.wake_at is not None else now
        else:
            wake = until if until is not None else now + float(seconds or 0.0)
        if now >= wake:
            await self._write(self.store.record_step(self.fence, StepRecord(
                run_id=self.run.id, seq=seq, kind=StepKind.SLEEP, name="sleep",
                status=StepStatus.COMPLETED, wake_at=wake,
                started_at=rec.started_at if rec else now, completed_at=now)))
            return
        if rec is None:
            self._post(self.store.record_step(self.fence, StepRecord(
                run_id=self.run.id, seq=seq, kind=StepKind.SLEEP, name="sleep",
                status=StepStatus.WAITING, wake_at=wake, started_at=now)))
        await self._block(wake if self.frozen is None else self._frozen_wake())

    def wait_for(self, name: str, timeout: float | None) -> Coroutine[Any, Any, Any]:
        return self._wait_for(self._next(), name, timeout)

    async def _wait_for(self, seq: int, name: str, timeout: float | None) -> Any:
        rec = self.history.get(seq)
        now = self.clock.now()
        if rec is not None:
            self._check(seq, rec, StepKind.SIGNAL, name)
            if rec.status is StepStatus.COMPLETED:
                return rec.output
            if rec.status is StepStatus.FAILED:
                raise WaitTimeoutError(str((rec.error or {}).get("message", "wait timed out")))
            deadline = rec.wake_at
        else:
            deadline = None if timeout is None else now + timeout
        if self.frozen is not None:
            await self._block(self._frozen_wake())
        started = rec.started_at if rec is not None and rec.started_at else now
        signal = self._take_signal(name)
        if signal is not None:
            await self._write(self.store.consume_signal(self.fence, signal.id, StepRecord(
                run_id=self.run.id, seq=seq, kind=StepKind.SIGNAL, name=name,
                status=StepStatus.COMPLETED, output=signal.payload, wake_at=deadline,
                started_at=started, completed_at=now)))
            return signal.payload
        if deadline is not None and now >= deadline:
            exc = WaitTimeoutError(f"no signal {name!r} arrived within {timeout or 0:g}s"
                                   if rec is None else f"no signal {name!r} arrived in time")
            await self._write(self.store.record_step(self.fence, StepRecord(
                run_id=self.run.id, seq=seq, kind=StepKind.SIGNAL, name=name,
                status=StepStatus.FAILED, error=ErrorInfo(type(exc).__name__, str(exc)).to_dict(),
                wake_at=deadline, started_at=started, completed_at=now)))
            raise exc
        if rec is None:
            self._post(self.store.record_step(self.fence, StepRecord(
                run_id=self.run.id, seq=seq, kind=StepKind.SIGNAL, name=name,
                status=StepStatus.WAITING, wake_at=deadline, started_at=now)))
        await self._block(deadline)

    def _take_signal(self, name: str) -> Any:
        for signal in self.signals:
            if signal.name == name and signal.id not in self._taken:
                self._taken.add(signal.id)
                return signal
        return None

    def child(self, workflow: str, value: Any) -> Coroutine[Any, Any, Any]:
        return self._child(self._next(), workflow, value)

    async def _child(self, seq: int, workflow: str, value: Any) -> Any:
        rec = self.history.get(seq)
        child_id = f"{self.run.id}.{seq}"
        if rec is not None:
            self._check(seq, rec, StepKind.CHILD, workflow)
            if rec.status is StepStatus.COMPLETED:
                return rec.output
            if rec.status is StepStatus.FAILED:
                error = rec.error or {}
                raise ChildFailedError(child_id, str(error.get("status", "failed")),
                                       error.get("error"))
            outcome = await self.store.child_outcome(child_id)
            if outcome is not None and outcome.status.terminal:
                now = self.clock.now()
                if outcome.status is RunStatus.COMPLETED:
                    await self._write(self.store.record_step(self.fence, StepRecord(
                        run_id=self.run.id, seq=seq, kind=StepKind.CHILD, name=workflow,
                        status=StepStatus.COMPLETED, output=outcome.output,
                        started_at=rec.started_at, completed_at=now)))
                    return outcome.output
                await self._write(self.store.record_step(self.fence, StepRecord(
                    run_id=self.run.id, seq=seq, kind=StepKind.CHILD, name=workflow,
                    status=StepStatus.FAILED, started_at=rec.started_at, completed_at=now,
                    error={"type": "ChildFailedError", "status": str(outcome.status),
                           "error": outcome.error,
                           "message": f"child run {child_id} ended {outcome.status}"})))
                raise ChildFailedError(child_id, str(outcome.status), outcome.error)
            await self._block(None)
        if self.frozen is not None:
            await self._block(self._frozen_wake())
        spec = self.host.registry.workflow(workflow)
        now = self.clock.now()
        new = NewRun(
            id=child_id, workflow=spec.name, version=spec.version,
            input=encode(value, what=f"the input of child workflow {workflow!r}"),
            priority=spec.priority, concurrency_key=spec.key_for(value),
            concurrency_limit=spec.concurrency,
            deadline=None if spec.timeout is None else now + spec.timeout,
            parent_id=self.run.id, parent_seq=seq)
        await self._write(self.store.start_child(self.fence, StepRecord(
            run_id=self.run.id, seq=seq, kind=StepKind.CHILD, name=workflow,
            status=StepStatus.WAITING, output={"run_id": child_id}, started_at=now), new, now))
        self.host.notify()
        await self._block(None)

    # --- compensation and recorded values ------------------------------------------------------

    def compensate(self, fn: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> None:
        self.stack.append((self.host.registry.step_spec(fn), args, kwargs))

    def value(self, what: str) -> Any:
        seq = self._next()
        rec = self.history.get(seq)
        if rec is not None:
            self._check(seq, rec, StepKind.VALUE, what)
            return rec.output
        if what == "now":
            value: Any = round(self.clock.now(), 6)  # what a datetime can hold exactly
        elif what == "uuid":
            value = str(uuid.uuid4())
        else:
            value = random.random()
        self._post(self.store.record_step(self.fence, StepRecord(
            run_id=self.run.id, seq=seq, kind=StepKind.VALUE, name=what,
            status=StepStatus.COMPLETED, output=value, started_at=self.clock.now())))
        return value


def _step_failure(rec: StepRecord) -> StepFailedError:
    error = rec.error or {}
    return StepFailedError(rec.name, rec.seq, str(error.get("type", "Error")),
                           str(error.get("message", "")), str(error.get("traceback", "")),
                           rec.attempts)


def _error_dict(exc: BaseException) -> dict[str, Any]:
    """The stored form of a run's final error."""
    if isinstance(exc, StepFailedError):
        return ErrorInfo(exc.error_type, exc.message, exc.traceback,
                         {"step": exc.step, "seq": exc.seq, "attempts": exc.attempts}).to_dict()
    data: dict[str, Any] = {}
    if isinstance(exc, NonDeterminismError):
        data = {"seq": exc.seq, "expected": exc.expected, "got": exc.got}
    if isinstance(exc, OpsloomError):
        data["code"] = exc.code
    return ErrorInfo.from_exception(exc, **data).to_dict()
