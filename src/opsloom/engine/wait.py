"""Durable waits and recorded values: timers, signals, child runs, now/uuid/random."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from opsloom.codec import encode
from opsloom.engine.replay import READ_ONLY, ReplayState
from opsloom.errors import ChildFailedError, WaitTimeoutError
from opsloom.model import ErrorInfo, RunStatus, StepKind, StepStatus
from opsloom.model.label import check_labels
from opsloom.model.run import NewRun
from opsloom.model.tracecontext import child_traceparent

#: What a tagged signal wait returns (and records) when its deadline passes first.
TIMED_OUT = {"timeout": True}


class Waits(ReplayState):
    """``ctx.sleep``, ``ctx.wait_for``, ``ctx.child``, ``ctx.compensate`` and recorded values."""

    def sleep(
        self, *, seconds: float | None = None, until: float | None = None
    ) -> Coroutine[Any, Any, None]:
        return self._sleep(self._next(), seconds, until)

    async def _sleep(self, seq: int, seconds: float | None, until: float | None) -> None:
        rec = self._recorded(seq)
        now = self.clock.now()
        if rec is not None:
            self._check(seq, rec, StepKind.SLEEP, "sleep")
            if rec.status in (StepStatus.COMPLETED, StepStatus.FAILED):  # failed: lost a race
                return
            wake = rec.wake_at if rec.wake_at is not None else now
        else:
            wake = until if until is not None else now + float(seconds or 0.0)
        started = rec.started_at if rec else now
        recorded = rec is not None
        while True:
            if now >= wake:
                await self._write(self._timer_fired(seq, wake, started))
                return
            if not recorded:
                recorded = True
                self._post(
                    self._record(
                        seq,
                        StepKind.SLEEP,
                        "sleep",
                        StepStatus.WAITING,
                        wake_at=wake,
                        started_at=now,
                    )
                )
            if self._holds(wake - now):
                # Due soon and nothing else to wait for: wait here, like a running step, and go
                # on with the live state instead of parking and replaying the whole history.
                # The waiting entry above keeps the timer's time should this process die.
                await self._hold(wake, wake - now)
                self._post(self._timer_fired(seq, wake, started))
                return
            # Frozen or not, the timer keeps its time (a drain parks the run for now anyway).
            await self._rest(wake)
            now = self.clock.now()

    def _timer_fired(self, seq: int, wake: float, started: float | None) -> Awaitable[None]:
        return self._record(
            seq,
            StepKind.SLEEP,
            "sleep",
            StepStatus.COMPLETED,
            wake_at=wake,
            started_at=started,
            completed_at=self.clock.now(),
        )

    async def _hold(self, wake: float, seconds: float) -> None:
        """Wait ``seconds`` for a recorded timer in memory, counted as a branch waiting on it:
        a drain or a pause parks the run at once (the timer is on disk already, nothing is
        running that must finish first), with the timer at its time."""
        self.parked += 1
        self.blocked += 1
        self.wakes.append(wake)
        try:
            await self.clock.sleep(seconds)
        finally:
            if not self._interrupted:
                self.parked -= 1
                self.blocked -= 1
                self.wakes.remove(wake)

    def _holds(self, seconds: float) -> bool:
        """Whether a timer due in ``seconds`` is waited for in memory: only by the workflow's
        one branch (another branch's wait or a race must still be able to end it), and only
        while the run may go on."""
        return self.frozen is None and self.units == 1 and seconds < self.host.hold_seconds

    def wait_for(self, name: str, timeout: float | None) -> Coroutine[Any, Any, Any]:
        return self._wait_for(self._next(), name, timeout)

    async def _wait_for(self, seq: int, name: str, timeout: float | None) -> Any:
        return await self._wait_signal(seq, name, (name,), timeout=timeout)

    async def _wait_signal(
        self,
        seq: int,
        label: str,
        names: tuple[str, ...],
        *,
        timeout: float | None = None,
        until: float | None = None,
        tagged: bool = False,
    ) -> Any:
        """Take the first signal named one of ``names``; the entry at ``seq`` is ``label``.

        The deadline is ``until`` or ``timeout`` seconds from now. ``tagged`` returns
        ``{"name": ..., "payload": ...}`` instead of the payload alone, and a deadline reached
        as ``{"timeout": True}`` (a completed entry: for ``wait_until`` a timer that ends is
        an ordinary outcome) instead of a failed entry and ``WaitTimeoutError``.
        """
        rec = self._recorded(seq)
        now = self.clock.now()
        if rec is not None:
            self._check(seq, rec, StepKind.SIGNAL, label)
            if rec.status is StepStatus.COMPLETED:
                return rec.output
            if rec.status is StepStatus.FAILED:
                raise WaitTimeoutError(str((rec.error or {}).get("message", "wait timed out")))
            deadline = rec.wake_at
        elif until is not None:
            deadline = until
        else:
            deadline = None if timeout is None else now + timeout
        # A read-only replay (a query) takes the signals sent so far, without consuming them:
        # it answers on the state the run has once it has taken them.
        if self.frozen is not None and self.frozen != READ_ONLY:
            await self._block(self._frozen_wake())
        started = rec.started_at if rec is not None and rec.started_at else now
        recorded = rec is not None
        while True:
            signal = self._take_signal(names)
            if signal is not None:
                return await self._took_signal(seq, label, signal, deadline, started, now, tagged)
            if deadline is not None and now >= deadline:
                return await self._signal_timed_out(
                    seq,
                    label,
                    deadline,
                    started,
                    now,
                    tagged,
                    timeout if rec is None and until is None else None,
                )
            if not recorded:
                recorded = True
                self._post(
                    self._record(
                        seq,
                        StepKind.SIGNAL,
                        label,
                        StepStatus.WAITING,
                        wake_at=deadline,
                        started_at=now,
                    )
                )
            await self._rest(deadline)
            # The worker kept this execution and claimed the run again: look again.
            if self.frozen is not None:
                await self._block(self._frozen_wake())
            now = self.clock.now()

    async def _took_signal(
        self,
        seq: int,
        label: str,
        signal: Any,
        deadline: float | None,
        started: float,
        now: float,
        tagged: bool,
    ) -> Any:
        output = {"name": signal.name, "payload": signal.payload} if tagged else signal.payload
        if self.frozen == READ_ONLY:
            return output
        await self._write(
            self.store.consume_signal(
                self.fence,
                signal.id,
                self._entry(
                    seq,
                    StepKind.SIGNAL,
                    label,
                    StepStatus.COMPLETED,
                    output=output,
                    wake_at=deadline,
                    started_at=started,
                    completed_at=now,
                ),
            )
        )
        return output

    async def _signal_timed_out(
        self,
        seq: int,
        label: str,
        deadline: float,
        started: float,
        now: float,
        tagged: bool,
        timeout: float | None,
    ) -> Any:
        """The deadline of the wait at ``seq`` passed first (``timeout``: its seconds, when
        the wait was given them and started in this execution)."""
        if tagged:
            await self._write(
                self._record(
                    seq,
                    StepKind.SIGNAL,
                    label,
                    StepStatus.COMPLETED,
                    output=TIMED_OUT,
                    wake_at=deadline,
                    started_at=started,
                    completed_at=now,
                )
            )
            return TIMED_OUT
        exc = WaitTimeoutError(
            f"no signal {label!r} arrived within {timeout or 0:g}s"
            if timeout is not None
            else f"no signal {label!r} arrived in time"
        )
        await self._write(
            self._record(
                seq,
                StepKind.SIGNAL,
                label,
                StepStatus.FAILED,
                error=ErrorInfo(type(exc).__name__, str(exc)).to_dict(),
                wake_at=deadline,
                started_at=started,
                completed_at=now,
            )
        )
        raise exc

    def _take_signal(self, names: tuple[str, ...]) -> Any:
        for signal in self.signals:
            if signal.name in names and signal.id not in self._taken:
                self._taken.add(signal.id)
                return signal
        return None

    def child(self, workflow: str, value: Any) -> Coroutine[Any, Any, Any]:
        return self._child(self._next(), workflow, value)

    async def _child(self, seq: int, workflow: str, value: Any) -> Any:
        rec = self._recorded(seq)
        child_id = f"{self.run.id}.{seq}"
        if rec is not None:
            self._check(seq, rec, StepKind.CHILD, workflow)
            if rec.status is StepStatus.COMPLETED:
                return rec.output
            if rec.status is StepStatus.FAILED:
                error = rec.error or {}
                raise ChildFailedError(
                    child_id, str(error.get("status", "failed")), error.get("error")
                )
            return await self._child_ended(seq, workflow, child_id, rec.started_at)
        if self.frozen is not None:
            await self._block(self._frozen_wake())
        spec = self.host.registry.workflow(workflow)
        now = self.clock.now()
        new = NewRun(
            id=child_id,
            workflow=spec.name,
            version=spec.version,
            input=encode(value, what=f"the input of child workflow {workflow!r}"),
            priority=spec.priority,
            concurrency_key=spec.key_for(value),
            concurrency_limit=spec.concurrency,
            deadline=None if spec.timeout is None else now + spec.timeout,
            parent_id=self.run.id,
            parent_seq=seq,
            traceparent=child_traceparent(self.run.id, self.run.traceparent),
            started_by=self.run.started_by,
        )
        await self._write(
            self.store.start_child(
                self.fence,
                self._entry(
                    seq,
                    StepKind.CHILD,
                    workflow,
                    StepStatus.WAITING,
                    output={"run_id": child_id},
                    started_at=now,
                ),
                new,
                now,
            )
        )
        self.host.notify()
        self.open_children[seq] = child_id
        await self._rest(None)
        return await self._child_ended(seq, workflow, child_id, now)

    async def _child_ended(
        self, seq: int, workflow: str, child_id: str, started: float | None
    ) -> Any:
        """Wait for the child run at ``seq`` to end; its outcome is recorded there."""
        self.open_children[seq] = child_id
        while True:
            outcome = await self.store.child_outcome(child_id)
            if outcome is not None and outcome.status.terminal:
                del self.open_children[seq]
                now = self.clock.now()
                if outcome.status is RunStatus.COMPLETED:
                    await self._write(
                        self._record(
                            seq,
                            StepKind.CHILD,
                            workflow,
                            StepStatus.COMPLETED,
                            output=outcome.output,
                            started_at=started,
                            completed_at=now,
                        )
                    )
                    return outcome.output
                await self._write(
                    self._record(
                        seq,
                        StepKind.CHILD,
                        workflow,
                        StepStatus.FAILED,
                        started_at=started,
                        completed_at=now,
                        error={
                            "type": "ChildFailedError",
                            "status": str(outcome.status),
                            "error": outcome.error,
                            "message": f"child run {child_id} ended {outcome.status}",
                        },
                    )
                )
                raise ChildFailedError(child_id, str(outcome.status), outcome.error)
            await self._rest(None)

    def set_labels(self, labels: dict[str, str | None]) -> Coroutine[Any, Any, None]:
        checked = check_labels(labels, deleting=True)
        return self._set_labels(self._next(), checked)

    async def _set_labels(self, seq: int, labels: dict[str, str | None]) -> None:
        rec = self._recorded(seq)
        if rec is not None:
            self._check(seq, rec, StepKind.VALUE, "labels")
            return
        if self.frozen is not None:
            await self._block(self._frozen_wake())
        now = self.clock.now()
        entry = self._entry(
            seq,
            StepKind.VALUE,
            "labels",
            StepStatus.COMPLETED,
            output=labels,
            started_at=now,
            completed_at=now,
        )
        await self._write(self.store.set_labels(self.fence, entry, labels))

    def compensate(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.stack.append((self.host.registry.step_spec(fn), args, kwargs))

    def value(self, what: str) -> Any:
        seq = self._next()
        rec = self._recorded(seq)
        if rec is not None:
            self._check(seq, rec, StepKind.VALUE, what)
            return rec.output
        if what == "now":
            value: Any = round(self.clock.now(), 6)  # what a datetime can hold exactly
        elif what == "uuid":
            value = str(uuid.uuid4())
        else:
            value = random.random()
        self._post(
            self._record(
                seq,
                StepKind.VALUE,
                what,
                StepStatus.COMPLETED,
                output=value,
                started_at=self.clock.now(),
                completed_at=self.clock.now(),
            )
        )
        return value
