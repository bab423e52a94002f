"""The ``Store`` seam: every durable decision of the engine goes through these operations.

Each implementation (SQLite now, PostgreSQL later) passes the same contract suite in
``tests/store``. Operations that change a running run carry a :class:`Fence`; the store rejects
them with ``LeaseLostError`` when the caller no longer holds that run's lease.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from opsloom.model import RunRecord, RunStatus, SignalRecord, StepRecord


@dataclass(frozen=True, slots=True)
class Fence:
    """Proof of ownership of a run's job: the worker id and the lease token it was given."""

    run_id: str
    owner: str
    token: int


@dataclass(frozen=True, slots=True)
class NewRun:
    """Everything needed to create a run (and its first job)."""

    id: str
    workflow: str
    version: str
    input: bytes  # JSON, already validated by the caller
    priority: int = 0
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    deadline: float | None = None
    parent_id: str | None = None
    parent_seq: int | None = None


@dataclass(slots=True)
class Claim:
    """A run handed to a worker: the run, its history and the signals waiting for it."""

    run: RunRecord
    fence: Fence
    history: dict[int, StepRecord]
    signals: list[SignalRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Criteria for listing runs."""

    status: RunStatus | None = None
    workflow: str | None = None
    parent_id: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """What a heartbeat learned: runs whose lease was lost and runs asked to cancel."""

    lost: frozenset[str]
    cancel_requested: frozenset[str]


class Store(Protocol):
    """Persistence of runs, history, jobs and signals."""

    url: str

    async def open(self) -> None:
        """Connect, check the schema is opsloom's and migrate it to the current version."""
        ...

    async def close(self) -> None:
        """Flush pending writes and disconnect."""
        ...

    async def schema_version(self) -> int:
        """The version of the schema in the database."""
        ...

    # --- runs --------------------------------------------------------------------------------

    async def create_run(
        self, new: NewRun, now: float, *, lease: tuple[str, float] | None = None
    ) -> tuple[RunRecord, bool]:
        """Create a run and its job, or return the existing run with that id (``False``).

        With ``lease=(owner, until)`` a new run is created already claimed by ``owner`` with
        token 1 (its fence is ``Fence(run.id, owner, 1)``): a worker starting a run it will
        execute itself skips a round trip through the queue.
        """
        ...

    async def get_run(self, run_id: str, *, with_steps: bool = False) -> RunRecord | None:
        """One run, optionally with its history."""
        ...

    async def status_of(self, run_id: str) -> RunStatus | None:
        """Just the status of a run (cheaper than ``get_run``)."""
        ...

    async def finished_among(self, run_ids: list[str]) -> set[str]:
        """Which of ``run_ids`` have reached a terminal status."""
        ...

    async def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        """Runs matching ``flt``, newest first."""
        ...

    async def request_cancel(self, run_id: str, now: float) -> list[str]:
        """Ask a run and all its open descendants to cancel; returns the ids affected."""
        ...

    async def retry_run(self, run_id: str, now: float) -> RunRecord:
        """Re-queue a failed or timed-out run; it resumes after its last completed step."""
        ...

    async def send_signal(self, run_id: str, name: str, payload: bytes, now: float) -> int:
        """Store a signal for a run and wake it; returns the signal id."""
        ...

    # --- jobs and leases ----------------------------------------------------------------------

    async def claim(
        self, owner: str, kinds: frozenset[str], limit: int, now: float, lease_seconds: float
    ) -> list[Claim]:
        """Lease up to ``limit`` ready jobs of the given ``workflow@version`` kinds."""
        ...

    async def next_wake(self, kinds: frozenset[str]) -> float | None:
        """When the earliest parked job of these kinds becomes ready, if any."""
        ...

    async def heartbeat(self, owner: str, run_ids: list[str], until: float) -> HeartbeatResult:
        """Extend the leases ``owner`` holds on ``run_ids``."""
        ...

    async def reap_expired(self, now: float) -> list[str]:
        """Return runs whose lease expired to the queue; returns their ids."""
        ...

    async def release(self, owner: str, now: float) -> int:
        """Give back every lease ``owner`` holds (graceful shutdown)."""
        ...

    # --- fenced writes by the worker that runs the run ---------------------------------------
    # These are plain methods that queue their write at call time and return an awaitable:
    # writes are applied in the order they were called, so a write that is not awaited (a
    # recorded ``now()``) is still durable before any later write of the same run.

    def record_step(self, fence: Fence, step: StepRecord) -> Awaitable[None]:
        """Insert or update one history entry."""
        ...

    def consume_signal(self, fence: Fence, signal_id: int, step: StepRecord) -> Awaitable[None]:
        """Record that the wait at ``step.seq`` received signal ``signal_id``."""
        ...

    def start_child(
        self, fence: Fence, step: StepRecord, child: NewRun, now: float
    ) -> Awaitable[None]:
        """Record the child step as waiting and create the child run, atomically."""
        ...

    async def child_outcome(self, child_id: str) -> RunRecord | None:
        """The child run (for its status and output)."""
        ...

    def suspend(self, fence: Fence, wake_at: float | None, now: float) -> Awaitable[None]:
        """Park the run: release its lease, ready again at ``wake_at`` (or when nudged)."""
        ...

    def finish_run(
        self,
        fence: Fence,
        status: RunStatus,
        output: bytes | None,
        error: dict[str, Any] | None,
        now: float,
    ) -> Awaitable[None]:
        """Close the run with a terminal status, wake its parent and free its concurrency slot."""
        ...
