"""The application: the one composition root of a process.

An :class:`App` is built once, from :class:`~opsloom.settings.Settings` (read from the
environment unless given), and owns what the parts of opsloom share: the store, the clock, the
workflows (:class:`~opsloom.definition.Definitions`), the catalog of functions documents call,
the webhook sources, the connectors, the document runtime, identity, the audit log and the
approvals service. The HTTP API, the CLI, the worker and the scheduler take what they need from
it; installed packages add functions, sources and connectors through entry points
(:mod:`opsloom.extension`).

>>> app = App("sqlite:///ops.db")
>>> @app.step()
... async def add_one(x: int) -> int: return x + 1
>>> @app.workflow(name="chain")
... async def chain(ctx: Context, x: int) -> int: return await ctx.step(add_one, x)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from opsloom.analytics.adaptive import Adaptive
from opsloom.analytics.retention import Retention
from opsloom.analytics.watch import AnomalyWatch
from opsloom.analytics.watchdog import Watchdog
from opsloom.clock import Clock, SystemClock
from opsloom.codec import encode
from opsloom.connectors.registry import ConnectorRegistry
from opsloom.connectors.runtime import ConnectorRuntime
from opsloom.connectors.secret import SecretBox
from opsloom.definition import Definitions
from opsloom.engine.handler import UPDATE_PREFIX
from opsloom.engine.query import query as query_run
from opsloom.engine.query import update_outcome, validate_update
from opsloom.engine.registry import WorkflowSpec
from opsloom.errors import (
    ConfigurationError,
    InputError,
    OpsloomError,
    OverloadedError,
    RunFailedError,
    RunNotFoundError,
    SerializationError,
    WorkflowNotFoundError,
)
from opsloom.ids import MAX_PRIORITY, MIN_PRIORITY, new_id, run_id_problem
from opsloom.model import RunRecord, RunStatus
from opsloom.model.cloudevent import CloudEvent, EventReceipt, parse_event
from opsloom.model.label import check_labels
from opsloom.model.observer import Observer, Observers
from opsloom.model.ratelimit import RateLimit
from opsloom.model.run import QUARANTINED_STATUS, Fence, NewRun
from opsloom.model.schedule import ScheduleRecord, schedule_record
from opsloom.model.tracecontext import TraceParent
from opsloom.scheduler import Scheduler
from opsloom.settings import Settings, load_settings
from opsloom.store import Claim, RunFilter, Store, open_store
from opsloom.store.audit import AuditKey, seal_of
from opsloom.worker import Worker, WorkerOptions
from opsloom.worker.outcome import Outcomes

if TYPE_CHECKING:
    from opsloom.approvals.notifier import Notices
    from opsloom.approvals.service import Approvals
    from opsloom.decisions.decide import DecisionTables
    from opsloom.dsl.catalog import Catalog, CatalogFunctionFn
    from opsloom.dsl.runtime import DslRuntime
    from opsloom.identity.access import Identity
    from opsloom.identity.audit import AuditLog
    from opsloom.triggers.sources import HooksConfig, SourceRegistry

FnT = TypeVar("FnT", bound="CatalogFunctionFn")
log = logging.getLogger("opsloom.app")


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


class App(Definitions):
    """An opsloom application: workflows, a store, (optionally) a worker, and what they share.

    Args:
        database_url: ``sqlite:///path.db``; default from ``OPSLOOM_DATABASE_URL``, else
            ``sqlite:///opsloom.db``.
        worker: options of the embedded worker that ``async with app`` runs; ``None`` for a
            client that only starts, signals and inspects runs.
        clock: the time source (tests pass a ``FakeClock``).
        sqlite_synchronous: SQLite durability level (default from settings, ``FULL``).
        settings: the process's settings; default: read from the environment when first
            needed (never at import time, so a module-level ``App()`` is free).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        worker: WorkerOptions | None = WorkerOptions(),
        clock: Clock | None = None,
        sqlite_synchronous: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__()
        self._database_url = database_url
        self._sqlite_synchronous = sqlite_synchronous
        self._settings = settings
        self.worker_options = worker
        self.clock: Clock = clock or SystemClock()
        self._store: Store | None = None
        self.worker: Worker | None = None
        self.scheduler: Scheduler | None = None
        self.retention: Retention | None = None
        self.anomalies: AnomalyWatch | None = None
        self.watchdog: Watchdog | None = None
        self.adaptive: Adaptive | None = None
        self._outcomes = Outcomes(
            lambda: self._store, lambda: self.worker is not None, self._executing
        )
        self._open_count = 0
        self._intake_pending = 0  # events handed to the store and not yet committed
        self._intake_limit = 10_000
        self._catalog: Catalog | None = None
        self._functions: list[tuple[str, str, CatalogFunctionFn, str, dict[str, Any] | None]] = []
        self._sources: SourceRegistry | None = None
        self._hooks: HooksConfig | None = None
        self._connectors: ConnectorRegistry | None = None
        self._documents: DslRuntime[RunHandle] | None = None
        #: Entry points (and imported connectors) that could not be loaded, each naming
        #: itself; the rest work.
        self.extension_errors: list[ConfigurationError] = []
        #: Connections, circuit breakers and connector action calls (see opsloom.connectors).
        self.connections = ConnectorRuntime(clock=self.clock, settings=lambda: self.settings)
        #: Hears the worker, the engine and the store (metrics, logs, traces): see :meth:`observe`.
        self.observer = Observers()
        self.connections.observer = self.observer
        self._notices: Notices | None = None
        self._notices_token: Any = None

    def _executing(self, run_id: str) -> bool:
        return self.worker is not None and run_id in self.worker.executions

    def observe(self, observer: Observer) -> None:
        """Tell ``observer`` about runs, steps, writes and intake from now on."""
        self.observer.add(observer)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> App:
        """The App a command line builds: store and everything else as ``settings`` say."""
        return cls(settings.database_url, settings=settings, **options)

    # --- what the App owns ---------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The settings (read from the environment on first use when none were given)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def database_url(self) -> str:
        """The store this App opens."""
        return self._database_url or self.settings.database_url

    def missing_database(self) -> str | None:
        """The SQLite file :meth:`open` would create because it does not exist yet, if so."""
        url = self.database_url
        if not url.startswith("sqlite:"):
            return None
        from opsloom.store.dialects.sqlite import sqlite_path

        path = sqlite_path(url)
        if path == ":memory:" or Path(path).exists():
            return None
        return str(Path(path).resolve())

    @property
    def catalog(self) -> Catalog:
        """The ``default`` catalog documents call: installed functions and :meth:`function`."""
        if self._catalog is None:
            self._catalog = self.build_catalog()
        return self._catalog

    def build_catalog(self, **options: Any) -> Catalog:
        """A new catalog like :attr:`catalog`, its built-ins made with ``options``.

        ``client_factory`` (a callable returning an ``httpx.AsyncClient``) is the option the
        document runtime passes when its HTTP calls must reach somewhere else (tests' fakes).
        """
        from opsloom.connectors.catalog import register_actions
        from opsloom.decisions.decide import load_decision_tables
        from opsloom.dsl.catalog import FunctionSetup, load_catalog

        setup = FunctionSetup(load_decision_tables(self.settings), options)
        catalog, errors = load_catalog(setup)
        # Every connector action is a catalog function too (``slack-post-message:1.0.0``).
        register_actions(catalog, self.connections)
        for name, version, fn, description, schema in self._functions:
            catalog.register(name, version, fn, description=description, input_schema=schema)
        known = {str(error) for error in self.extension_errors}
        self.extension_errors.extend(e for e in errors if str(e) not in known)
        return catalog

    def function(
        self,
        name: str,
        version: str = "1.0.0",
        *,
        description: str = "",
        input_schema: dict[str, Any] | None = None,
    ) -> Callable[[FnT], FnT]:
        """Register a catalog function that documents served by this App call as
        ``call: name:version@default``.

        >>> @app.function("shout", input_schema={"type": "object"})
        ... async def shout(call: FunctionCall) -> str: ...
        """

        def register(fn: FnT) -> FnT:
            if self._catalog is not None:
                self._catalog.register(
                    name, version, fn, description=description, input_schema=input_schema
                )
            self._functions.append((name, version, fn, description, input_schema))
            return fn

        return register

    @property
    def sources(self) -> SourceRegistry:
        """The webhook sources at ``/hooks/<name>`` (the installed ``opsloom.sources``)."""
        if self._sources is None:
            from opsloom.triggers.sources import SourceRegistry
            from opsloom.triggers.sources.registry import installed_sources

            found, errors = installed_sources()
            self.extension_errors.extend(errors)
            self._sources = SourceRegistry(found)
        return self._sources

    @property
    def hooks_config(self) -> HooksConfig:
        """The webhook settings of :attr:`sources` (``OPSLOOM_HOOKS_*`` and the hooks file).

        Raises:
            ConfigurationError: a webhook setting is invalid.
        """
        if self._hooks is None:
            from opsloom.settings import environment
            from opsloom.triggers.sources import load_hooks_config

            self._hooks = load_hooks_config(
                self.settings.hooks_file,
                environment("OPSLOOM_HOOKS_"),
                sources=self.sources.configs,
            )
        return self._hooks

    @property
    def connectors(self) -> ConnectorRegistry:
        """The connectors of the installed ``opsloom.connectors`` entry points and those
        imported from OpenAPI documents: the registry :attr:`connections` calls through."""
        if self._connectors is None:
            registry = self.connections.registry
            known = {str(error) for error in self.extension_errors}
            self.extension_errors.extend(e for e in registry.errors if str(e) not in known)
            self._connectors = registry
        return self._connectors

    @property
    def documents(self) -> DslRuntime[RunHandle]:
        """The runtime of workflow documents (deployed and registered) on this App."""
        if self._documents is None:
            from opsloom.dsl.runtime import DslRuntime

            self._documents = DslRuntime(self)
        return self._documents

    @property
    def identity(self) -> Identity:
        """Users, groups, roles and API tokens in the store."""
        from opsloom.identity.access import Identity

        return Identity(self.store, self.clock)

    @property
    def audit(self) -> AuditLog:
        """The hash-chained audit log in the store."""
        from opsloom.identity.audit import AuditLog

        return AuditLog(self.store, self.clock)

    @property
    def approvals(self) -> Approvals:
        """Approval requests: decide, ask, delegate, cancel (audited; wakes local runs)."""
        from opsloom.approvals.service import Approvals

        worker = self.worker
        return Approvals(
            self.store,
            self.clock,
            self.identity,
            self.audit,
            notify=None if worker is None else worker.notify,
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def configure(
        self,
        *,
        database_url: str | None = None,
        worker: WorkerOptions | bool | None = True,
        settings: Settings | None = None,
    ) -> None:
        """Override, before opening, what a command line chose: store, worker and settings.

        ``worker=True`` keeps the current worker options, ``None`` or ``False`` runs none.
        """
        if self._store is not None:
            raise RuntimeError("configure() must be called before the app is opened")
        if database_url:
            self._database_url = database_url
        if worker is not True:
            self.worker_options = worker or None
        if settings is not None:
            self._settings = settings

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
        settings = self.settings
        store = open_store(
            self.database_url,
            sqlite_synchronous=self._sqlite_synchronous or settings.sqlite_synchronous,
            postgres_pool_size=settings.postgres_pool_size,
        )
        try:
            await store.open()
        except BaseException:
            self._open_count -= 1
            raise
        self._store = store
        store.audit_key = AuditKey(self._load_audit_key)
        store.quarantine_after = settings.quarantine_after
        await self._check_audit_key(store)
        store.observe(self.observer)
        self._intake_limit = settings.intake_max_pending
        self._outcomes.listen(store)
        # Before the worker starts: its tasks inherit the active connector runtime.
        await self.connections.open(
            store, self.emit, sync_seconds=2.0 if self.worker_options is not None else None
        )
        self._open_notices()
        if self.worker_options is not None:
            worker = await self.start_worker(self.worker_options)
            await self._start_scheduler(store, worker.owner)
            if settings.retention_days is not None:
                self.retention = Retention(store, self.clock, worker.owner, settings.retention_days)
                self.retention.start()
            if settings.anomaly_events:
                self.anomalies = AnomalyWatch(store, self.clock, worker.owner, self.emit_events)
                self.anomalies.start()
            if settings.watchdog:
                self.watchdog = Watchdog(
                    store, self.clock, worker.owner, self.emit_events, self.observer
                )
                self.watchdog.start()
            if settings.adaptive:
                self.adaptive = Adaptive(
                    store,
                    self.clock,
                    worker.owner,
                    self.registry,
                    settle_runs=settings.adaptive_settle_runs,
                )
                self.adaptive.start()

    async def start_worker(self, options: WorkerOptions | None = None) -> Worker:
        """Start a worker for this app's workflows on its open store (``open`` does it unless
        the app was built with ``worker=None``); runs started here then go straight to it.
        """
        if self.worker is not None:
            raise RuntimeError("a worker already runs in this app")
        worker = Worker(
            self.store,
            self.registry,
            self.clock,
            options or WorkerOptions(),
            on_finished=self._outcomes.finished,
            observer=self.observer,
        )
        await worker.start()
        self.worker = worker
        return worker

    async def stop_worker(self, grace: float | None = None) -> None:
        """Stop the worker gracefully (running steps get ``grace`` seconds), if one runs."""
        worker, self.worker = self.worker, None
        if worker is not None:
            await worker.stop(grace)

    def _open_notices(self) -> None:
        """Tell approvers (``OPSLOOM_APPROVAL_NOTICES_FILE``): register the notices workflow
        and make it the one requests opened from this process create their run of."""
        path = self.settings.approval_notices_file
        if path is None:
            return
        from opsloom.approvals.notice import activate_notices, load_notices
        from opsloom.approvals.notifier import NOTICES_WORKFLOW, Notices
        from opsloom.store.approval import notices_run

        if self._notices is None:
            secret = self.settings.approval_link_secret

            def new_run(request_id: str, now: float) -> NewRun:
                spec = self.registry.workflow(NOTICES_WORKFLOW)
                return self.new_run(
                    spec,
                    {"request_id": request_id},
                    notices_run(request_id),
                    now,
                    started_by="system:approvals",
                )

            self._notices = Notices(
                load_notices(path),
                lambda: self.approvals,
                self.connections,
                None if secret is None else secret.get_secret_value(),
                new_run,
            )
            self.workflow(name=NOTICES_WORKFLOW)(self._notices.workflow)
        self._notices_token = activate_notices(self._notices)

    def _load_audit_key(self, create: bool) -> bytes | None:
        """The audit log's sealing key, derived from the connection secret key (see
        :mod:`opsloom.store.audit`); None when there is none and ``create`` is false."""
        settings = self.settings
        key = settings.secret_key.get_secret_value() if settings.secret_key else None
        if create:
            box = SecretBox.from_settings(key, settings.secret_key_file)
        else:
            found = SecretBox.existing(key, settings.secret_key_file)
            if found is None:
                return None
            box = found
        return box.derive("opsloom audit seal v1")

    async def _check_audit_key(self, store: Store) -> None:
        """Warn when this process would seal audit entries with a key other than the one the
        log was sealed with (another machine's key file): its entries would not verify."""
        seq, digest = await store.audit_head()
        if seq == 0:
            return
        newest = await store.audit_entries(after_seq=seq - 1, limit=1)
        if not newest or newest[0].mac is None:
            return
        last = newest[0]
        try:
            key = None if store.audit_key is None else store.audit_key.get(create=False)
        except OpsloomError as exc:
            log.warning("the audit log's seals cannot be checked: %s", exc)
            return
        if key is None:
            problem = "this process has no secret key"
        elif seal_of(key, digest) != last.mac:
            problem = "this process's secret key is not the one that sealed it"
        else:
            return
        log.warning(
            "the audit log is sealed with a key, and %s: entries it appends will not verify. "
            "Give every process the same OPSLOOM_SECRET_KEY (or key file).",
            problem,
            extra={"event": "audit_key_mismatch"},
        )

    async def _start_scheduler(self, store: Store, owner: str) -> None:
        now = self.clock.now()
        for name, schedule in self.schedules.items():
            spec = self.registry.workflow(name)
            rec = schedule_record(f"code:{name}", spec.name, spec.version, schedule, now)
            await store.save_schedule(rec, now)
        for name in sorted({spec.name for spec in self.registry.workflows()}):
            declared = self.registry.workflow(name).rate_limit
            if declared is not None:
                await store.declare_rate_limit(name, declared)
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
        if self._documents is not None:
            await self._documents.close()
        if self.retention is not None:
            await self.retention.stop()
            self.retention = None
        if self.anomalies is not None:
            await self.anomalies.stop()
            self.anomalies = None
        if self.watchdog is not None:
            await self.watchdog.stop()
            self.watchdog = None
        if self.adaptive is not None:
            await self.adaptive.stop()
            self.adaptive = None
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        await self.stop_worker(grace)
        await self.connections.close()
        if self._notices_token is not None:
            from opsloom.approvals.notice import deactivate_notices

            deactivate_notices(self._notices_token)
            self._notices_token = None
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
        traceparent: str | None = None,
        started_by: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> RunHandle:
        """Start a run; with an existing ``run_id`` return that run instead (idempotent).

        ``traceparent``: a W3C trace context the run's trace continues (ignored if invalid).
        ``started_by`` is who asks (the authenticated user): it is recorded on the run, and
        that person may not decide the run's approvals unless a request allows it.

        Raises:
            InputError: ``run_id`` or ``priority`` is not acceptable (see
                :func:`~opsloom.ids.run_id_problem`; priorities are 64-bit integers), or the
                input cannot be stored.
        """
        problem = None if run_id is None else run_id_problem(run_id)
        if problem is not None:
            raise InputError(problem)
        if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise InputError(f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}")
        spec = self.registry.workflow(workflow, version)
        now = self.clock.now()
        new = self.new_run(
            spec,
            input,
            run_id,
            now,
            priority=priority,
            traceparent=traceparent,
            started_by=started_by,
            labels=labels,
        )
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
        # A run of a paused workflow is created queued, not leased.
        leased = created and run.status is RunStatus.RUNNING
        worker.adopt(
            Claim(run=run, fence=Fence(run.id, worker.owner, 1), history={}) if leased else None
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
        traceparent: str | None = None,
        started_by: str | None = None,
        labels: dict[str, str] | None = None,
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
            traceparent=traceparent if TraceParent.parse(traceparent) is not None else None,
            started_by=started_by,
            labels=tuple(check_labels(labels or {}).items()),  # type: ignore[arg-type]
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
        self,
        *,
        status: RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        labels: dict[str, str] | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first; with ``labels``, only runs that have all of them."""
        quarantined = status == QUARANTINED_STATUS
        return await self.store.list_runs(
            RunFilter(
                status=None if status is None or quarantined else RunStatus(status),
                quarantined=quarantined,
                workflow=workflow,
                limit=limit,
                labels=tuple(sorted((labels or {}).items())),
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

    async def query(self, run_id: str, name: str, data: Any = None) -> Any:
        """Ask the run's query handler ``name`` (``ctx.on_query``); the run is not changed.

        The run is replayed to its present in this process, which must have its workflow.
        """
        return await query_run(self.store, self.clock, self.registry, run_id, name, data)

    async def update(
        self, run_id: str, name: str, data: Any = None, *, timeout: float | None = None
    ) -> Any:
        """Send the update ``name`` to a run and wait for its handler's result.

        Raises ``UpdateRejectedError`` (nothing stored) when the update's validator refuses
        ``data``, ``UpdateFailedError`` when its handler raises or the run ends first,
        ``UpdatePendingError`` when ``timeout`` seconds pass first (the update stays queued).
        """
        update_id = await self.send_update(run_id, name, data)
        return await self.update_result(run_id, update_id, timeout=timeout)

    async def send_update(self, run_id: str, name: str, data: Any = None) -> str:
        """Validate and store an update (see :meth:`update`); return its id."""
        await validate_update(self.store, self.clock, self.registry, run_id, name, data)
        update_id = new_id()
        await self.signal(run_id, UPDATE_PREFIX + name, {"id": update_id, "data": data})
        return update_id

    async def update_result(
        self, run_id: str, update_id: str, *, timeout: float | None = None
    ) -> Any:
        """Wait for the result of an update sent with :meth:`send_update`."""
        return await update_outcome(self.store, run_id, update_id, timeout)

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

    async def pause(self, run_id: str) -> RunRecord:
        """Pause a run: its running step finishes, then it parks and holds no worker slot
        until :meth:`resume`; its timers and signals wait for it."""
        run = await self.store.pause_run(run_id, self.clock.now())
        if self.worker is not None:
            self.worker.pause_local([run_id])
        return run

    async def resume(self, run_id: str) -> RunRecord:
        """Resume a paused run (timers that fired meanwhile are taken at once)."""
        run = await self.store.resume_run(run_id, self.clock.now())
        if self.worker is not None:
            self.worker.notify()
        return run

    async def requeue(self, run_id: str) -> RunRecord:
        """Release a quarantined run: workers claim it again, with a fresh crash budget."""
        run = await self.store.requeue_run(run_id, self.clock.now())
        if self.worker is not None:
            self.worker.notify()
        return run

    async def pause_workflow(self, workflow: str, *, by: str | None = None) -> list[str]:
        """Pause every open run of ``workflow``, and the runs it starts until resumed; returns
        the runs paused now."""
        ids = await self.store.pause_workflow(workflow, by, self.clock.now())
        if self.worker is not None:
            self.worker.pause_local(ids)
        return ids

    async def limit_rate(
        self, workflow: str, limit: RateLimit | float | None, burst: int = 1
    ) -> None:
        """Limit how many runs of ``workflow`` start: a :class:`RateLimit` (per key, dropping
        starts past it…) or a rate per second with ``burst``, for every process on this store;
        new runs past the rate queue. None lifts the limit."""
        await self.store.set_rate_limit(workflow, limit, burst)

    async def resume_workflow(self, workflow: str) -> list[str]:
        """Resume a paused workflow and the runs paused with it; returns those runs."""
        ids = await self.store.resume_workflow(workflow, self.clock.now())
        if self.worker is not None:
            self.worker.notify()
        return ids

    async def reset(
        self,
        run_id: str,
        to_step: int,
        *,
        version: str | None = None,
        started_by: str | None = None,
    ) -> RunRecord:
        """Start a new run that reuses ``run_id``'s recorded results before position
        ``to_step`` and re-executes from there (with ``version``, default the run's)."""
        run = await self.store.reset_run(
            run_id, to_step, new_id(), version=version, by=started_by, now=self.clock.now()
        )
        if self.worker is not None:
            self.worker.notify()
        return run

    async def retry(self, run_id: str) -> RunRecord:
        """Re-queue a failed or timed-out run; completed steps are not run again."""
        run = await self.store.retry_run(run_id, self.clock.now())
        if self.worker is not None:
            self.worker.notify()
        return run

    async def result(self, run_id: str, timeout: float | None = None) -> Any:
        """Wait for a run to end; return its output or raise ``RunFailedError``."""
        run = await self._outcomes.wait(self.store, run_id, timeout)
        if run.status is RunStatus.COMPLETED:
            return run.output
        raise RunFailedError(run.id, str(run.status), run.error)


def default_catalog(decision_tables: DecisionTables | None = None, **options: Any) -> Catalog:
    """A new catalog with every installed catalog function: the DSL's built-ins, the human
    tasks (``approval:1.0.0``; ``decide:1.0.0`` with decision tables) and plugins' functions.

    Args:
        decision_tables: tables that ``decide:1.0.0`` evaluates and approval policies name.
        **options: passed to the built-ins (``client_factory``).
    """
    from opsloom.dsl.catalog import FunctionSetup, load_catalog

    catalog, _ = load_catalog(FunctionSetup(decision_tables, options))
    return catalog
