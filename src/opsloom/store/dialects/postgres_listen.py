"""Wake-ups between processes sharing one PostgreSQL: LISTEN/NOTIFY.

:class:`Listener` keeps one connection in ``LISTEN`` on the schema's channel and on a channel
of its own (``private``). Writers add a ``NOTIFY`` (payload ``work``, ``done`` or ``control``)
to the transactions that make a job ready, finish a run, or pause or cancel one; PostgreSQL
delivers it after the commit, so an idle worker claims new work within a round trip instead of
at its next poll, and a worker holding a paused run hears of it without waiting for its next
heartbeat. ``done`` and ``control`` go to the shared channel (anyone may await a run, and every
worker may hold the run paused or cancelled); ``work`` goes to the private channels of as many
idle workers as the write made jobs ready (see ``idle_workers``), and to the shared channel
only when no worker said it was idle. A lost connection is reopened with backoff, and every
listener is then called once because notifications sent meanwhile are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection, sql

from opsloom.store.base import WakeTopic

log = logging.getLogger("opsloom.store")

Conn = AsyncConnection[Any]
Connect = Callable[[], Awaitable[Conn]]

#: How long the listening connection may stay silent before it is checked with a query: a
#: connection cut by the network (no FIN) is otherwise only noticed by the kernel much later.
_IDLE_CHECK_SECONDS = 15.0
_MAX_BACKOFF = 5.0


def channel_name(schema: str) -> str:
    """The notification channel of a schema (at most 63 bytes, PostgreSQL's limit)."""
    return f"opsloom.{schema}"[:63]


def private_channel() -> str:
    """A channel only this store listens on (unique: it does not depend on the schema)."""
    return f"opsloom.w.{secrets.token_hex(8)}"


class Listener:
    """One ``LISTEN`` connection per store, calling back on its wake-ups (``work``, ``done``,
    ``control``)."""

    def __init__(self, connect: Connect, channel: str, private: str | None = None) -> None:
        self._connect = connect
        self._channel = channel
        self._private = private
        self._callbacks: dict[str, list[Callable[[], None]]] = {
            "work": [],
            "done": [],
            "control": [],
        }
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._stopping = False

    def add(self, topic: WakeTopic, callback: Callable[[], None]) -> None:
        self._callbacks[topic].append(callback)
        if self._task is None:
            self._task = asyncio.create_task(self._serve(), name="opsloom-postgres-listen")

    @property
    def listening(self) -> bool:
        """The connection listens now: a notification sent from now on is heard."""
        return self._listening.is_set()

    async def wait_listening(self, timeout: float = 10.0) -> None:
        """Until the connection listens (tests: a NOTIFY sent before that is not heard)."""
        await asyncio.wait_for(self._listening.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            # The flag ends the loop even if a cancellation is lost on its way through the
            # driver; the wait is bounded so that closing a store never hangs on it.
            self._stopping = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            self._task = None

    def _call(self, topics: tuple[str, ...]) -> None:
        for topic in topics:
            for callback in self._callbacks.get(topic, ()):
                try:
                    callback()
                except Exception:  # a listener's bug must not stop the others' wake-ups
                    log.exception("a wake-up listener failed")

    async def _serve(self) -> None:
        backoff = 0.1
        first = True
        while not self._stopping:
            conn: Conn | None = None
            try:
                conn = await self._connect()
                for channel in (self._channel, self._private):
                    if channel is not None:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                self._listening.set()
                backoff = 0.1
                if not first:
                    # Anything sent while the connection was down was not delivered.
                    self._call(("work", "done", "control"))
                first = False
                await self._receive(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._listening.clear()
                log.warning("wake-up connection lost, reconnecting in %.1fs: %r", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def _receive(self, conn: Conn) -> None:
        while not self._stopping:
            heard = False
            async for notify in conn.notifies(timeout=_IDLE_CHECK_SECONDS):
                heard = True
                self._call((notify.payload,))
            if not heard:
                await conn.execute("SELECT 1")  # raises when the connection is gone
