"""The connector runtime of one app: connections, and every action call's guard rails.

A call (:meth:`ConnectorRuntime.call`) goes through, in order: the connection (resolved from
the store once, then cached: secrets opened, HTTP client pooled), input validation, the
connection's rate limit, its circuit breaker, the action, and redaction of what comes back.
None of these costs a store round trip once the connection is cached: breaker transitions are
written in the background, and other workers' transitions are read on an interval
(:meth:`ConnectorRuntime.refresh`).

Workflow code calls actions as steps (``await ctx.step(slack.post_message, connection=…)``);
the action finds this runtime through :func:`active_runtime`, which the app sets when it opens
(its worker's tasks inherit it).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from opsloom.connectors.breaker import Breaker, BreakerSnapshot, BreakerState, Transition
from opsloom.connectors.event import breaker_event, iso, record_of, snapshot_of
from opsloom.connectors.ratelimit import TokenBucket
from opsloom.connectors.registry import ConnectorRegistry
from opsloom.connectors.sdk import Action, ActionContext, ConnectionSettings, Connector
from opsloom.connectors.secret import SecretBox
from opsloom.connectors.transport import Transport, make_client
from opsloom.engine.context import current_step
from opsloom.errors import (
    CircuitOpenError,
    ConfigurationError,
    ConnectionNotFoundError,
    ConnectorError,
    ConnectorPermanentError,
    InputError,
    RateLimitedError,
)
from opsloom.model.observer import Observer
from opsloom.model.redaction import Redactor
from opsloom.store.connection import ConnectionRecord
from opsloom.store.tx import stop_if_cancelled

if TYPE_CHECKING:
    from opsloom.clock import Clock
    from opsloom.settings import Settings
    from opsloom.store.base import Store

log = logging.getLogger("opsloom.connectors")

Emit = Callable[[dict[str, Any]], Awaitable[Any]]

_active: contextvars.ContextVar[ConnectorRuntime | None] = contextvars.ContextVar(
    "opsloom_connectors", default=None
)


def active_runtime() -> ConnectorRuntime:
    """The runtime of the app whose worker runs this code."""
    runtime = _active.get()
    if runtime is None:
        raise ConfigurationError(
            "connector actions run inside an open App (async with app: …) or through "
            "ConnectorRuntime.call; none is active here"
        )
    return runtime


@dataclass(slots=True)
class _Live:
    """A connection ready for calls."""

    record: ConnectionRecord
    connector: Connector[Any]
    settings: ConnectionSettings
    redactor: Redactor
    transport: Transport | None
    client: httpx.AsyncClient | None
    bucket: TokenBucket | None


class ConnectorRuntime:
    """Connections, breakers and calls of one app.

    Args:
        registry: the connectors (default: those of the ``opsloom.connectors`` entry points,
            found on first use).
        clock: the time source of breakers, rate limits and ``Retry-After`` dates.
        secret_box: seals connection secrets (default: built from the settings on first use,
            so an app that never stores a secret never creates a key file).
        inline_wait: longest rate-limit wait spent in the call itself; a longer one fails the
            attempt with a ``retry_after`` for the engine's durable retry.
        settings: the app's settings (secret key, imported connectors folder); default: read
            from the environment.
    """

    def __init__(
        self,
        registry: ConnectorRegistry | None = None,
        *,
        clock: Clock,
        secret_box: SecretBox | None = None,
        inline_wait: float = 1.0,
        settings: Callable[[], Settings] | None = None,
    ) -> None:
        self._registry = registry
        self.clock = clock
        self._box = secret_box
        self._settings = settings
        self.inline_wait = inline_wait
        self._store: Store | None = None
        self._emit: Emit | None = None
        self._live: dict[str, _Live] = {}
        self._breakers: dict[str, Breaker] = {}
        self._stored: dict[str, BreakerSnapshot] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._sync: asyncio.Task[None] | None = None
        self._token: contextvars.Token[ConnectorRuntime | None] | None = None
        #: Hears every call (metrics); the app sets its own.
        self.observer = Observer()

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def registry(self) -> ConnectorRegistry:
        """The connectors this runtime knows."""
        if self._registry is None:
            self._registry = ConnectorRegistry.discovered(self.settings.connectors_dir)
        return self._registry

    @property
    def settings(self) -> Settings:
        """The app's settings (read from the environment when none were given)."""
        if self._settings is not None:
            return self._settings()
        from opsloom.settings import load_settings

        return load_settings()

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the connector runtime is not open")
        return self._store

    @property
    def box(self) -> SecretBox:
        """The secret box (made from ``OPSLOOM_SECRET_KEY`` / its key file on first use)."""
        if self._box is None:
            settings = self.settings
            key = settings.secret_key.get_secret_value() if settings.secret_key else None
            self._box = SecretBox.from_settings(key, settings.secret_key_file)
        return self._box

    async def open(
        self, store: Store, emit: Emit | None = None, *, sync_seconds: float | None = 2.0
    ) -> None:
        """Bind to a store, load the stored breaker states and make this runtime active.

        Args:
            store: where connections and breaker states live.
            emit: stores a CloudEvent (JSON form): breaker transitions are announced with it.
            sync_seconds: how often other workers' breaker transitions are read (``None``:
                only when :meth:`refresh` is called).
        """
        self._store = store
        self._emit = emit
        await self.refresh()
        self._token = _active.set(self)
        if sync_seconds is not None:
            self._sync = asyncio.create_task(self._sync_loop(sync_seconds), name="opsloom-breakers")

    async def close(self) -> None:
        """Stop syncing, finish background writes, close the HTTP clients."""
        if self._sync is not None:
            self._sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync
            self._sync = None
        await self.flush()
        for name in list(self._live):
            await self._forget(name)
        if self._token is not None:
            with contextlib.suppress(ValueError):
                _active.reset(self._token)
            self._token = None
        self._store = None

    def activate(self) -> contextvars.Token[ConnectorRuntime | None]:
        """Make this runtime the one actions use in the current context (and tasks it starts)."""
        return _active.set(self)

    async def flush(self) -> None:
        """Wait for the breaker writes and events started so far."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _sync_loop(self, seconds: float) -> None:
        while True:
            stop_if_cancelled()
            await asyncio.sleep(seconds)
            try:
                await self.refresh()
            except Exception:  # the store may be restarting: the next round tries again
                stop_if_cancelled()
                log.warning("breaker sync failed", exc_info=True, extra={"event": "breaker_sync"})

    async def refresh(self) -> None:
        """Adopt breaker transitions other workers stored; drop connections changed elsewhere."""
        store = self.store
        for rec in await store.list_breakers():
            snap = snapshot_of(rec)
            self._stored[rec.connection] = snap
            breaker = self._breakers.get(rec.connection)
            if breaker is not None and breaker.adopt(snap):
                log.info(
                    "breaker state adopted",
                    extra={
                        "event": "breaker_adopted",
                        "connection": rec.connection,
                        "state": str(snap.state),
                    },
                )
        if self._live:
            current = {rec.name: rec.updated_at for rec in await store.list_connections()}
            for name, live in list(self._live.items()):
                if current.get(name) != live.record.updated_at:
                    await self._forget(name)

    # --- connections ------------------------------------------------------------------------

    async def add_connection(
        self, name: str, connector: str, values: Mapping[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """Store a connection (``replace``: update an existing one, merging ``values`` in).

        Raises:
            InputError: the name is taken (without ``replace``) or not a valid name.
            ConfigurationError: the settings are invalid for the connector (naming the field).
        """
        if not name or len(name) > 100 or not all(ch.isalnum() or ch in "-_." for ch in name):
            raise InputError(f"invalid connection name {name!r} (letters, digits, - _ .)")
        kind = self.registry.connector(connector)
        existing = await self.store.get_connection(name)
        now = self.clock.now()
        merged = dict(values)
        if existing is not None:
            if not replace:
                raise InputError(f"connection {name!r} exists (use replace to change it)")
            if existing.connector != connector:
                raise InputError(
                    f"connection {name!r} is a {existing.connector} connection, not {connector}"
                )
            merged = {
                **existing.settings,
                **self.box.open(existing.secrets, what=f"connection {name!r}"),
                **values,
            }
        try:
            settings = kind.parse_settings(merged, where=f"connection {name!r} ({connector})")
        except ConfigurationError as exc:
            raise InputError(str(exc)) from None
        record = ConnectionRecord(
            name=name,
            connector=connector,
            settings=settings.plain_values(),
            secrets=self.box.seal(settings.secret_values()),
            created_at=existing.created_at if existing is not None else now,
            updated_at=now,
        )
        await self.store.save_connection(record)
        await self._forget(name)
        return self.describe(record)

    async def remove_connection(self, name: str) -> bool:
        """Delete a connection and its breaker; whether it existed."""
        await self._forget(name)
        self._breakers.pop(name, None)
        self._stored.pop(name, None)
        return await self.store.delete_connection(name)

    async def connections(self) -> list[dict[str, Any]]:
        """Every connection as :meth:`describe` shows it."""
        return [self.describe(rec) for rec in await self.store.list_connections()]

    async def connection(self, name: str) -> dict[str, Any]:
        """One connection as :meth:`describe` shows it."""
        return self.describe(await self._record(name))

    def describe(self, rec: ConnectionRecord) -> dict[str, Any]:
        """A connection as the API and CLI show it: settings, names of secrets, breaker.

        Secret values never appear; only which secret fields are set.
        """
        secrets: list[str] = []
        # Only the names: which secret fields are set (a wrong key shows none, not an error).
        with contextlib.suppress(ConfigurationError):
            secrets = sorted(self.box.open(rec.secrets, what=f"connection {rec.name!r}"))
        return {
            "name": rec.name,
            "connector": rec.connector,
            "settings": rec.settings,
            "secrets": secrets,
            "created_at": iso(rec.created_at),
            "updated_at": iso(rec.updated_at),
            "breaker": self.breaker(rec.name),
        }

    def breaker(self, name: str) -> dict[str, Any]:
        """The breaker state of a connection, as JSON (closed when it never moved)."""
        live = self._breakers.get(name)
        snap = live.snapshot() if live is not None else self._stored.get(name)
        if snap is None:
            return {"state": "closed", "failures": 0, "opened_at": None, "reopen_at": None}
        return {
            "state": str(snap.state),
            "failures": snap.failures,
            "opened_at": iso(snap.opened_at),
            "reopen_at": iso(snap.reopen_at),
        }

    async def test_connection(self, name: str) -> str:
        """Run the connector's connection check; a line saying what it found."""
        live = await self._resolve(name)
        check = live.connector.check
        if check is None:
            return f"{live.connector.title} has no connection check; settings are valid"
        ctx = self._context(name, live, None)
        try:
            return await check(ctx)
        except ConnectorError as exc:
            exc.args = (live.redactor.text(str(exc)),)
            raise exc from None

    async def _record(self, name: str) -> ConnectionRecord:
        rec = await self.store.get_connection(name)
        if rec is None:
            raise ConnectionNotFoundError(f"no connection {name!r}")
        return rec

    async def _resolve(self, name: str) -> _Live:
        live = self._live.get(name)
        if live is not None:
            return live
        rec = await self._record(name)
        connector = self.registry.connector(rec.connector)
        secrets = self.box.open(rec.secrets, what=f"connection {name!r}")
        settings = connector.parse_settings(
            {**rec.settings, **secrets}, where=f"connection {name!r}"
        )
        redactor = Redactor(secrets.values())
        client = transport = None
        if connector.endpoint is not None:
            endpoint = connector.endpoint(settings)
            redactor = redactor.with_values(endpoint.redact)
            client = make_client(
                endpoint.base_url,
                endpoint.headers,
                settings.timeout,
                verify=endpoint.verify,
                auth=endpoint.auth,
            )
            transport = Transport(client, redactor, self.clock.now, name)
        bucket = None if settings.rate_limit is None else TokenBucket(settings.rate_limit)
        live = _Live(rec, connector, settings, redactor, transport, client, bucket)
        if name in self._live:  # another call resolved it meanwhile: keep one client
            if client is not None:
                await client.aclose()
            return self._live[name]
        self._live[name] = live
        breaker = self._breakers.get(name)
        if breaker is None or breaker.policy != settings.breaker:
            breaker = Breaker(name, settings.breaker)
            stored = self._stored.get(name)
            if stored is not None:
                breaker.adopt(stored)
            self._breakers[name] = breaker
        return live

    async def _forget(self, name: str) -> None:
        live = self._live.pop(name, None)
        if live is None:
            return
        if live.client is not None:
            await live.client.aclose()
        try:
            await live.settings.aclose()
        except Exception:  # a connector's cleanup must not stop the others'
            log.exception("closing connection %s failed", name, extra={"connection": name})

    # --- calls --------------------------------------------------------------------------------

    async def call(
        self,
        action: Action[Any, Any],
        connection: str,
        fields: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Run ``action`` on ``connection`` with input ``fields``; its output as JSON.

        Inside a step the idempotency key is the step's (``run_id:seq``) unless one is given.

        Raises:
            ConnectionNotFoundError: no such connection.
            ConnectorPermanentError: bad input, a connection of another connector, or a
                failure retrying cannot fix.
            ConnectorRetryableError: a transient failure (``RateLimitedError``,
                ``CircuitOpenError`` included), with ``retry_after`` when known.
        """
        live = self._live.get(connection) or await self._resolve(connection)
        if live.connector is not action.connector:
            raise ConnectorPermanentError(
                f"connection {connection!r} is a {live.connector.name} connection; "
                f"{action.id} needs a {action.connector.name} one"
            )
        data = action.parse(fields)
        now = self.clock.now()
        if live.bucket is not None:
            wait, granted = live.bucket.take(now, self.inline_wait)
            if not granted:
                self._heard(action, connection, "rate_limited", None)
                raise RateLimitedError(
                    f"connection {connection!r} is over its rate limit", retry_after=wait
                )
            if wait > 0:
                await self.clock.sleep(wait)
                now = self.clock.now()
        breaker = self._breakers[connection]
        closed_for, change = breaker.allow(now)
        if change is not None:
            self._announce(change, breaker)
        if closed_for is not None:
            self._heard(action, connection, "circuit_open", None)
            raise CircuitOpenError(
                f"circuit breaker of connection {connection!r} is open; "
                f"next trial in {closed_for:.1f}s",
                retry_after=closed_for,
            )
        if idempotency_key is None:
            with contextlib.suppress(RuntimeError):
                idempotency_key = current_step().idempotency_key
        began = time.perf_counter()
        try:
            result = await action.fn(self._context(connection, live, idempotency_key), data)
        except ConnectorError as exc:
            healthy = not exc.retryable or isinstance(exc, RateLimitedError)
            self._outcome(breaker, healthy)
            outcome = "rate_limited" if isinstance(exc, RateLimitedError) else None
            outcome = outcome or ("retryable" if exc.retryable else "permanent")
            self._heard(action, connection, outcome, time.perf_counter() - began)
            exc.args = (live.redactor.text(str(exc)),)
            raise exc from None
        except Exception as exc:
            # A fault in the connector's own code says nothing about the endpoint.
            self._outcome(breaker, None)
            self._heard(action, connection, "fault", time.perf_counter() - began)
            raise ConnectorPermanentError(
                f"{action.id} failed: {type(exc).__name__}: {live.redactor.text(str(exc))}"
            ) from None
        self._outcome(breaker, True)
        self._heard(action, connection, "ok", time.perf_counter() - began)
        if not isinstance(result, action.output):
            result = action.output.model_validate(result)
        value: dict[str, Any] = result.model_dump(mode="json")
        return live.redactor.value(value) if live.redactor else value

    def _heard(
        self, action: Action[Any, Any], connection: str, outcome: str, seconds: float | None
    ) -> None:
        self.observer.connector_called(
            action.connector.name, action.id, connection, outcome, seconds
        )

    def _context(self, name: str, live: _Live, key: str | None) -> ActionContext[Any]:
        return ActionContext(
            name, live.settings, live.transport, live.redactor, key, self.clock.now
        )

    def _outcome(self, breaker: Breaker, ok: bool | None) -> None:
        if ok is None:
            breaker.trials = max(0, breaker.trials - 1)
            return
        change = breaker.record(ok, self.clock.now())
        if change is not None:
            self._announce(change, breaker)

    def _announce(self, change: Transition, breaker: Breaker) -> None:
        """Store the new state and its event in the background (never on the call's path)."""
        log.warning(
            "circuit breaker %s",
            change.after,
            extra={
                "event": "breaker_changed",
                "connection": change.connection,
                "state": str(change.after),
                "reason": change.reason,
            },
        )
        task = asyncio.create_task(self._persist(change, breaker.snapshot()))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _persist(self, change: Transition, snap: BreakerSnapshot) -> None:
        try:
            if self._store is not None:
                await self._store.save_breaker(record_of(snap))
            if self._emit is not None and change.after in (BreakerState.OPEN, BreakerState.CLOSED):
                await self._emit(breaker_event(change, snap))
        except Exception:
            log.warning(
                "could not store a breaker transition",
                exc_info=True,
                extra={"event": "breaker_store_failed", "connection": change.connection},
            )
