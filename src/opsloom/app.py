"""The application object: register workflows and steps, start runs, and run a worker.

>>> app = App("sqlite:///ops.db")
>>> @app.step()
... async def add_one(x: int) -> int: return x + 1
>>> @app.workflow(name="chain")
... async def chain(ctx: Context, x: int) -> int: return await ctx.step(add_one, x)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from opsloom.clock import Clock, SystemClock
from opsloom.codec import encode
from opsloom.engine.registry import (
    DEFAULT_RETRY,
    Registry,
    WorkflowFn,
    WorkflowSpec,
    attach_step_spec,
    make_step_spec,
    workflow_takes_input,
)
from opsloom.errors import (
    ConfigurationError,
    InputError,
    OverloadedError,
    RunFailedError,
    RunNotFoundError,
    SerializationError,
    WorkflowNotFoundError,
)
from opsloom.ids import new_id
from opsloom.model import RetryPolicy, RunRecord, RunStatus
from opsloom.model.cloudevent import CloudEvent, EventReceipt, parse_event
from opsloom.model.run import Fence, NewRun
from opsloom.model.schedule import Schedule, ScheduleRecord, schedule_record
from opsloom.scheduler import Scheduler
from opsloom.store import Claim, RunFilter, Store, open_store
from opsloom.triggers.registration import DEFAULT_KEY, TriggerSpec
from opsloom.worker import Worker, WorkerOptions

if TYPE_CHECKING:
    from opsloom.decisions.decide import DecisionTables
    from opsloom.dsl.catalog import Catalog

F = TypeVar("F", bound=Callable[..., Any])
W = TypeVar("W", bound=WorkflowFn)


class RunHandle:
    """A started run: its id, and a way to wait for its result."""

    def __init__(self, app: App, run_id: str, created: bool = True) -> None:
        self.app = app
        self.run_id = run_id
        self.created = created

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r})"

    async def status(self) -> RunStatus:
        return (await self.app.get_run(self.run_id)).status

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to end; return its output or raise ``RunFailedError``."""
        return await self.app.result(self.run_id, timeout=timeout)


class App:
    """An opsloom application: a registry of workflows, a store and (optionally) a worker.

    Args:
        database_url: ``sqlite:///path.db``; default from ``OPSLOOM_DATABASE_URL``, else
            ``sqlite:///opsloom.db``.
        worker: options of the embedded worker that ``async with app`` runs; ``None`` for a
            client that only starts, signals and inspects runs.
        clock: the time source (tests pass a ``FakeClock``).
        sqlite_synchronous: SQLite durability level (default from settings, ``FULL``).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        worker: WorkerOptions | None = WorkerOptions(),
        clock: Clock | None = None,
        sqlite_synchronous: str | None = None,
    ) -> None:
        self._database_url = database_url
        self._sqlite_synchronous = sqlite_synchronous
        self.worker_options = worker
        self.clock: Clock = clock or SystemClock()
        self.registry = Registry()
        self._store: Store | None = None
        self.worker: Worker | None = None
        self.scheduler: Scheduler | None = None
        #: Schedules of code-first workflows (``@app.workflow(schedule=…)``), by workflow name.
        self.schedules: dict[str, Schedule] = {}
        #: Event triggers of code-first workflows (:meth:`trigger`), by workflow name.
        self.triggers: dict[str, TriggerSpec] = {}
        self._waiters: dict[str, list[asyncio.Future[RunRecord | None]]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._finished_elsewhere = asyncio.Event()
        self._open_count = 0
        self._intake_pending = 0  # events handed to the store and not yet committed
        self._intake_limit = 10_000

    # --- registration -------------------------------------------------------------------------

    @overload
    def step(self, fn: F) -> F: ...

    @overload
    def step(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Callable[[F], F]: ...

    def step(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> F | Callable[[F], F]:
        """Declare a step function (async or sync) with its retry policy and timeout."""

        def register(func: F) -> F:
            attach_step_spec(func, make_step_spec(func, name, retry or DEFAULT_RETRY, timeout))
            return func

        return register(fn) if fn is not None else register

    @overload
    def workflow(self, fn: W) -> W: ...

    @overload
    def workflow(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        version: str = "1",
        timeout: float | None = None,
        priority: int = 0,
        concurrency: int | None = None,
        concurrency_key: Callable[[Any], str] | None = None,
        schedule: str | Schedule | None = None,
        on: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> Callable[[W], W]: ...

    def workflow(
        self,
        fn: W | None = None,
        *,
        name: str | None = None,
        version: str = "1",
        timeout: float | None = None,
        priority: int = 0,
        concurrency: int | None = None,
        concurrency_key: Callable[[Any], str] | None = None,
        schedule: str | Schedule | None = None,
        on: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> W | Callable[[W], W]:
        """Register a workflow ``async def wf(ctx, input)`` under a name and version.

        ``concurrency`` limits how many runs of this workflow are open at once, across all
        workers; with ``concurrency_key`` the limit applies per key (e.g. per service).
        ``schedule`` starts runs by themselves: a cron expression (``"*/5 * * * *"``, UTC) or a
        :class:`~opsloom.model.schedule.Schedule` (time zone, interval, misfire policy, input).
        ``on`` starts runs from events: a filter or a list of them (see :meth:`trigger`, which
        also takes the dedup key, window and mode).
        """
        parsed = None if schedule is None else Schedule.parse(schedule)
        if concurrency is not None and concurrency < 1:
            raise ConfigurationError("workflow concurrency must be at least 1")
        if concurrency_key is not None and concurrency is None:
            raise ConfigurationError("concurrency_key needs a concurrency limit")

        def register(func: W) -> W:
            if not inspect.iscoroutinefunction(func):
                raise ConfigurationError(f"workflow {func.__qualname__} must be an async function")
            self.registry.add_workflow(
                WorkflowSpec(
                    fn=func,
                    name=name or func.__name__,
                    version=str(version),
                    timeout=timeout,
                    priority=priority,
                    concurrency=concurrency,
                    concurrency_key=concurrency_key,
                    takes_input=workflow_takes_input(func),
                )
            )
            if parsed is not None:
                self.schedules[name or func.__name__] = parsed
            if on is not None:
                self.trigger(
                    name or func.__name__, on=on, mode="one" if isinstance(on, dict) else "any"
                )
            return func  # type: ignore[return-value]  # inspect narrows it too far

        return register(fn) if fn is not None else register

    def trigger(
        self,
        workflow: str,
        *,
        on: dict[str, Any] | list[dict[str, Any]],
        mode: str = "one",
        key: str | None = DEFAULT_KEY,
        window: float = 0.0,
        version: str | None = None,
        input: str | None = None,
        follow: list[dict[str, Any]] | None = None,
    ) -> None:
        """Start runs of ``workflow`` from stored events (saved when a worker opens the app).

        ``on`` is an event filter or a list of them, ``mode`` ``one``, ``any`` or ``all``.
        While a run started for a dedup ``key`` (jq over the event; default ``.subject``, an
        alert's fingerprint; ``None``: no dedup) is open, later events of that key reach its
        inbox (``events:inbox``, also seen by ``wait_for_event``) instead of starting runs, as
        do ``follow`` events (default: the resolved alerts of firing ones); ``window``
        seconds after it ended they start nothing. See :mod:`opsloom.model.trigger`.
        """
        filters = [on] if isinstance(on, dict) else list(on)
        spec = TriggerSpec(filters, mode, key, window, version, input, follow)
        # Checked now, so a mistake shows at import time rather than when a worker opens.
        spec.build(f"code:{workflow}", workflow, version or "?", None)
        self.triggers[workflow] = spec

    # --- lifecycle ----------------------------------------------------------------------------

    def configure(
        self, *, database_url: str | None = None, worker: WorkerOptions | bool | None = True
    ) -> None:
        """Override, before opening, what a command line chose: the store and the worker.

        ``worker=True`` keeps the current worker options, ``None`` or ``False`` runs none.
        """
        if self._store is not None:
            raise RuntimeError("configure() must be called before the app is opened")
        if database_url:
            self._database_url = database_url
        if worker is not True:
            self.worker_options = worker or None

    def catalog(self, **options: Any) -> Catalog:
        """The ``default`` catalog of documents run by this app (see :func:`default_catalog`).

        Decision tables come from ``OPSLOOM_DECISIONS_DIR``; ``options`` go to the built-ins.
        """
        from opsloom.decisions.decide import load_decision_tables
        from opsloom.settings import load_settings

        return default_catalog(load_decision_tables(load_settings()), **options)

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the app is not open: use `async with app:`")
        return self._store

    async def open(self) -> None:
        """Open the store (migrating it) and start the embedded worker, if any."""
        self._open_count += 1
        if self._open_count > 1:
            return
        from opsloom.settings import load_settings

        settings = load_settings()
        url = self._database_url or settings.database_url
        store = open_store(
            url,
            sqlite_synchronous=self._sqlite_synchronous or settings.sqlite_synchronous,
            postgres_pool_size=settings.postgres_pool_size,
        )
        try:
            await store.open()
        except BaseException:
            self._open_count -= 1
            raise
        self._store = store
        self._intake_limit = settings.intake_max_pending
        self._finished_elsewhere = asyncio.Event()
        store.add_wake_listener("done", self._finished_elsewhere.set)
        if self.worker_options is not None:
            self.worker = Worker(
                store,
                self.registry,
                self.clock,
                self.worker_options,
                on_finished=self._run_finished,
            )
            await self.worker.start()
            await self._start_scheduler(store, self.worker.owner)

    async def _start_scheduler(self, store: Store, owner: str) -> None:
        now = self.clock.now()
        for name, schedule in self.schedules.items():
            spec = self.registry.workflow(name)
            rec = schedule_record(f"code:{name}", spec.name, spec.version, schedule, now)
            await store.save_schedule(rec, now)
        for name, trigger in self.triggers.items():
            spec = self.registry.workflow(name, trigger.version)
            await store.save_trigger(
                trigger.build(f"code:{name}", spec.name, spec.version, spec), now
            )
        self.scheduler = Scheduler(store, self.clock, owner, self._scheduled_run)
        await self.scheduler.start()

    def _scheduled_run(self, rec: ScheduleRecord, run_id: str, input: Any, now: float) -> NewRun:
        try:
            spec = self.registry.workflow(rec.workflow, rec.version)
        except WorkflowNotFoundError:
            if not (rec.id.startswith("doc:") and rec.version):
                raise
            # A document deployed by another process that this one has not loaded yet: the
            # run is queued under its kind, and whichever worker has loaded it runs it.
            return NewRun(
                id=run_id,
                workflow=rec.workflow,
                version=rec.version,
                input=encode(input, what="schedule input"),
                started_by=f"schedule:{rec.id}",
            )
        return self.new_run(spec, input, run_id, now, started_by=f"schedule:{rec.id}")

    async def close(self, grace: float | None = None) -> None:
        """Stop the worker gracefully, then close the store."""
        self._open_count = max(0, self._open_count - 1)
        if self._open_count:
            return
        if self.worker is not None:
            if self.scheduler is not None:
                await self.scheduler.stop()
                self.scheduler = None
            await self.worker.stop(grace)
            self.worker = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def __aenter__(self) -> App:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- runs --------------------------------------------------------------------------------

    async def start(
        self,
        workflow: str,
        input: Any = None,
        *,
        run_id: str | None = None,
        priority: int | None = None,
        version: str | None = None,
        started_by: str | None = None,
    ) -> RunHandle:
        """Start a run; with an existing ``run_id`` return that run instead (idempotent).

        ``started_by`` is who asks (the authenticated user): it is recorded on the run, and
        that person may not decide the run's approvals unless a request allows it.
        """
        spec = self.registry.workflow(workflow, version)
        now = self.clock.now()
        new = self.new_run(spec, input, run_id, now, priority=priority, started_by=started_by)
        worker = self.worker
        # A run this process can execute right away is created already leased to its worker,
        # skipping a round trip through the queue. Runs under a concurrency limit always
        # queue, so that the limit is checked where all workers see it.
        direct = worker is not None and spec.concurrency is None and worker.reserve(spec.kind)
        if not direct:
            run, created = await self.store.create_run(new, now)
            if created and worker is not None:
                worker.notify()
            return RunHandle(self, run.id, created)
        assert worker is not None
        try:
            run, created = await self.store.create_run(
                new, now, lease=(worker.owner, now + worker.options.lease_seconds)
            )
        except BaseException:
            worker.adopt(None)
            raise
        worker.adopt(
            Claim(run=run, fence=Fence(run.id, worker.owner, 1), history={}) if created else None
        )
        return RunHandle(self, run.id, created)

    def new_run(
        self,
        spec: WorkflowSpec,
        input: Any,
        run_id: str | None,
        now: float,
        *,
        priority: int | None = None,
        started_by: str | None = None,
    ) -> NewRun:
        """The run ``start`` would create (also used by the scheduler); ``InputError`` if bad."""
        try:
            blob = encode(input, what=f"the input of workflow {spec.name!r}")
        except SerializationError as exc:
            raise InputError(str(exc)) from None
        if run_id is not None and not (0 < len(run_id) <= 200):
            raise InputError("run_id must be 1 to 200 characters")
        try:
            key = spec.key_for(input)
        except Exception as exc:
            raise InputError(
                f"the concurrency key of workflow {spec.name!r} could not be "
                f"computed from this input: {type(exc).__name__}: {exc}"
            ) from None
        return NewRun(
            id=run_id or new_id(),
            workflow=spec.name,
            version=spec.version,
            input=blob,
            priority=spec.priority if priority is None else priority,
            concurrency_key=key,
            concurrency_limit=spec.concurrency,
            deadline=None if spec.timeout is None else now + spec.timeout,
            started_by=started_by,
        )

    def handle(self, run_id: str) -> RunHandle:
        return RunHandle(self, run_id, created=False)

    async def get_run(self, run_id: str) -> RunRecord:
        """A run with its steps; ``RunNotFoundError`` if there is none."""
        run = await self.store.get_run(run_id, with_steps=True)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r}")
        return run

    async def list_runs(
        self, *, status: RunStatus | str | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        return await self.store.list_runs(
            RunFilter(
                status=None if status is None else RunStatus(status), workflow=workflow, limit=limit
            )
        )

    async def signal(self, run_id: str, name: str, data: Any = None) -> None:
        """Send a signal; a ``wait_for(name)`` in the run receives ``data`` (now or later)."""
        try:
            blob = encode(data, what=f"the data of signal {name!r}")
        except SerializationError as exc:
            raise InputError(str(exc)) from None
        await self.store.send_signal(run_id, name, blob, self.clock.now())
        if self.worker is not None:
            self.worker.notify()

    # --- events -------------------------------------------------------------------------------

    async def emit(self, event: dict[str, Any]) -> EventReceipt:
        """Store a CloudEvent (JSON form) and wake the runs waiting for it.

        The event is validated first (``InvalidEventError`` names the attribute); an ``id`` is
        generated when it has none. ``stored`` is False for a duplicate (same source and id).
        """
        return (await self.emit_events([parse_event(event, default_id=new_id)]))[0]

    async def emit_events(self, events: list[CloudEvent]) -> list[EventReceipt]:
        """Store validated events all together (all or none), then wake waiting runs.

        When more than ``OPSLOOM_INTAKE_MAX_PENDING`` events are already waiting to be stored,
        raises ``OverloadedError`` at once (the API answers 503 with ``Retry-After``): a sender
        told to retry loses nothing, while an unbounded queue would.
        """
        if self._intake_pending and self._intake_pending + len(events) > self._intake_limit:
            raise OverloadedError(
                f"{self._intake_pending} events are waiting to be stored; try again shortly"
            )
        self._intake_pending += len(events)
        try:
            stored = await self.store.append_events(events, self.clock.now())
        finally:
            self._intake_pending -= len(events)
        if any(stored) and self.worker is not None:
            self.worker.notify()
        return [
            EventReceipt(event_id=e.id, stored=s, source=e.source)
            for e, s in zip(events, stored, strict=True)
        ]

    async def cancel(self, run_id: str) -> list[str]:
        """Cancel a run and its open child runs; their compensation steps run."""
        ids = await self.store.request_cancel(run_id, self.clock.now())
        if self.worker is not None:
            self.worker.cancel_local(ids)
        return ids

    async def retry(self, run_id: str) -> RunRecord:
        """Re-queue a failed or timed-out run; completed steps are not run again."""
        run = await self.store.retry_run(run_id, self.clock.now())
        if self.worker is not None:
            self.worker.notify()
        return run

    async def result(self, run_id: str, timeout: float | None = None) -> Any:
        """Wait for a run to end; return its output or raise ``RunFailedError``."""
        future: asyncio.Future[RunRecord | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        try:
            status = await self.store.status_of(run_id)
            if status is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            run: RunRecord | None = None
            if not status.terminal:
                if self._watcher is None or self._watcher.done():
                    self._watcher = asyncio.create_task(self._watch(), name="opsloom-results")
                try:
                    run = await asyncio.wait_for(future, timeout)
                except TimeoutError:
                    raise TimeoutError(f"run {run_id!r} did not end within {timeout}s") from None
            if run is None:
                run = await self.store.get_run(run_id)
                assert run is not None
        finally:
            waiters = self._waiters.get(run_id)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(future)
                if not waiters:
                    del self._waiters[run_id]
        if run.status is RunStatus.COMPLETED:
            return run.output
        raise RunFailedError(run.id, str(run.status), run.error)

    async def _watch(self) -> None:
        """Notice runs that other processes finish: one query for all waiters per wake-up.

        Runs finished by this process's worker wake their waiters directly; a store that hears
        other processes (PostgreSQL) says when one of theirs finished, so the poll is only a
        safety net there; on SQLite it is what notices them.
        """
        if self._store is not None and self._store.wakes_across_processes:
            poll = 1.0
        else:
            poll = 0.5 if self.worker is not None else 0.05
        while self._waiters:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished_elsewhere.wait(), poll)
            self._finished_elsewhere.clear()
            if self._store is None:
                return
            for run_id in await self._store.finished_among(list(self._waiters)):
                self._wake_waiters(run_id, None)

    def _run_finished(self, run: RunRecord) -> None:
        self._wake_waiters(run.id, run)

    def _wake_waiters(self, run_id: str, run: RunRecord | None) -> None:
        for future in self._waiters.get(run_id, []):
            if not future.done():
                future.set_result(run)


def default_catalog(decision_tables: DecisionTables | None = None, **options: Any) -> Catalog:
    """The built-in catalog functions and the human ones, wired here so no layer below must.

    Args:
        decision_tables: tables that ``decide:1.0.0`` evaluates (not registered without) and
            that ``approval:1.0.0`` policies name; ``approval:1.0.0`` is always there.
        **options: passed to :func:`opsloom.dsl.catalog.default_catalog` (``client_factory``).
    """
    from opsloom.approvals.approval import register_approval
    from opsloom.decisions.decide import register_decide
    from opsloom.dsl.catalog import default_catalog as builtin_catalog

    catalog = builtin_catalog(**options)
    register_approval(catalog, decision_tables)
    if decision_tables is not None:
        register_decide(catalog, decision_tables)
    return catalog
