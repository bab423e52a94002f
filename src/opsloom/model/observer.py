"""What the engine, the worker, the writer and the intake tell those who watch them.

The running parts call an :class:`Observer` at each lifecycle change. The base class does
nothing, so a part that nobody watches pays one method call; :class:`Observers` passes each
call on to several. Calls happen on the event loop thread, synchronously, on hot paths: an
observer only counts, logs or records spans in memory, and never waits for I/O. An observer that
raises is a bug of the observer, not of the run: callers do not guard against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from opsloom.model.run import RunRecord, StepKind


class StepAttempt(NamedTuple):
    """One finished attempt of a step (a named tuple: one is made per attempt, cheaply).

    Attributes:
        seq: the step's position in the run's history.
        name: the step's name.
        kind: a step, or a compensation.
        attempt: 1 for the first try.
        outcome: ``completed``, ``retrying`` (failed, another attempt is scheduled) or
            ``failed`` (failed for good).
        started_at: when the attempt began (clock seconds).
        ended_at: when it ended.
        error_type: the exception's type name when it failed.
    """

    seq: int
    name: str
    kind: StepKind
    attempt: int
    outcome: str
    started_at: float
    ended_at: float
    error_type: str | None = None


class Observer:
    """Hears lifecycle changes; every method does nothing unless overridden."""

    def run_claimed(self, run: RunRecord, first: bool, now: float) -> None:
        """A worker of this process took ``run`` (``first``: its first execution)."""

    def run_parked(self, run: RunRecord, wake_at: float | None, now: float) -> None:
        """``run`` left memory, waiting until ``wake_at`` (or a signal, when None)."""

    def run_finished(self, run: RunRecord, now: float) -> None:
        """``run`` ended; ``run.status`` and ``run.error`` say how."""

    def step_started(self, run: RunRecord, seq: int, name: str, attempt: int) -> None:
        """An attempt of a step begins in the current task (its body runs next)."""

    def step_attempted(self, run: RunRecord, step: StepAttempt) -> None:
        """An attempt of a step ended (called in the task that started it)."""

    def runs_recovered(self, run_ids: list[str]) -> None:
        """Runs whose worker vanished went back to the queue."""

    def watchdog_found(self, kind: str, workflow: str) -> None:
        """The watchdog reported a run of ``workflow`` for the first time: ``stuck`` (no
        progress far beyond its workflow's usual duration), ``overdue`` (due long ago and not
        claimed) or ``quarantined`` (it crashed its workers too often)."""

    def store_committed(self, operations: int, seconds: float) -> None:
        """The store's writer committed a batch of ``operations`` in ``seconds``."""

    def webhook_received(self, source: str, accepted: bool, reason: str, events: int) -> None:
        """A webhook request was accepted (``events`` stored) or rejected for ``reason``."""


class Observers(Observer):
    """Several observers heard as one, in the order they were added."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self.observers: list[Observer] = list(observers)

    def add(self, observer: Observer) -> None:
        """Hear ``observer`` too, after those already added."""
        self.observers.append(observer)

    def run_claimed(self, run: RunRecord, first: bool, now: float) -> None:
        for observer in self.observers:
            observer.run_claimed(run, first, now)

    def run_parked(self, run: RunRecord, wake_at: float | None, now: float) -> None:
        for observer in self.observers:
            observer.run_parked(run, wake_at, now)

    def run_finished(self, run: RunRecord, now: float) -> None:
        for observer in self.observers:
            observer.run_finished(run, now)

    def step_started(self, run: RunRecord, seq: int, name: str, attempt: int) -> None:
        for observer in self.observers:
            observer.step_started(run, seq, name, attempt)

    def step_attempted(self, run: RunRecord, step: StepAttempt) -> None:
        for observer in self.observers:
            observer.step_attempted(run, step)

    def runs_recovered(self, run_ids: list[str]) -> None:
        for observer in self.observers:
            observer.runs_recovered(run_ids)

    def watchdog_found(self, kind: str, workflow: str) -> None:
        for observer in self.observers:
            observer.watchdog_found(kind, workflow)

    def store_committed(self, operations: int, seconds: float) -> None:
        for observer in self.observers:
            observer.store_committed(operations, seconds)

    def webhook_received(self, source: str, accepted: bool, reason: str, events: int) -> None:
        for observer in self.observers:
            observer.webhook_received(source, accepted, reason, events)
