"""The worker: claims ready runs, executes them, keeps their leases alive, recovers lost ones.

A worker holds at most ``concurrency`` runs at once. Runs that wait (timers, signals, children)
are parked in the store and hold no slot. Several workers — in one process or many — may share
one store: the store's leases and fencing tokens make sure only one of them advances a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from opsloom.clock import Clock
from opsloom.engine.execution import Execution
from opsloom.engine.registry import Registry
from opsloom.errors import StoreError, WorkflowNotFoundError
from opsloom.ids import new_token
from opsloom.model import RunRecord
from opsloom.model.observer import Observer
from opsloom.store.base import SLOT_MARK, Claim, Kept, Store
from opsloom.store.tx import stop_if_cancelled

log = logging.getLogger("opsloom.worker")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker behaves.

    Args:
        concurrency: runs executing at once in this worker.
        lease_seconds: how long a claim stays valid without a heartbeat.
        heartbeat_seconds: how often leases are renewed (default: a third of the lease).
        poll_seconds: longest idle wait before looking for work again, a safety net for work
            queued by other processes (default: 0.25 s on stores that cannot tell this one, 2 s
            on stores that wake it up, i.e. PostgreSQL with LISTEN/NOTIFY).
        reap_seconds: how often expired leases of dead workers are returned to the queue (by
            the one process per database that holds the ``reaper`` singleton); ``None``: this
            worker never reaps, which leaves the job to other processes.
        grace_seconds: on shutdown, how long running steps may take to finish.
        hold_seconds: a durable timer due in less than this many seconds is waited for in memory,
            like a running step, instead of parking the run: a loop with short sleeps goes on
            from where it is rather than being replayed from its start after every sleep. The
            timer is recorded first, so a crash still resumes it at its time. Only while the
            worker has another slot free (a held timer keeps its run's slot). 0: always park.
        keep_parked: parked runs whose live execution this worker keeps in memory (the least
            recently parked is dropped first): a run that parks on a signal, an event, a longer
            timer or a child run, and that this worker claims again before anyone else does,
            goes on from where it waited instead of being replayed from its start. Kept runs
            hold no slot and no lease. 0: always replay.
    """

    concurrency: int = 256
    lease_seconds: float = 30.0
    heartbeat_seconds: float | None = None
    poll_seconds: float | None = None
    reap_seconds: float | None = 1.0
    grace_seconds: float = 30.0
    hold_seconds: float = 1.0
    keep_parked: int = 256

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("WorkerOptions.concurrency must be at least 1")
        if self.keep_parked < 0:
            raise ValueError("WorkerOptions.keep_parked must not be negative")
        if self.lease_seconds <= 0:
            raise ValueError("WorkerOptions.lease_seconds must be positive")

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3


class Worker:
    """Runs workflows of one registry against one store."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        clock: Clock,
        options: WorkerOptions | None = None,
        *,
        on_finished: Callable[[RunRecord], None] | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.observer = observer or Observer()
        self.registry = registry
        self.clock = clock
        self.options = options or WorkerOptions()
        self.owner = new_token()
        #: The worker slot this worker holds (see ``Store.take_worker_slot``), once started.
        self.identity: str | None = None
        self.executions: dict[str, Execution] = {}
        #: Parked runs whose live execution is kept, least recently parked first.
        self.kept: OrderedDict[str, Execution] = OrderedDict()
        self._known: dict[str, Kept] = {}
        self._on_finished = on_finished
        self._wake = asyncio.Event()
        self._beat = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._kinds: frozenset[str] = frozenset()
        self.claimed = 0
        self._reserved = 0
        self._releasing: set[asyncio.Task[None]] = set()
        self._listening = False
        clock.subscribe(self.notify)

    # --- Host protocol ------------------------------------------------------------------------

    def notify(self) -> None:
        """Something may be ready: look for work now instead of at the next poll."""
        self._wake.set()

    def execution_done(self, execution: Execution) -> None:
        run_id = execution.run.id
        if self.executions.get(run_id) is execution:
            del self.executions[run_id]
        self.forget(execution)
        self._wake.set()

    @property
    def keeps_parked(self) -> bool:
        return self.options.keep_parked > 0 and not self._stopping and bool(self._tasks)

    def keep(self, execution: Execution) -> bool:
        run_id = execution.run.id
        if not self.keeps_parked or self.executions.get(run_id) is not execution:
            return False
        del self.executions[run_id]
        self.kept[run_id] = execution
        self._known[run_id] = Kept(execution.fence.token, execution.last_seq)
        while len(self.kept) > self.options.keep_parked:
            self._drop_kept(next(iter(self.kept)))
        self._wake.set()  # its slot is free
        return True

    def forget(self, execution: Execution) -> None:
        """No longer keep ``execution`` (if it is the one kept for its run)."""
        run_id = execution.run.id
        if self.kept.get(run_id) is execution:
            del self.kept[run_id]
            del self._known[run_id]

    def _drop_kept(self, run_id: str) -> Execution | None:
        execution = self.kept.pop(run_id, None)
        if execution is not None:
            del self._known[run_id]
            execution.discard()
        return execution

    def run_finished(self, run: RunRecord) -> None:
        if self._on_finished is not None:
            self._on_finished(run)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._kinds = self.registry.kinds()
        self._stopping = False
        if self.identity is None:
            await self._take_identity()
        if not self._listening:
            self.store.add_wake_listener("work", self.notify)
            self.store.add_wake_listener("control", self._beat.set)
            self._listening = True
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="opsloom-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="opsloom-heartbeat"),
        ]
        if self.options.reap_seconds is not None:
            self._tasks.append(asyncio.create_task(self._reap_loop(self.options.reap_seconds)))

    async def _take_identity(self) -> None:
        """Hold a worker slot, and take back at once the runs an earlier holder left behind.

        The leases name the slot (``<slot>#<token>``). A worker restarted after a crash gets
        its predecessor's slot back (the lowest free one) and resumes that predecessor's runs
        now, instead of waiting for their leases to expire; claiming them again gives them a
        new fencing token, so a write of the old process, were it still alive, is refused.
        """
        try:
            identity = await self.store.take_worker_slot()
        except Exception:  # leases still expire: recovery is only slower
            log.exception("could not take a worker slot; runs of a crashed worker wait for lease")
            return
        if identity is None:
            return
        self.identity = identity
        self.owner = f"{identity}{SLOT_MARK}{new_token()}"
        log.info("holding worker slot %s", identity, extra={"event": "worker_slot"})
        try:
            recovered = await self.store.recover_owned(identity, self.owner, self.clock.now())
        except Exception:
            log.exception("could not take back the runs of this worker slot's last holder")
            return
        if recovered:
            self.observer.runs_recovered(recovered)
            log.warning(
                "resumed %d runs this worker slot held before a restart",
                len(recovered),
                extra={"event": "runs_resumed", "slot": identity, "run_ids": recovered[:20]},
            )

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let running steps finish within ``grace`` seconds, release leases."""
        if not self._tasks:
            return
        grace = self.options.grace_seconds if grace is None else grace
        self._stopping = True
        self._wake.set()
        claim_loop = self._tasks[0]
        await asyncio.wait({claim_loop})
        for execution in list(self.executions.values()):
            execution.drain()
        kept = [self._drop_kept(run_id) for run_id in list(self.kept)]
        running = {e.task for e in self.executions.values() if e.task is not None}
        running.update(e.task for e in kept if e is not None and e.task is not None)
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        await asyncio.gather(*self._releasing, return_exceptions=True)
        self._tasks = []
        try:
            released = await self.store.release(self.owner, self.clock.now())
        except StoreError:
            log.exception("could not release leases; they will expire")
        else:
            if released:
                log.info("released %d leases", released)

    def refresh_kinds(self) -> None:
        """Claim runs of workflows registered since the worker started (deployed documents)."""
        self._kinds = self.registry.kinds()
        self.notify()

    @property
    def hold_seconds(self) -> float:
        """How soon a timer must be due to be waited for in memory: only while another slot is
        free. A held timer keeps its run's slot, so with every slot taken a loop of short
        sleeps would keep it for good and the runs queued behind it would never get a turn;
        such a timer parks instead, as any longer one does."""
        if len(self.executions) + self._reserved >= self.options.concurrency:
            return 0.0
        return self.options.hold_seconds

    def reserve(self, kind: str) -> bool:
        """Hold a slot for a run this process is about to start and execute itself."""
        if (
            self._stopping
            or not self._tasks
            or kind not in self._kinds
            or len(self.executions) + self._reserved >= self.options.concurrency
        ):
            return False
        self._reserved += 1
        return True

    def adopt(self, claim: Claim | None) -> None:
        """Fill a reserved slot with a run created already leased to us (or free it)."""
        self._reserved -= 1
        if claim is not None and not self._stopping:
            self._launch(claim)
        else:
            self._wake.set()

    def cancel_local(self, run_ids: list[str]) -> None:
        """Runs cancelled through this process: stop the ones executing here at once."""
        for run_id in run_ids:
            execution = self.executions.get(run_id)
            if execution is not None:
                execution.request_cancel()
        self._wake.set()

    def pause_local(self, run_ids: list[str] | frozenset[str]) -> None:
        """Runs paused through this process (or seen paused by a heartbeat): those executing
        here finish their running steps and park."""
        for run_id in run_ids:
            execution = self.executions.get(run_id)
            if execution is not None:
                execution.request_pause()

    # --- loops -------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        options = self.options
        backoff = 0.05
        while not self._stopping:
            self._wake.clear()
            free = options.concurrency - len(self.executions) - self._reserved
            claims: list[Claim] = []
            if free > 0:
                try:
                    claims = await self.store.claim(
                        self.owner,
                        self._kinds,
                        free,
                        self.clock.now(),
                        options.lease_seconds,
                        # As it is now: runs kept or dropped while the claim is under way
                        # must not change what it compares.
                        dict(self._known) if self._known else None,
                    )
                    backoff = 0.05
                except Exception:  # keep serving: the store may come back
                    log.exception("claiming work failed; retrying in %.2fs", backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                for claim in claims:
                    self._launch(claim)
                if claims and len(claims) == free:
                    continue
            if self._stopping:
                break
            timeout = self.poll_seconds
            if free > 0 and not claims:
                with contextlib.suppress(Exception):
                    due = await self.store.next_wake(self._kinds)
                    if due is not None:
                        timeout = min(timeout, max(0.0, due - self.clock.now()))
            if timeout > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    def _launch(self, claim: Claim) -> None:
        self.claimed += 1
        run = claim.run
        try:
            spec = self.registry.workflow(run.workflow, run.version)
        except WorkflowNotFoundError:  # pragma: no cover - claims are filtered by kind
            log.error("claimed a run of an unknown workflow", extra={"run_id": run.id})
            return
        kept = self.kept.get(run.id)
        if kept is not None:
            if (
                claim.kept
                and kept.spec is spec
                and kept.task is not None
                and not (kept.task.done() or kept.task.cancelling())
            ):
                self.forget(kept)
                self.observer.run_claimed(run, False, self.clock.now())
                self.executions[run.id] = kept
                kept.resume(claim)
                return
            self._drop_kept(run.id)
        if claim.kept:
            # The store left the history out for an execution that can no longer go on (its
            # workflow was registered again, or it is being stopped): park the run again at
            # once, to be claimed with its history.
            self._let_go_of(claim)
            return
        # A run's first claim sets its start time, and nothing has been recorded yet.
        first = not claim.history and run.started_at == run.updated_at
        self.observer.run_claimed(run, first, self.clock.now())
        execution = Execution(self, claim, spec)
        self.executions[run.id] = execution
        execution.task = asyncio.create_task(execution.execute(), name=f"opsloom-exec-{run.id}")

    def _let_go_of(self, claim: Claim) -> None:
        task = asyncio.create_task(self._release(claim), name=f"opsloom-release-{claim.run.id}")
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _release(self, claim: Claim) -> None:
        now = self.clock.now()
        try:
            await self.store.suspend(claim.fence, now, now)
        except Exception:  # its lease expires instead
            log.exception("could not give a claimed run back", extra={"run_id": claim.run.id})
        self._wake.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            stop_if_cancelled()  # a beat whose cancellation the driver swallowed
            # A pause or cancel committed by another process beats at once (``control``).
            waiter = asyncio.ensure_future(self._beat.wait())
            try:
                await asyncio.wait({waiter}, timeout=self.options.heartbeat_interval)
            finally:
                waiter.cancel()
            self._beat.clear()
            if not self.executions:
                continue
            until = self.clock.now() + self.options.lease_seconds
            try:
                result = await self.store.heartbeat(self.owner, list(self.executions), until)
            except Exception:
                stop_if_cancelled()
                log.exception("heartbeat failed")
                continue
            for run_id in result.lost:
                execution = self.executions.get(run_id)
                if execution is not None and execution.task is not None:
                    log.warning("lease lost; abandoning run", extra={"run_id": run_id})
                    execution.task.cancel()
            self.cancel_local(list(result.cancel_requested))
            self.pause_local(result.pause_requested)

    @property
    def poll_seconds(self) -> float:
        if self.options.poll_seconds is not None:
            return self.options.poll_seconds
        return 2.0 if self.store.wakes_across_processes else 0.25

    async def _reap_loop(self, period: float) -> None:
        # Reap at once on start: a worker started to replace a dead one should not wait a
        # period before taking over runs whose leases have already expired. One process per
        # database reaps (the holder of the singleton); when it dies another takes over.
        while True:
            reaped: list[str] = []
            try:
                now = self.clock.now()
                # A holder that dies or stalls gives the singleton up within a few periods.
                ttl = max(3 * period, 2.0)
                # Every process looks for workers whose process is gone (their slot is free):
                # their runs, and the singletons they held, are taken back before any lease
                # or singleton expires, even when the dead one was the reaper.
                await self.store.keep_worker_slots()
                reaped = await self.store.reap_orphans(now)
                if await self.store.hold_singleton("reaper", self.owner, now, ttl):
                    reaped += await self.store.reap_expired(now)
            except Exception:
                log.exception("reaping expired leases failed")
            if reaped:
                self.observer.runs_recovered(reaped)
                log.warning(
                    "recovered %d runs whose worker vanished",
                    len(reaped),
                    extra={"run_ids": reaped[:20]},
                )
                self._wake.set()
            stop_if_cancelled()
            await asyncio.sleep(period)
