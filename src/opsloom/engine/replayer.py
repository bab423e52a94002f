"""Replaying stored histories against the current code, without running anything.

:func:`replay_history` runs a workflow function the way a worker would after a claim, on the
run's recorded history, with every branch frozen: recorded calls return their recorded
outcomes, and the first call the history does not hold parks instead of running (no step body,
no child run, no write reaches the store). What the check learns is whether the current code
walks the recorded history to its end: a divergence is the ``NonDeterminismError`` a worker
would fail the run with, named by position and call. It is what a deploy should be checked
against before it reaches runs in flight (``opsloom replay``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from opsloom.clock import Clock, SystemClock
from opsloom.engine.execution import Execution
from opsloom.engine.registry import Registry, StepSpec
from opsloom.engine.replay import DetachedHost
from opsloom.errors import NonDeterminismError
from opsloom.model import RunRecord, RunStatus, StepKind, StepRecord
from opsloom.model.run import Fence
from opsloom.store.base import Claim

if TYPE_CHECKING:
    from opsloom.store.base import Store


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """How the current code replays one run's history.

    ``status``: ``ok`` (the history is walked to its end), ``nondeterminism`` (the code makes
    another call at ``seq`` than the history holds: ``expected`` vs ``got``), ``error`` (the
    code raised where the recorded run did not fail), ``timeout`` (the replay did not settle:
    workflow code waiting on something that is not durable).
    """

    status: str
    message: str = ""
    seq: int | None = None
    expected: str | None = None
    got: str | None = None


async def _done(value: Any = None) -> Any:
    return value


class _Discard:
    """The store of a replay: reads find nothing new, writes go nowhere, the end is noted."""

    def __init__(self) -> None:
        self.finished: tuple[RunStatus, dict[str, Any] | None] | None = None

    def record_step(self, fence: Fence, step: StepRecord) -> Awaitable[None]:
        return _done()

    def record_steps(self, fence: Fence, steps: list[StepRecord]) -> Awaitable[None]:
        return _done()

    def set_labels(
        self, fence: Fence, step: StepRecord, labels: dict[str, str | None]
    ) -> Awaitable[None]:
        return _done()  # pragma: no cover - a frozen replay sets no label

    def consume_signal(self, fence: Fence, signal_id: int, step: StepRecord) -> Awaitable[None]:
        return _done()  # pragma: no cover - a frozen replay takes no signal

    def start_child(
        self, fence: Fence, step: StepRecord, child: Any, now: float
    ) -> Awaitable[None]:
        return _done()  # pragma: no cover - a frozen replay starts no child

    async def child_outcome(self, child_id: str) -> RunRecord | None:
        return None  # a child still open in the history stays open

    async def request_cancel(self, run_id: str, now: float) -> list[str]:
        return []

    def suspend(self, fence: Fence, wake_at: float | None, now: float) -> Awaitable[None]:
        return _done()

    def finish_run(
        self,
        fence: Fence,
        status: RunStatus,
        output: bytes | None,
        error: dict[str, Any] | None,
        now: float,
    ) -> Awaitable[None]:
        self.finished = (status, error)
        return _done()


class _Replay(Execution):
    """An execution that never runs a step body nor compensates: it only walks history."""

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
        await self._block(None)  # pragma: no cover - frozen branches never get here

    async def _compensate(self) -> list[dict[str, Any]]:
        return []


async def replay_history(
    registry: Registry,
    run: RunRecord,
    history: dict[int, StepRecord],
    *,
    timeout: float = 10.0,
    clock: Clock | None = None,
) -> ReplayOutcome:
    """Replay ``run`` (its workflow at its version, from ``registry``) on ``history``.

    Raises:
        WorkflowNotFoundError: the run's workflow or version is not registered.
    """
    spec = registry.workflow(run.workflow, run.version)
    discard = _Discard()
    host = DetachedHost(cast("Store", discard), clock or SystemClock(), registry)
    # Neither a cancel nor a deadline of the stored run may cut the replay short.
    subject = RunRecord(
        id=run.id,
        workflow=run.workflow,
        version=run.version,
        status=RunStatus.RUNNING,
        input=run.input,
        parent_id=run.parent_id,
        started_by=run.started_by,
        traceparent=run.traceparent,
    )
    execution = _Replay(host, Claim(subject, Fence(run.id, "replay", 0), dict(history)), spec)
    execution.frozen = "drain"
    try:
        await asyncio.wait_for(execution.execute(), timeout)
    except TimeoutError:
        return ReplayOutcome(
            "timeout", f"the replay did not settle within {timeout:g}s (a non-durable wait?)"
        )
    fatal = execution.fatal
    if isinstance(fatal, NonDeterminismError):
        return ReplayOutcome("nondeterminism", str(fatal), fatal.seq, fatal.expected, fatal.got)
    finished = discard.finished
    if finished is not None and finished[0] is RunStatus.FAILED and run.status not in _FAILED:
        return _failure(finished[1])
    return ReplayOutcome("ok")


#: Recorded endings after which a replay that fails is no news.
_FAILED = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT})


def _failure(error: dict[str, Any] | None) -> ReplayOutcome:
    error = error or {}
    return ReplayOutcome("error", f"{error.get('type', 'Error')}: {error.get('message', '')}")
