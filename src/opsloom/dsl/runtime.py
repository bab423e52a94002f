"""Documents as engine workflows: register, deploy, load deployed versions, start runs.

A document becomes the engine workflow ``namespace/name`` at version ``document.version``; its
workflow function is an :class:`~opsloom.dsl.interpreter.Interpreter`. Deployed versions live in
the store's ``documents`` table, so every process can register what any other deployed: a
worker reloads them on an interval (:meth:`DslRuntime.watch`) and whenever a start or a child
run names a document it does not know yet.

>>> runtime = DslRuntime(app)
>>> runtime.register(runtime.load(text), text)   # before or after ``async with app``
>>> await runtime.deploy(text)                     # or: store it for every process
>>> await runtime.start("ops/restart", {"service": "api"})
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import httpx

from opsloom.dsl.egress import EgressPolicy
from opsloom.dsl.interpreter import Interpreter
from opsloom.dsl.process import ProcessPolicy
from opsloom.dsl.starts import DocumentStarts
from opsloom.errors import (
    ConfigurationError,
    InputError,
    OpsloomError,
    WorkflowNotFoundError,
)
from opsloom.expr.evaluator import DEFAULT_TIMEOUT, Evaluator
from opsloom.store.document import DocumentRecord

if TYPE_CHECKING:
    from opsloom.clock import Clock
    from opsloom.dsl.catalog import Catalog
    from opsloom.dsl.document import Document
    from opsloom.engine.registry import Registry
    from opsloom.model import RunRecord
    from opsloom.settings import Settings
    from opsloom.store.base import Store
    from opsloom.worker import Worker

#: What the host's ``start`` returns (an :class:`opsloom.app.RunHandle` for an App).
H = TypeVar("H", covariant=True)

log = logging.getLogger("opsloom.dsl")

ClientFactory = Callable[[], httpx.AsyncClient]


class DocumentVersionExistsError(OpsloomError):
    """A document version is already deployed with another text: versions never change."""

    code = "document_version_exists"


@dataclass(frozen=True, slots=True)
class DslOptions:
    """Options of the DSL runtime.

    Attributes:
        http_client: makes the HTTP client of ``call: http``/``openapi`` (tests point it at
            local fakes); each call gets a fresh client and closes it.
        secrets: what ``$secrets`` and authentication policies see, by name.
        expression_timeout: seconds an unbounded jq expression may run before its task fails.
        reload_seconds: how often :meth:`DslRuntime.watch` looks for new deployed versions.
        metadata: ``$runtime.metadata``.
        processes: which documents may run shell commands, scripts and containers.
        egress: the hosts outbound calls may and may not reach.
    """

    http_client: ClientFactory | None = None
    secrets: Mapping[str, Any] = field(default_factory=dict)
    expression_timeout: float = DEFAULT_TIMEOUT
    reload_seconds: float = 5.0
    metadata: Mapping[str, Any] = field(default_factory=dict)
    processes: ProcessPolicy = field(default_factory=ProcessPolicy)
    egress: EgressPolicy = field(default_factory=EgressPolicy)

    @classmethod
    def of(cls, settings: Settings) -> DslOptions:
        """The options ``settings`` give (secrets file, process policy)."""
        return cls(
            secrets=load_secrets(settings),
            processes=ProcessPolicy.of(
                settings.run_processes, settings.process_commands, settings.process_user
            ),
            egress=EgressPolicy.of(settings.egress_allow, settings.egress_deny),
        )


def load_secrets(settings: Settings | None) -> dict[str, Any]:
    """The secrets of ``OPSLOOM_SECRETS_FILE`` (a YAML or JSON mapping), if one is set."""
    path = None if settings is None else settings.secrets_file
    if path is None:
        return {}
    from ruamel.yaml import YAML

    try:
        data = YAML(typ="safe").load(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read the secrets file {path}: {exc}") from exc
    except Exception as exc:  # a parse error: never echo the file's content
        raise ConfigurationError(f"the secrets file {path} is not valid YAML or JSON") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigurationError(f"the secrets file {path} must map secret names to values")
    return dict(data)


class Host(Protocol[H]):
    """What the runtime needs of the application that runs its documents: an ``App``.

    A protocol rather than the App itself, so the DSL sits below the composition root.
    """

    @property
    def clock(self) -> Clock: ...

    @property
    def store(self) -> Store: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def worker(self) -> Worker | None: ...

    def workflow(
        self, *, name: str, version: str = ..., timeout: float | None = ..., priority: int = ...
    ) -> Callable[[Any], Any]: ...

    async def start(
        self,
        workflow: str,
        input: Any = None,
        *,
        run_id: str | None = None,
        priority: int | None = None,
        version: str | None = None,
        started_by: str | None = None,
    ) -> H: ...

    async def get_run(self, run_id: str) -> RunRecord: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def catalog(self) -> Catalog: ...

    def build_catalog(self, **options: Any) -> Catalog: ...


class DslRuntime(Generic[H]):
    """Runs Serverless Workflow documents on an :class:`~opsloom.app.App`.

    Args:
        app: the application whose registry, store and worker run the documents.
        options: see :class:`DslOptions`.
        catalog: the ``default`` catalog of functions (connectors, human tasks); by default
            the App's (:attr:`~opsloom.app.App.catalog`).
    """

    def __init__(
        self, app: Host[H], options: DslOptions | None = None, *, catalog: Catalog | None = None
    ) -> None:
        self.app = app
        self.options = options or DslOptions.of(app.settings)
        self.evaluator = Evaluator(timeout=self.options.expression_timeout)
        self.secrets: dict[str, Any] = dict(self.options.secrets)
        if catalog is None:
            # The App's catalog, unless HTTP calls must go elsewhere: then the same functions
            # are built anew around this runtime's client factory.
            if self.options.http_client is None:
                catalog = app.catalog
            else:
                catalog = app.build_catalog(client_factory=self.http_client)
        self.catalog: Catalog | None = catalog
        self._interpreters: dict[tuple[str, str], Interpreter] = {}
        self._digests: dict[tuple[str, str], str] = {}
        self._seen_until: float | None = None
        #: Schedules and triggers of registered documents not yet saved to the store.
        self._unsaved: dict[str, DocumentStarts] = {}
        self._described: dict[str, Any] | None = None

    @property
    def clock(self) -> Clock:
        return self.app.clock

    def http_client(self) -> httpx.AsyncClient:
        """A new HTTP client for one call (the caller closes it), under the egress policy."""
        if self.options.http_client is not None:
            return self.options.egress.guard(self.options.http_client())
        from opsloom.dsl.http import http_client

        return self.options.egress.guard(http_client())

    def describe(self) -> dict[str, Any]:
        """``$runtime`` (computed once: reading package metadata is slow)."""
        if self._described is None:
            from opsloom.dsl.http import user_agent

            self._described = {
                "name": "opsloom",
                "version": user_agent().split("/", 1)[1],
                "metadata": dict(self.options.metadata),
            }
        return self._described

    def features(self) -> Any:
        """What this machine supports (containers, script languages), for validation."""
        from opsloom.dsl.document import RuntimeFeatures

        return RuntimeFeatures.detect()

    def catalog_has(self, name: str, version: str) -> bool:
        return self.catalog is not None and self.catalog.has(name, version)

    # --- documents --------------------------------------------------------------------------

    def load(self, text: str, source: str = "<string>") -> Document:
        """Parse and validate a document for this runtime (``DocumentError`` lists problems)."""
        from opsloom.dsl.document import load_document

        return load_document(
            text,
            source,
            catalog_has=self.catalog_has,
            catalog_check=None if self.catalog is None else self.catalog.arguments_problems,
            runtime=self.features(),
        )

    def register(
        self, document: Document, text: str | None = None, *, deployed: bool = False
    ) -> str:
        """Register a document version as an engine workflow; its workflow name.

        Registering the same version again is a no-op; another text under a registered version
        raises :class:`DocumentVersionExistsError`. ``deployed``: it comes from the store's
        documents (deployed over the API or the CLI), which the process policy may refuse.
        """
        namespace = document.namespace or "default"
        name = f"{namespace}/{document.name}"
        version = document.version
        key = (name, version)
        digest = DocumentRecord.of(namespace, document.name, version, text or "", 0).digest
        if key in self._interpreters:
            known = self._digests.get(key)
            if text is not None and known is not None and known != digest:
                raise DocumentVersionExistsError(
                    f"{name} version {version} is already registered with another text"
                )
            return name
        interp = Interpreter(self, document.data, name)
        interp.deployed = deployed
        timeout = document.data.get("timeout")
        seconds = None
        if timeout is not None:
            # The interpreter raises the DSL timeout error itself; the engine deadline is the
            # backstop for a run that cannot reach its next task boundary.
            seconds = interp.timeout_of(timeout) + 30.0
        metadata = (document.data.get("document") or {}).get("metadata") or {}
        priority = int(metadata.get("priority", 0)) if isinstance(metadata, dict) else 0
        starts = DocumentStarts.of(document, namespace, version, priority, seconds)
        self.app.workflow(name=name, version=version, timeout=seconds, priority=priority)(
            interp.main
        )

        if _has_fork(document.data):
            # Branches of ``fork`` that are more than one step run as child runs of this.
            async def branch(ctx: Any, payload: Any) -> Any:
                from opsloom.dsl.fork import run_branch

                return await run_branch(interp, ctx, payload)

            self.app.workflow(name=interp.branch_workflow, version=version)(branch)
        self._interpreters[key] = interp
        if text is not None:
            self._digests[key] = digest
        self._unsaved[f"{name}:{version}"] = starts
        self._refresh_worker()
        return name

    async def save_starts(self) -> None:
        """Save the schedules and triggers of registered documents (their newest versions).

        A document whose newest version has no ``schedule`` any more gets its trigger removed
        and its schedule paused.
        """
        while self._unsaved:
            reference, starts = self._unsaved.popitem()
            try:
                await starts.save(self.app.store, self.app.clock.now())
            except OpsloomError:
                log.exception("cannot save the schedule or trigger of %s", reference)

    def _refresh_worker(self) -> None:
        worker = self.app.worker
        if worker is None:
            return
        # A worker claims only the kinds it knew when it started; tell it about new ones.
        worker.refresh_kinds()

    async def deploy(self, text: str, source: str = "<string>") -> tuple[DocumentRecord, bool]:
        """Validate, store and register a document version; ``(record, newly stored)``."""
        document = self.load(text, source)
        namespace = document.namespace or "default"
        # A schedule that cannot be saved is refused before the version is stored.
        DocumentStarts.of(document, namespace, document.version, 0, None)
        record = DocumentRecord.of(
            namespace, document.name, document.version, text, self.app.clock.now()
        )
        stored, created = await self.app.store.save_document(record)
        if not created and stored.digest != record.digest:
            raise DocumentVersionExistsError(
                f"{stored.workflow} version {stored.version} is already deployed with another "
                "text; deploy it under a new document.version"
            )
        self.register(document, stored.text, deployed=True)
        await self.save_starts()
        return stored, created

    async def load_deployed(self) -> int:
        """Register the deployed versions not registered yet; how many were new."""
        from opsloom.dsl.document import parse_document

        records = await self.app.store.list_documents(self._seen_until)
        count = 0
        for record in records:
            if (record.workflow, record.version) in self._interpreters:
                continue
            try:
                document = parse_document(record.text, f"{record.workflow}:{record.version}")
                self.register(document, record.text, deployed=True)
            except OpsloomError:
                log.exception("cannot register deployed document %s", record.workflow)
                continue
            count += 1
        if records:
            # Versions deployed in the same instant as the last one seen are read again.
            self._seen_until = max(r.deployed_at for r in records)
        await self.save_starts()
        return count

    async def watch(self) -> None:
        """Register newly deployed versions every ``reload_seconds``, until cancelled."""
        while True:
            try:
                await self.load_deployed()
            except OpsloomError:
                log.exception("reloading deployed documents failed")
            await asyncio.sleep(self.options.reload_seconds)

    async def resolve(self, reference: str) -> tuple[str, str | None]:
        """``namespace/name[:version]`` as a registered (workflow, version), loading if needed.

        Raises:
            WorkflowNotFoundError: no such document is registered or deployed.
        """
        name, _, version = reference.partition(":")
        if "/" not in name:
            raise InputError(f"a document is named namespace/name[:version], not {reference!r}")
        chosen = version or None
        if not self._known(name, chosen):
            await self.load_deployed()
        if not self._known(name, chosen):
            raise WorkflowNotFoundError(
                f"no deployed document {name}" + (f" version {chosen}" if chosen else "")
            )
        return name, chosen

    def _known(self, name: str, version: str | None) -> bool:
        if version is None:
            return any(key[0] == name for key in self._interpreters)
        return (name, version) in self._interpreters

    async def start(
        self,
        reference: str,
        input: Any = None,
        *,
        run_id: str | None = None,
        started_by: str | None = None,
    ) -> H:
        """Start a run of a document named ``namespace/name[:version]`` (latest by default)."""
        name, version = await self.resolve(reference)
        return await self.app.start(
            name, input, version=version, run_id=run_id, started_by=started_by
        )

    async def child_workflow(self, name: str, version: str | None) -> str:
        """The workflow name under which ``ctx.child`` runs that document version."""
        name, chosen = await self.resolve(f"{name}:{version}" if version else name)
        if chosen is None:
            return name
        alias = f"{name}:{chosen}"
        try:
            self.app.registry.workflow(alias)
        except WorkflowNotFoundError:
            # ``ctx.child`` starts the latest version of a name: an alias pins this one.
            interp = self._interpreters[(name, chosen)]
            self.app.workflow(name=alias, version=chosen)(interp.main)
            self._refresh_worker()
        return alias

    async def fault_of(self, run_id: str) -> dict[str, Any] | None:
        """The DSL error object a failed document run ended with, if it recorded one."""
        run = await self.app.get_run(run_id)
        stored = ((run.error or {}).get("data") or {}).get("error")
        return stored if isinstance(stored, dict) and "type" in stored else None

    async def close(self) -> None:
        """Stop helper processes of the expression evaluator."""
        with contextlib.suppress(Exception):
            await self.evaluator.close()


def _has_fork(node: Any) -> bool:
    """Whether a part of a document holds a ``fork`` with a branch that runs as a child run."""
    from opsloom.dsl.flow import is_leaf
    from opsloom.dsl.interpreter import entries, task_type

    if isinstance(node, dict):
        fork = node.get("fork")
        if isinstance(fork, dict):
            for _, branch in entries(fork.get("branches")):
                if not is_leaf(task_type(branch), branch):
                    return True
        return any(_has_fork(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_fork(value) for value in node)
    return False
