"""Steps: run a function as a checkpointed unit of work, with retries and a timeout."""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from opsloom.codec import decode, encode
from opsloom.engine.context import StepInfo, _current_step
from opsloom.engine.registry import StepSpec
from opsloom.engine.replay import ReplayState
from opsloom.errors import StepFailedError, StepTimeoutError
from opsloom.model import ErrorInfo, StepKind, StepRecord, StepStatus
from opsloom.model.observer import StepAttempt


def jitter_source(run_id: str, seq: int, attempt: int) -> float:
    """A uniform number in [0, 1) fixed by (run, step, attempt), so delays replay identically."""
    return zlib.crc32(f"{run_id}:{seq}:{attempt}".encode()) / 2**32


class StepRunner(ReplayState):
    """``ctx.step``: replay a recorded outcome or run the function under its retry policy."""

    def step(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        seq = self._next()
        spec = self.host.registry.step_spec(fn)
        return self._step(seq, spec, args, kwargs)

    def step_with(
        self, spec: StepSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        return self._step(self._next(), spec, args, kwargs)

    async def _step(
        self, seq: int, spec: StepSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        rec = self._recorded(seq)
        done = 0
        if rec is not None:
            self._check(seq, rec, StepKind.STEP, spec.name)
            if rec.status is StepStatus.COMPLETED:
                return rec.output
            if rec.status is StepStatus.FAILED:
                if spec.hook is None:
                    raise _step_failure(rec)
                raise spec.hook.failure(_step_failure(rec)) from None
            done = rec.attempts
            if rec.wake_at is not None and rec.wake_at > self.clock.now():
                await self._block(rec.wake_at)
        if self.frozen is not None:
            await self._block(self._frozen_wake())
        return await self._attempts(seq, spec, args, kwargs, StepKind.STEP, done + 1)

    async def _attempts(
        self,
        seq: int,
        spec: StepSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        kind: StepKind,
        attempt: int,
        *,
        inline: bool = False,
    ) -> Any:
        policy, adapted = self.host.registry.retry_for(self.run.workflow, spec)
        timeout, lengthened = self.host.registry.timeout_for(self.run.workflow, spec)
        under = _Adapted(policy.attempts if adapted else None, timeout if lengthened else None)
        failures: list[dict[str, Any]] | None = None  # failed attempts, oldest first
        while True:
            # A step body never starts before everything the run recorded earlier is durable.
            await self._barrier()
            started = self.clock.now()
            token = _current_step.set(StepInfo(self.run.id, seq, spec.name, attempt))
            self.observer.step_started(self.run, seq, spec.name, attempt)
            try:
                if spec.hook is None:
                    result = await self._invoke(spec, timeout, args, kwargs)
                else:
                    hook = spec.hook
                    entered = hook.enter(started)
                    if entered is not None:
                        # What the hook made of the attempt rides on the step's info, so a
                        # layer needs no context variable of its own. ``token`` puts back what
                        # was there before both.
                        _current_step.set(StepInfo(self.run.id, seq, spec.name, attempt, entered))
                    try:
                        result = await self._invoke(spec, timeout, args, kwargs)
                    except BaseException as exc:
                        hook.failed(entered, exc)
                        raise
                    result = hook.done(entered, result)
                blob = encode(result, what=f"the result of step {spec.name!r}")
            except asyncio.CancelledError:
                self._attempted(seq, spec.name, kind, attempt, "cancelled", started, None)
                raise
            except Exception as exc:
                failure: BaseException = exc
            else:
                value = decode(blob)
                self._attempted(seq, spec.name, kind, attempt, "completed", started, None)
                if attempt > 1 and failures is None:
                    failures = _failures_before(self.history.get(seq))
                # The record is queued, not awaited: deterministic workflow code may go on, but
                # the next step body, a park or the run's completion is ordered after it (see
                # ``_barrier`` and the store's in-order writes), so a run's last step and its
                # completion can share one commit.
                self._post(
                    self._record(
                        seq,
                        kind,
                        spec.name,
                        StepStatus.COMPLETED,
                        output=value,
                        encoded=blob,
                        # Why earlier attempts failed stays in the history of a retried step.
                        # So does a policy the adaptive mode set (see ``_Adapted``).
                        error=under.record(failures),
                        attempts=attempt,
                        started_at=started,
                        completed_at=self.clock.now(),
                    )
                )
                return value
            finally:
                _current_step.reset(token)
            info = ErrorInfo.from_exception(failure, **error_data(failure))
            now = self.clock.now()
            if failures is None:
                failures = _failures_before(self.history.get(seq)) if attempt > 1 else []
            failures.append(_failure_entry(info, attempt, started, now))
            error = {**info.to_dict(), **(under.record(failures) or {})}
            retry_after = getattr(failure, "retry_after", None)
            retryable = attempt < policy.attempts and policy.is_retryable(failure)
            # Its traceback holds this frame, and this frame would hold it while the run waits
            # for the retry: a cycle only the cycle collector would free.
            del failure
            delay = policy.delay(
                attempt,
                jitter_source(self.run.id, seq, attempt),
                float(retry_after) if isinstance(retry_after, int | float) else None,
            )
            if retryable and policy.in_time(float(failures[0]["started_at"]), now + delay):
                self._attempted(seq, spec.name, kind, attempt, "retrying", started, info.type)
                if inline:
                    await self.clock.sleep(delay)
                    attempt += 1
                    continue
                wake = now + delay
                await self._write(
                    self._record(
                        seq,
                        kind,
                        spec.name,
                        StepStatus.RETRYING,
                        error=error,
                        attempts=attempt,
                        wake_at=wake,
                        started_at=started,
                    )
                )
                if delay <= 0:
                    attempt += 1
                    continue
                await self._block(wake)
            self._attempted(seq, spec.name, kind, attempt, "failed", started, info.type)
            await self._write(
                self._record(
                    seq,
                    kind,
                    spec.name,
                    StepStatus.FAILED,
                    error=error,
                    attempts=attempt,
                    started_at=started,
                    completed_at=now,
                )
            )
            final = StepFailedError(
                spec.name, seq, info.type, info.message, info.traceback, attempt, info.data
            )
            try:
                if spec.hook is None or kind is not StepKind.STEP:
                    raise final
                raise spec.hook.failure(final) from None
            finally:
                # Its traceback holds this frame: kept here, only the cycle collector would
                # free the failed run's execution.
                del final

    def _attempted(
        self,
        seq: int,
        name: str,
        kind: StepKind,
        attempt: int,
        outcome: str,
        started: float,
        error_type: str | None,
    ) -> None:
        self.observer.step_attempted(
            self.run,
            StepAttempt(seq, name, kind, attempt, outcome, started, self.clock.now(), error_type),
        )

    async def _invoke(
        self,
        spec: StepSpec,
        timeout: float | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if spec.is_async:
            call: Awaitable[Any] = spec.fn(*args, **kwargs)
        else:
            call = asyncio.to_thread(functools.partial(spec.fn, *args, **kwargs))
        if timeout is None:
            return await call
        try:
            async with asyncio.timeout(timeout) as scope:
                return await call
        except TimeoutError:
            if scope.expired():
                raise StepTimeoutError(f"step {spec.name!r} timed out after {timeout:g}s") from None
            raise


#: How much of each failed attempt's traceback the history keeps (its end: where it failed).
TRACEBACK_KEPT = 2000


def _failure_entry(info: ErrorInfo, attempt: int, started: float, at: float) -> dict[str, Any]:
    """One failed attempt as the step's history keeps it."""
    trace = info.traceback
    if len(trace) > TRACEBACK_KEPT:
        trace = "…" + trace[-TRACEBACK_KEPT:]
    return {
        "attempt": attempt,
        "type": info.type,
        "message": info.message,
        "traceback": trace,
        "started_at": started,
        "failed_at": at,
    }


def _failures_before(rec: StepRecord | None) -> list[dict[str, Any]]:
    """The failed attempts a step's history entry holds (a retried step's, after a park)."""
    kept = (rec.error or {}).get("attempts") if rec is not None else None
    return list(kept) if isinstance(kept, list) else []


def _step_failure(rec: StepRecord) -> StepFailedError:
    error = rec.error or {}
    return StepFailedError(
        rec.name,
        rec.seq,
        str(error.get("type", "Error")),
        str(error.get("message", "")),
        str(error.get("traceback", "")),
        rec.attempts,
        dict(error.get("data") or {}),
    )


def error_data(exc: BaseException) -> dict[str, Any]:
    """What an exception asks to keep with its recorded error: its ``error_data`` mapping.

    Layers on the engine (the Temporal compat layer's ``ApplicationError``) use it to carry
    structured details through the history to the workflow that sees the failure.
    """
    data = getattr(exc, "error_data", None)
    return {str(key): value for key, value in data.items()} if isinstance(data, dict) else {}


@dataclass(frozen=True, slots=True)
class _Adapted:
    """What the adaptive mode changed for a step's attempts: its attempts, its timeout."""

    attempts: int | None
    timeout: float | None

    def record(self, failures: list[dict[str, Any]] | None) -> dict[str, Any] | None:
        """What the step's history entry keeps besides the error itself: the earlier failed
        attempts (of a retried step), the adapted attempts (when it was retried), and an
        adapted timeout (always: it decided how long every attempt could take)."""
        out: dict[str, Any] = {}
        if failures:
            out["attempts"] = failures
            if self.attempts is not None:
                out["retry_policy"] = {"attempts": self.attempts, "adapted": True}
        if self.timeout is not None:
            out["timeout"] = {"seconds": self.timeout, "adapted": True}
        return out or None
