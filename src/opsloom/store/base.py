"""The ``Store`` seam: every durable decision of the engine goes through these operations.

Each implementation (SQLite, PostgreSQL) passes the same contract suite in
``tests/store``. Operations that change a running run carry a :class:`Fence`; the store rejects
them with ``LeaseLostError`` when the caller no longer holds that run's lease.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from opsloom.model import RunRecord, RunStatus, SignalRecord, StepRecord
from opsloom.model.cloudevent import CloudEvent, StoredEvent
from opsloom.model.run import Fence, NewRun
from opsloom.model.schedule import ScheduleRecord

if TYPE_CHECKING:
    # Modules of the store's aggregates import this one: their types are only annotations here.
    from opsloom.model.approval import ApprovalChange, ApprovalLinkRow, ApprovalState, ChangeFn
    from opsloom.model.observer import Observer
    from opsloom.model.ratelimit import RateLimit
    from opsloom.model.trigger import Trigger
    from opsloom.store.audit import AuditDraft, AuditEntry, AuditKey
    from opsloom.store.connection import BreakerRecord, ConnectionRecord
    from opsloom.store.deadletter import DeadLetter
    from opsloom.store.document import DocumentRecord
    from opsloom.store.event import EventQuery, EventRuns, Subscription
    from opsloom.store.identity import NewToken, TokenRecord, User, UserConflict
    from opsloom.store.pause import WorkflowPause
    from opsloom.store.ratelimit import WorkflowRateLimit
    from opsloom.store.retention import Pruned
    from opsloom.store.rollup import FailureCell, HourSummary, RunCell, StepCell
    from opsloom.store.stats import (
        ApprovalCounts,
        FinishedRun,
        SingletonHolder,
        StalledRun,
        StepOutcome,
    )
    from opsloom.store.trigger import Debounced, TriggerRun

#: What a wake-up is about: see :meth:`Store.add_wake_listener`.
WakeTopic = Literal["work", "done", "control"]


#: Separates a worker slot from the token of one process holding it in a lease's owner:
#: ``<slot>#<token>`` (see :meth:`Store.take_worker_slot`).
SLOT_MARK = "#"
#: Worker slots tried before giving up (a store with more worker processes gives no slot).
MAX_WORKER_SLOTS = 1024


@dataclass(frozen=True, slots=True)
class Kept:
    """A parked run whose live execution a worker keeps in memory: the fencing token it
    parked with and the last position of its history (see :meth:`Store.claim`)."""

    token: int
    last_seq: int


@dataclass(slots=True)
class Claim:
    """A run handed to a worker: the run, its history and the signals waiting for it.

    ``kept``: the caller keeps this run's live execution and nothing changed the run's history
    since it parked (its history is then not read: ``history`` is empty).
    """

    run: RunRecord
    fence: Fence
    history: dict[int, StepRecord]
    signals: list[SignalRecord] = field(default_factory=list)
    kept: bool = False


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Criteria for listing runs."""

    status: RunStatus | None = None
    workflow: str | None = None
    parent_id: str | None = None
    limit: int = 50
    #: Keyset cursor: only runs older than this ``(created_at, id)`` (the last row of a page).
    before: tuple[float, str] | None = None
    #: Only runs created at or after / before this epoch time.
    created_from: float | None = None
    created_to: float | None = None
    #: Only runs whose id or JSON input contains this text.
    text: str | None = None
    #: Only runs with every one of these labels (key, value).
    labels: tuple[tuple[str, str], ...] = ()
    #: Only open runs quarantined for crashing their workers (see ``Store.requeue_run``).
    quarantined: bool = False


@dataclass(frozen=True, slots=True)
class RunSpan:
    """When a run was created, started and finished (None: not yet)."""

    id: str
    status: str
    created_at: float
    started_at: float | None
    completed_at: float | None


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """What a heartbeat learned: runs whose lease was lost, runs asked to cancel or pause."""

    lost: frozenset[str]
    cancel_requested: frozenset[str]
    pause_requested: frozenset[str] = frozenset()


class Store(Protocol):
    """Persistence of runs, history, jobs and signals."""

    url: str
    #: Seals audit entries (see :mod:`opsloom.store.audit`); set by the application.
    audit_key: AuditKey | None
    #: A run whose worker vanished this many times while executing it is quarantined (0:
    #: never); set by the application.
    quarantine_after: int

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

    async def ended_runs(self, run_ids: list[str]) -> list[RunRecord]:
        """Those of ``run_ids`` that have reached a terminal status, with their labels."""
        ...

    async def run_spans(self, run_ids: list[str]) -> list[RunSpan]:
        """When each of ``run_ids`` that exists was created, started and finished."""
        ...

    async def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        """Runs matching ``flt``, newest first."""
        ...

    async def count_runs(self, flt: RunFilter) -> dict[RunStatus, int]:
        """How many runs match ``flt`` per status (its ``status``, ``before`` and ``limit`` are
        ignored: the counts are of every page, for every status)."""
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

    async def signals_since(self, run_id: str, seq: int) -> list[SignalRecord]:
        """A run's signals not consumed, or consumed at position ``seq`` or later, oldest
        first, with ``consumed_seq`` (a replay's view of the signals as of a history read)."""
        ...

    async def pending_signals(self, run_id: str) -> list[SignalRecord]:
        """The signals (and delivered events) a run has not taken yet, oldest first."""
        ...

    # --- pausing (see :mod:`opsloom.store.pause`) --------------------------------------------

    async def pause_run(self, run_id: str, now: float) -> RunRecord:
        """Hold an open run back (its job is not claimed) until it is resumed."""
        ...

    async def resume_run(self, run_id: str, now: float) -> RunRecord:
        """Let a paused run be claimed again; ``RunStateError`` if it is not paused."""
        ...

    async def requeue_run(self, run_id: str, now: float) -> RunRecord:
        """Release a quarantined run (claimable again, its recovery count back to 0);
        ``RunStateError`` if it is not quarantined."""
        ...

    async def pause_workflow(self, workflow: str, by: str | None, now: float) -> list[str]:
        """Pause the open runs of ``workflow`` and those it starts until resumed."""
        ...

    async def resume_workflow(self, workflow: str, now: float) -> list[str]:
        """Resume a paused workflow and the runs paused with it."""
        ...

    async def workflow_pauses(self) -> list[WorkflowPause]:
        """The paused workflows."""
        ...

    async def set_rate_limit(
        self, workflow: str, limit: RateLimit | float | None, burst: int = 1
    ) -> None:
        """Limit (None: stop limiting) how many runs of ``workflow`` start per second: a
        :class:`~opsloom.model.ratelimit.RateLimit`, or a rate with ``burst``."""
        ...

    async def declare_rate_limit(self, workflow: str, limit: RateLimit) -> bool:
        """Save the limit a workflow declares unless it is the one saved; whether it
        changed."""
        ...

    async def rate_limits(self) -> list[WorkflowRateLimit]:
        """The workflows under a rate limit."""
        ...

    async def prune_rate_slots(self, now: float) -> int:
        """Forget rate limit schedules that are past; how many."""
        ...

    # --- resets (see :mod:`opsloom.store.reset`) ---------------------------------------------

    async def reset_run(
        self,
        run_id: str,
        to_seq: int,
        new_id: str,
        *,
        version: str | None,
        by: str | None,
        now: float,
    ) -> RunRecord:
        """Start a new run from a finished run's history before position ``to_seq``."""
        ...

    async def resets_of(self, run_id: str) -> list[RunRecord]:
        """The runs reset from ``run_id``."""
        ...

    # --- jobs and leases ----------------------------------------------------------------------

    async def claim(
        self,
        owner: str,
        kinds: frozenset[str],
        limit: int,
        now: float,
        lease_seconds: float,
        known: Mapping[str, Kept] | None = None,
    ) -> list[Claim]:
        """Lease up to ``limit`` ready jobs of the given ``workflow@version`` kinds.

        ``known``: runs whose live execution the caller kept when they parked. Such a run's
        history is not read when no one claimed the run in between (its new token is the kept
        one plus one) and its last position is the kept one: its claim says ``kept``.
        """
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
        """Give back every lease and singleton ``owner`` holds (graceful shutdown)."""
        ...

    # --- schedules ---------------------------------------------------------------------------

    async def save_schedule(self, rec: ScheduleRecord, now: float) -> ScheduleRecord:
        """Create a schedule, or give an existing one (same id) its new definition.

        An unchanged definition leaves the stored schedule as it is (its next tick, paused or
        not); a changed one takes ``rec``'s ``anchor`` and ``next_at`` and stays paused if it
        was. Returns the schedule as stored.
        """
        ...

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """One schedule."""
        ...

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""
        ...

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        """Unpaused schedules whose next tick is at or before ``now``, earliest first."""
        ...

    async def next_schedule_at(self) -> float | None:
        """The earliest next tick of any unpaused schedule."""
        ...

    async def pause_schedule(
        self, schedule_id: str, paused: bool, next_at: float | None, now: float
    ) -> ScheduleRecord:
        """Pause or resume a schedule (resuming sets its next tick); ``ScheduleNotFoundError``."""
        ...

    async def fire_schedule(
        self,
        schedule_id: str,
        tick: float,
        next_at: float | None,
        run: NewRun | None,
        now: float,
    ) -> bool:
        """Move a schedule from ``tick`` to ``next_at`` and create ``run``, in one transaction.

        Guarded by ``tick``: when another scheduler fired it first (or the schedule was paused
        or redefined) nothing changes and the answer is ``False``. ``run`` (None: a skipped
        tick) is created once even if two schedulers get this far, since its id is the tick's.
        """
        ...

    async def rearm_after_schedules(self, now: float) -> int:
        """``after`` schedules whose last run has ended get their next tick; how many."""
        ...

    # --- coordination between processes ------------------------------------------------------

    #: Whether :meth:`add_wake_listener` hears about writes made by other processes. Without
    #: it, workers must poll often to notice work queued elsewhere.
    wakes_across_processes: bool

    def add_wake_listener(self, topic: WakeTopic, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) when another process may have changed ``topic``.

        ``"work"``: a job may have become ready (a run started, a signal sent, a timer set, a
        lease given back); ``"done"``: a run may have finished. Wake-ups are hints: a listener
        looks at the store itself, and after a lost connection every listener is called once
        because hints may have been missed. Stores that cannot hear other processes never call.
        """
        ...

    async def hold_singleton(self, name: str, owner: str, now: float, ttl: float) -> bool:
        """Take or renew process-wide singleton ``name`` for ``owner`` until ``now + ttl``.

        Returns whether ``owner`` holds it. At most one owner per database holds a singleton
        (the lease reaper, the scheduler) at a time; one that dies or stalls stops renewing
        and, once ``ttl`` has passed, the next caller takes it over. :meth:`release` gives
        back an owner's singletons with its leases.
        """
        ...

    async def take_worker_slot(self) -> str | None:
        """Hold a worker identity that outlives the process: the lowest free worker slot.

        A slot is held until the store closes and is freed by the process's end however it
        ends (a file lock on SQLite, a session's advisory lock on PostgreSQL), so a worker
        restarted after a crash gets its predecessor's identity back. ``None`` when the store
        cannot offer one (an in-memory database).
        """
        ...

    async def keep_worker_slots(self) -> None:
        """Take again the slots this process holds if the store lost them (a new session)."""
        ...

    async def worker_slot_free(self, identity: str) -> bool:
        """No living process holds the worker slot ``identity``."""
        ...

    async def recover_owned(self, identity: str, owner: str, now: float) -> list[str]:
        """Requeue the runs leased to earlier owners of ``identity`` (not ``owner``).

        Owners named ``<identity>#<token>`` belong to the worker slot ``identity``; the caller
        holds that slot, so their processes are gone and their leases need not be waited for.
        Each requeued run is claimed again with a new fencing token.
        """
        ...

    async def reap_orphans(self, now: float) -> list[str]:
        """Requeue the runs leased to owners whose worker slot nobody holds any more, and
        drop the singletons they held; returns the runs' ids."""
        ...

    # --- watching the store itself ----------------------------------------------------------

    def observe(self, observer: Observer) -> None:
        """Tell ``observer`` about committed write batches and trigger decisions."""
        ...

    @property
    def writer_alive(self) -> bool:
        """The writer is open and serving (False before ``open`` and after ``close``)."""
        ...

    async def open_run_counts(self) -> dict[RunStatus, int]:
        """How many runs are pending, running and waiting right now."""
        ...

    async def singleton_holders(self) -> list[SingletonHolder]:
        """Every singleton taken so far, with its holder and expiry."""
        ...

    async def approval_counts(self) -> ApprovalCounts:
        """Decided approval requests by outcome, and passed SLA deadlines."""
        ...

    async def quarantined_count(self) -> int:
        """Open runs quarantined for crashing their workers."""
        ...

    async def stalled_runs(self, quiet_since: float, limit: int = 500) -> list[StalledRun]:
        """Open runs without a deadline showing no sign of life since ``quiet_since``."""
        ...

    async def finished_runs(self, since: float, limit: int) -> list[FinishedRun]:
        """Runs created since ``since`` that have ended, newest first, at most ``limit``."""
        ...

    async def step_outcomes(self, since: float, limit: int) -> list[StepOutcome]:
        """Steps of runs created since ``since``, newest runs first, at most ``limit``."""
        ...

    async def run_cells(
        self,
        width: int,
        first: int,
        last: int,
        by: str,
        *,
        measure: str | None = None,
        by_status: bool = True,
        histogram: bool = True,
    ) -> list[RunCell]:
        """Run rollups of the ``width`` periods starting in ``[first, last]``, added up by
        ``by``; see :meth:`opsloom.store.rollup.RollupQueries.run_cells`."""
        ...

    async def hour_summaries(
        self,
        first: int,
        last: int,
        now: float,
        *,
        every: bool | None = None,
        light: bool = False,
    ) -> list[HourSummary]:
        """Per hour starting in ``[first, last]``, runs by status and durations, for every
        workflow (``''``) and per workflow (see :class:`~opsloom.store.rollup.RollupQueries`)."""
        ...

    async def step_cells(self, width: int, first: int, last: int) -> list[StepCell]:
        """Step rollups of the ``width`` periods starting in ``[first, last]``."""
        ...

    async def failure_cells(self, width: int, first: int, last: int) -> list[FailureCell]:
        """Failure rollups of the ``width`` periods starting in ``[first, last]``."""
        ...

    async def list_dead_letters(self, *, limit: int = 50, pending: bool = True) -> list[DeadLetter]:
        """Events triggers could not start runs for, newest first; see
        :mod:`opsloom.store.deadletter`."""
        ...

    async def replay_dead_letter(self, letter_id: int, now: float) -> DeadLetter:
        """Run the letter's trigger on its stored event again."""
        ...

    async def prune(self, before: float, limit: int = 500) -> Pruned:
        """Remove up to ``limit`` runs that ended (with their parent) before ``before`` and up
        to ``limit`` events received before it; see :mod:`opsloom.store.retention`."""
        ...

    # --- fenced writes by the worker that runs the run ---------------------------------------
    # These are plain methods that queue their write at call time and return an awaitable:
    # writes are applied in the order they were called, so a write that is not awaited (a
    # recorded ``now()``) is still durable before any later write of the same run.

    def record_step(self, fence: Fence, step: StepRecord) -> Awaitable[None]:
        """Insert or update one history entry."""
        ...

    def set_labels(
        self, fence: Fence, step: StepRecord, labels: dict[str, str | None]
    ) -> Awaitable[None]:
        """Set (None: remove) labels of the run and record the history entry that did it."""
        ...

    def record_steps(self, fence: Fence, steps: list[StepRecord]) -> Awaitable[None]:
        """Insert or update several history entries in one transaction (all or none)."""
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

    # --- events ------------------------------------------------------------------------------
    # Every event is stored before anything acts on it. Storing a new event and delivering it
    # (as a signal ``events:<subscription id>``) to every run subscribed to it happen in one
    # transaction. ``finish_run`` drops the run's subscriptions in its own transaction, and
    # ``retry_run`` reopens those its history left open (subscribe entries not unsubscribed).

    async def append_events(self, events: list[CloudEvent], now: float) -> list[bool]:
        """Store events atomically (all or none); ``False`` marks a duplicate (same source+id).

        Each new event is matched against the subscriptions written for its type and
        delivered to every matching run, which is woken.
        """
        ...

    async def append_event(self, event: CloudEvent, now: float) -> bool:
        """Store one event and deliver it; ``False`` when it is a duplicate."""
        ...

    async def get_event(self, source: str, event_id: str) -> StoredEvent | None:
        """One stored event by its producer's (source, id)."""
        ...

    async def list_events(self, query: EventQuery) -> list[StoredEvent]:
        """Events matching ``query``, newest (highest ``seq``) first."""
        ...

    async def runs_of_events(
        self, events: Sequence[StoredEvent]
    ) -> dict[tuple[str, str], EventRuns]:
        """The runs each event started and the runs it was delivered to, by (source, id)."""
        ...

    async def subscriptions_of(self, run_id: str) -> list[Subscription]:
        """The open subscriptions of a run."""
        ...

    def subscribe(
        self,
        fence: Fence,
        subscription_id: str,
        filters: list[dict[str, Any]],
        step: StepRecord,
        now: float,
    ) -> Awaitable[None]:
        """Open a subscription of the fenced run and record ``step``, atomically.

        ``filters`` were checked by ``opsloom.model.matching.check_filters``; each has a
        ``type``. Events stored from this transaction on are delivered to the run.
        """
        ...

    def unsubscribe(self, fence: Fence, subscription_id: str, step: StepRecord) -> Awaitable[None]:
        """Close a subscription of the fenced run and record ``step``, atomically."""
        ...

    def emit_event(
        self, fence: Fence, event: CloudEvent, step: StepRecord, now: float
    ) -> Awaitable[bool]:
        """Store (and deliver) an event a run emits and record ``step``, atomically."""
        ...

    # --- documents ---------------------------------------------------------------------------
    # Deployed workflow documents: one immutable row per (namespace, name, version).

    async def save_document(self, doc: DocumentRecord) -> tuple[DocumentRecord, bool]:
        """Store a document version unless it exists; the stored record and whether it is new."""
        ...

    async def get_document(
        self, namespace: str, name: str, version: str | None = None
    ) -> DocumentRecord | None:
        """One version of a document, or its latest deployed version when ``version`` is None."""
        ...

    async def list_documents(self, since: float | None = None) -> list[DocumentRecord]:
        """Every deployed version (deployed at or after ``since``), oldest first."""
        ...

    # --- triggers ----------------------------------------------------------------------------
    # Triggers start runs from events inside ``append_events``' transaction (see
    # ``opsloom.model.trigger``): an event of a dedup key whose run is open goes to that
    # run's inbox (signal ``events:inbox``) instead; ``subscribe`` moves inbox events that match
    # the new subscription to it; ``finish_run`` frees the run's key.

    async def save_trigger(self, trigger: Trigger, now: float) -> Trigger:
        """Create a trigger or give an existing one (same id) its new definition.

        An unchanged definition leaves it as it is; a changed one drops the events an ``all``
        trigger had collected. Runs it started stay open under their keys.
        """
        ...

    async def get_trigger(self, trigger_id: str) -> Trigger | None:
        """One trigger."""
        ...

    async def list_triggers(self) -> list[Trigger]:
        """Every trigger, by id."""
        ...

    async def delete_trigger(self, trigger_id: str) -> bool:
        """Remove a trigger (its runs go on); whether it existed."""
        ...

    async def trigger_runs(self, trigger_id: str, limit: int = 50) -> list[TriggerRun]:
        """Runs a trigger started, newest first, with their keys and whether they are open."""
        ...

    async def fire_debounced(self, now: float, limit: int = 100) -> int:
        """Start the runs of debounced trigger keys due at ``now`` (each with its latest
        event, or handed to the key's open run); how many keys were due."""
        ...

    async def next_debounce_at(self) -> float | None:
        """When the earliest debounced key is due."""
        ...

    async def debounced(self, trigger_id: str) -> list[Debounced]:
        """The keys of a trigger waiting out their debounce, soonest due first."""
        ...

    # --- approvals ---------------------------------------------------------------------------
    # A request with its stages, votes and clarifications is one ``ApprovalState``; every change
    # is a pure function of the stored state applied in one transaction (see
    # ``opsloom.store.approval``), which also signals the waiting run when the change asks to.

    async def create_approval(
        self, state: ApprovalState, now: float, *, runs: Sequence[NewRun] = ()
    ) -> ApprovalState:
        """Store a new request, or return the stored one with the same id (created before).

        ``runs`` are created in the same transaction (the request's notices run).
        """
        ...

    async def get_approval(self, request_id: str) -> ApprovalState | None:
        """One request with everything that belongs to it."""
        ...

    async def list_approvals(self, status: str | None, limit: int) -> list[ApprovalState]:
        """Requests (with ``status`` if given), newest first."""
        ...

    async def change_approval(
        self,
        request_id: str,
        change: ChangeFn,
        now: float,
        *,
        audit: Callable[[ApprovalChange], Sequence[AuditDraft]] | None = None,
    ) -> ApprovalChange | None:
        """Apply ``change`` to the request under a lock and store the result atomically.

        ``change`` raising an ``OpsloomError`` refuses the change: nothing is written and the
        error is raised here. When the result's ``signal`` is set and the request's run is
        open, the signal ``approval:<request id>`` is sent to it in the same transaction (and
        after any change ``approval-notice`` to the request's open notices run), and
        so are the audit entries ``audit`` makes of the result: a change is never stored
        without them. None when there is no such request.
        """
        ...

    async def save_approval_link(self, link: ApprovalLinkRow) -> None:
        """Store a one-time link (its token's hash)."""
        ...

    async def get_approval_link(self, token_hash: str) -> ApprovalLinkRow | None:
        """A link by its token's hash."""
        ...

    async def use_approval_link(self, token_hash: str, now: float) -> ApprovalLinkRow | None:
        """Mark an unused, unexpired link used; the link, or None when it cannot be used."""
        ...

    # --- identity and audit ------------------------------------------------------------------
    # Users, roles, groups and API tokens (see ``opsloom.identity.access``), and the hash-chained
    # audit log (``opsloom.identity.audit``). A change is written with its audit entry in one
    # transaction, and only when something changed; the change is dated by its entry's ``at``.
    # Answers of ``None`` mean the user (or token) does not exist, ``False`` that nothing changed.

    async def create_user(
        self,
        user: User,
        audit: Sequence[AuditDraft],
        *,
        token: NewToken | None = None,
        first: bool = False,
    ) -> UserConflict | None:
        """Create ``user`` with its roles (and ``token``), appending ``audit``; None when done.

        With ``first=True`` the user is created only if the store has no user at all (the first
        admin of a new database, even when several processes start at once).
        """
        ...

    async def get_user(self, user_id: str) -> User | None:
        """One user with its direct roles and groups."""
        ...

    async def user_by_slack_id(self, slack_id: str) -> User | None:
        """The user with this Slack id."""
        ...

    async def list_users(self) -> list[User]:
        """Every user, by id."""
        ...

    async def update_user(self, user: User, audit: AuditDraft) -> UserConflict | None:
        """Give ``user.id`` the name, e-mail and Slack id of ``user``; None when done."""
        ...

    async def set_user_disabled(
        self, user_id: str, disabled: bool, audit: AuditDraft
    ) -> bool | None:
        """Disable or enable a user."""
        ...

    async def change_role(
        self, user_id: str, role: str, granted: bool, audit: AuditDraft
    ) -> bool | None:
        """Grant (``granted=True``) or revoke a role of a user."""
        ...

    async def change_membership(
        self, user_id: str, group: str, member: bool, audit: AuditDraft
    ) -> bool | None:
        """Add a user to a group (``member=True``) or remove them from it."""
        ...

    async def group_members(self, group: str) -> list[str]:
        """The ids of a group's members, sorted."""
        ...

    async def list_groups(self) -> dict[str, list[str]]:
        """Every group that has members, with their ids."""
        ...

    async def create_token(self, token: NewToken, audit: AuditDraft) -> bool:
        """Store a token (only its hash); ``False`` when its user does not exist."""
        ...

    async def get_token(self, token_id: str) -> TokenRecord | None:
        """One token by its id."""
        ...

    async def token_by_hash(self, digest: str) -> TokenRecord | None:
        """The token whose text has this SHA-256 (hex)."""
        ...

    async def list_tokens(self, user_id: str | None = None) -> list[TokenRecord]:
        """Every token (of one user), oldest first."""
        ...

    async def revoke_token(self, token_id: str, audit: AuditDraft) -> bool | None:
        """Revoke a token for good."""
        ...

    async def touch_token(self, token_id: str, now: float) -> None:
        """Record that a token was just used (not audited)."""
        ...

    async def append_audit(self, draft: AuditDraft) -> AuditEntry:
        """Append an entry to the audit log, chained to the one before it."""
        ...

    async def audit_entries(
        self, *, after_seq: int = 0, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Entries after ``after_seq`` (at or after time ``since``), in chain order."""
        ...

    async def audit_head(self) -> tuple[int, str]:
        """The seq and hash of the last entry appended ((0, GENESIS) for an empty log)."""
        ...

    # --- connections (see store/connection.py) ------------------------------------------------

    async def save_connection(self, rec: ConnectionRecord) -> None:
        """Insert or replace a connection (its creation time is kept)."""
        ...

    async def get_connection(self, name: str) -> ConnectionRecord | None:
        """One connection by name."""
        ...

    async def list_connections(self) -> list[ConnectionRecord]:
        """Every connection, by name."""
        ...

    async def delete_connection(self, name: str) -> bool:
        """Remove a connection and its breaker; whether it existed."""
        ...

    async def save_breaker(self, rec: BreakerRecord) -> None:
        """Store a breaker state unless a newer one is stored."""
        ...

    async def list_breakers(self) -> list[BreakerRecord]:
        """The last stored state of every breaker."""
        ...
