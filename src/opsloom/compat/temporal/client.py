"""Starting and talking to workflows, with the names of ``temporalio.client``.

``Client.connect`` opens an opsloom store (``sqlite:///…`` or ``postgresql://…``) instead of a
Temporal frontend; a workflow id is an opsloom run id. Handles signal, query, update, cancel and
wait for runs through the app's own ``signal``, ``query``, ``update``, ``cancel`` and ``result``,
so a run started here is an ordinary opsloom run (``opsloom runs``, the UI, metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

from opsloom.app import App
from opsloom.codec import encode
from opsloom.compat.temporal.converter import (
    SCALARS,
    call_args,
    converts,
    from_json,
    return_hint,
)
from opsloom.compat.temporal.exceptions import (
    ApplicationError,
    CancelledError,
    FailureError,
    TemporalError,
    TimeoutError,
    WorkflowAlreadyStartedError,
    failure_from,
)
from opsloom.compat.temporal.runner import make_runner
from opsloom.compat.temporal.runtime import Runtime
from opsloom.compat.temporal.workflow import _DEFN, WorkflowDefinition, workflow_name
from opsloom.errors import (
    QueryError,
    RunFailedError,
    RunNotFoundError,
    UpdateFailedError,
    UpdateRejectedError,
    WorkflowNotFoundError,
)
from opsloom.model import RunRecord, RunStatus
from opsloom.model.run import NewRun
from opsloom.store import RunFilter

_UNSET: Any = object()
_STORE_SCHEMES = ("sqlite:", "postgresql:", "postgres:")


class RPCError(TemporalError):
    """A request could not be served (no such workflow, a bad address)."""


class WorkflowFailureError(TemporalError):
    """``result()`` of a workflow that did not complete; the reason is ``cause``."""

    def __init__(self, *, cause: BaseException) -> None:
        super().__init__("Workflow execution failed")
        self.cause = cause
        self.__cause__ = cause


class WorkflowQueryFailedError(TemporalError):
    """A query could not be answered (no such query, or its handler raised)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WorkflowUpdateFailedError(TemporalError):
    """An update was rejected by its validator or failed in its handler (see ``cause``)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__("Workflow update failed")
        self.cause = cause
        self.__cause__ = cause


class WorkflowExecutionStatus(IntEnum):
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    CANCELED = 4
    TERMINATED = 5
    CONTINUED_AS_NEW = 6
    TIMED_OUT = 7


_STATUS = {
    RunStatus.COMPLETED: WorkflowExecutionStatus.COMPLETED,
    RunStatus.FAILED: WorkflowExecutionStatus.FAILED,
    RunStatus.CANCELLED: WorkflowExecutionStatus.CANCELED,
    RunStatus.TIMED_OUT: WorkflowExecutionStatus.TIMED_OUT,
}


@dataclass(frozen=True, slots=True)
class WorkflowExecutionDescription:
    """What ``describe()`` tells of a workflow (of its current run, after continue-as-new)."""

    id: str
    run_id: str
    workflow_type: str
    status: WorkflowExecutionStatus
    task_queue: str
    start_time: datetime
    close_time: datetime | None
    raw: RunRecord


class Client:
    """A connection to an opsloom store, used like a Temporal client.

    Args:
        app: the opsloom app whose store, workflows and worker this client uses.
        namespace: accepted for compatibility; an opsloom store has one namespace.
    """

    def __init__(self, app: App, *, namespace: str = "default", owns_app: bool = False) -> None:
        self.app = app
        self.namespace = namespace
        self.runtime = Runtime()
        self._owns_app = owns_app
        #: The definition, workflow type and result hint (None: no conversion) that a class or
        #: run method stands for, found once: a start looks them up instead of working them out.
        self._started: dict[Any, tuple[WorkflowDefinition, str, Any]] = {}

    @staticmethod
    async def connect(
        target_host: str = "sqlite:///opsloom.db",
        *,
        namespace: str = "default",
        **ignored: Any,
    ) -> Client:
        """Open the opsloom store at ``target_host`` (a database URL).

        A Temporal address (``localhost:7233``) is refused with an error saying what to give
        instead. Options of Temporal's ``connect`` (TLS, API keys, interceptors…) are ignored.
        """
        if not target_host.startswith(_STORE_SCHEMES):
            raise RPCError(
                f"cannot connect to {target_host!r}: opsloom.compat.temporal connects to an "
                "opsloom store, e.g. 'sqlite:///opsloom.db' or 'postgresql://host/db'"
            )
        app = App(target_host, worker=None)
        await app.open()
        return Client(app, namespace=namespace, owns_app=True)

    async def close(self) -> None:
        """Close the store this client opened (a client made on an app leaves it open)."""
        if self._owns_app:
            await self.app.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- workflows -------------------------------------------------------------------------------

    def register(self, workflow: Any) -> WorkflowDefinition:
        """Register a ``@workflow.defn`` class with the app (once; the worker does it too)."""
        definition = WorkflowDefinition.of(workflow)
        known = self.runtime.runners.get(definition.name)
        if known is None:
            runner = make_runner(definition, self.runtime)
            self.runtime.runners[definition.name] = runner
            self.app.workflow(name=definition.name)(runner)
        return definition

    async def start_workflow(
        self,
        workflow: Any,
        arg: Any = _UNSET,
        *,
        id: str,
        task_queue: str,
        args: Sequence[Any] = (),
        result_type: type | None = None,
        start_signal: str | None = None,
        start_signal_args: Sequence[Any] = (),
        **ignored: Any,
    ) -> WorkflowHandle:
        """Start a run whose id is ``id``; ``WorkflowAlreadyStartedError`` if that id exists.

        Options of Temporal's call that opsloom has no use for (id reuse and conflict
        policies, memo, search attributes, execution timeouts…) are accepted and ignored.
        """
        hint = result_type
        if isinstance(workflow, str):
            name = workflow
        else:
            try:
                known = self._started.get(workflow)
            except TypeError:  # not a class nor a method: register() says what it is
                known = None
            # Still what the class stands for (it may have been declared again since)?
            if known is None or getattr(workflow, _DEFN, None) is not known[0]:
                definition = self.register(workflow)
                run_hint = return_hint(definition.run_fn)
                known = (definition, definition.name, run_hint if converts(run_hint) else None)
                self._started[workflow] = known
            name = known[1]
            if hint is None:
                hint = known[2]
        values = (
            [arg]
            if arg.__class__ in SCALARS and not args  # the common case: one plain value
            else call_args(arg, args, unset=_UNSET)
        )
        value = {"args": values, "task_queue": task_queue}
        try:
            handle = await self.app.start(name, value, run_id=id)
            created = handle.created
        except WorkflowNotFoundError:
            # Started by name from a process without the workflow's code: queued for any
            # worker that has it (every Temporal-style workflow is registered as version 1).
            now = self.app.clock.now()
            new = NewRun(id=id, workflow=name, version="1", input=encode(value, what="input"))
            _, created = await self.app.store.create_run(new, now)
        if not created:
            raise WorkflowAlreadyStartedError(id, name, run_id=id)
        if start_signal is not None:
            await self.app.signal(
                id, start_signal, call_args(_UNSET, start_signal_args, unset=_UNSET)
            )
        return WorkflowHandle(self, id, result_type=hint)

    async def execute_workflow(self, workflow: Any, arg: Any = _UNSET, **options: Any) -> Any:
        """Start a workflow and wait for its result (``WorkflowFailureError`` if it fails)."""
        handle = await self.start_workflow(workflow, arg, **options)
        return await handle.result()

    def get_workflow_handle(
        self,
        workflow_id: str,
        *,
        run_id: str | None = None,
        first_execution_run_id: str | None = None,
        result_type: type | None = None,
    ) -> WorkflowHandle:
        """A handle of the workflow ``workflow_id`` (nothing is checked until it is used)."""
        return WorkflowHandle(self, workflow_id, result_type=result_type)

    def get_workflow_handle_for(
        self, workflow: Any, workflow_id: str, **options: Any
    ) -> WorkflowHandle:
        """A handle whose ``result()`` is typed by ``workflow``'s ``run`` method."""
        definition = WorkflowDefinition.of(workflow)
        return WorkflowHandle(self, workflow_id, result_type=return_hint(definition.run_fn))


class WorkflowHandle:
    """One workflow: ``id`` is the run id of its first run (later runs continue it)."""

    def __init__(self, client: Client, id: str, *, result_type: type | None = None) -> None:
        self._client = client
        self.id = id
        self.run_id: str | None = id
        self.first_execution_run_id: str | None = id
        self.result_run_id: str | None = id
        self._result_type = result_type

    @property
    def _app(self) -> App:
        return self._client.app

    async def result(
        self, *, follow_runs: bool = True, rpc_timeout: timedelta | None = None
    ) -> Any:
        """Wait for the workflow to end; return its result or raise ``WorkflowFailureError``."""
        try:
            value = await self._client.app.result(self.id)
        except RunNotFoundError as exc:
            raise RPCError(str(exc)) from None
        except RunFailedError:
            current = await self._app.get_run(await self.current_run_id())
            raise WorkflowFailureError(cause=_run_failure(current)) from None
        hint = self._result_type
        return value if hint is None else from_json(value, hint)

    async def current_run_id(self) -> str:
        """The run that is current: the last one of the continue-as-new chain from ``id``."""
        run_id = self.id
        while True:
            children = await self._app.store.list_runs(RunFilter(parent_id=run_id, limit=1000))
            following = [
                child.id
                for child in children
                if isinstance(child.input, dict) and child.input.get("continued_from") == run_id
            ]
            if not following:
                return run_id
            run_id = following[0]

    async def signal(self, signal: Any, arg: Any = _UNSET, *, args: Sequence[Any] = ()) -> None:
        """Send a signal to the workflow's current run; its handler runs at the run's next wait."""
        name = _handler_name(signal)
        try:
            await self._app.signal(
                await self.current_run_id(), name, call_args(arg, args, unset=_UNSET)
            )
        except RunNotFoundError as exc:
            raise RPCError(str(exc)) from None

    async def query(
        self,
        query: Any,
        arg: Any = _UNSET,
        *,
        args: Sequence[Any] = (),
        result_type: type | None = None,
        **ignored: Any,
    ) -> Any:
        """Ask a query handler; the run is replayed to its present here and not changed."""
        name = _handler_name(query)
        try:
            answer = await self._app.query(
                await self.current_run_id(), name, call_args(arg, args, unset=_UNSET)
            )
        except QueryError as exc:
            raise WorkflowQueryFailedError(str(exc)) from None
        except RunNotFoundError as exc:
            raise RPCError(str(exc)) from None
        hint = result_type if result_type is not None else _return_hint_of(query)
        return from_json(answer, hint)

    async def execute_update(
        self,
        update: Any,
        arg: Any = _UNSET,
        *,
        args: Sequence[Any] = (),
        id: str | None = None,
        result_type: type | None = None,
        **ignored: Any,
    ) -> Any:
        """Send an update and wait for its result (``WorkflowUpdateFailedError`` if refused)."""
        name = _handler_name(update)
        try:
            result = await self._app.update(
                await self.current_run_id(), name, call_args(arg, args, unset=_UNSET)
            )
        except UpdateRejectedError as exc:
            raise WorkflowUpdateFailedError(ApplicationError(str(exc))) from None
        except UpdateFailedError as exc:
            raise WorkflowUpdateFailedError(failure_from(exc.error)) from None
        except QueryError as exc:
            raise WorkflowUpdateFailedError(ApplicationError(str(exc))) from None
        hint = result_type if result_type is not None else _return_hint_of(update)
        return from_json(result, hint)

    async def cancel(self, **ignored: Any) -> None:
        """Cancel the workflow: it sees ``asyncio.CancelledError`` where it waits."""
        try:
            await self._app.cancel(await self.current_run_id())
        except RunNotFoundError as exc:
            raise RPCError(str(exc)) from None

    async def terminate(self, *args: Any, reason: str | None = None, **ignored: Any) -> None:
        """End the workflow now. opsloom has one way to stop a run: this is :meth:`cancel`."""
        await self.cancel()

    async def describe(self, **ignored: Any) -> WorkflowExecutionDescription:
        """The workflow's current run: type, status, task queue, start and close times."""
        try:
            run = await self._app.get_run(await self.current_run_id())
        except RunNotFoundError as exc:
            raise RPCError(str(exc)) from None
        task_queue = run.input.get("task_queue") if isinstance(run.input, dict) else None
        return WorkflowExecutionDescription(
            id=self.id,
            run_id=run.id,
            workflow_type=run.workflow,
            status=_STATUS.get(run.status, WorkflowExecutionStatus.RUNNING),
            task_queue=str(task_queue or "default"),
            start_time=datetime.fromtimestamp(run.created_at, tz=UTC),
            close_time=(
                None
                if run.completed_at is None
                else datetime.fromtimestamp(run.completed_at, tz=UTC)
            ),
            raw=run,
        )


def _handler_name(handler: Any) -> str:
    if isinstance(handler, str):
        return handler
    definition = getattr(handler, "__temporal_handler__", None)
    name = getattr(definition, "name", None)
    if isinstance(name, str):
        return name
    raise TypeError(f"{handler!r} is not a signal, query or update method, nor a name")


def _return_hint_of(handler: Any) -> Any:
    return None if isinstance(handler, str) else return_hint(handler)


def _run_failure(run: RunRecord) -> FailureError:
    if run.status is RunStatus.CANCELLED:
        return CancelledError("Workflow cancelled")
    if run.status is RunStatus.TIMED_OUT:
        return TimeoutError("Workflow timed out", type=None)
    return failure_from(run.error)


__all__ = [
    "Client",
    "RPCError",
    "WorkflowExecutionDescription",
    "WorkflowExecutionStatus",
    "WorkflowFailureError",
    "WorkflowHandle",
    "WorkflowQueryFailedError",
    "WorkflowUpdateFailedError",
    "workflow_name",
]
