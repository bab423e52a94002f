"""Live pages over server-sent events, computed once per view and tick for all who watch it.

A live page (the runs list with its filters, one run) subscribes to a *topic*: the key of what
it shows. Each topic has one task that, once per ``tick`` while anyone watches, renders the
fragment (the store queries of that view, once) and, when the fragment changed, hands the same
bytes to every subscriber. A hundred browsers on the runs list cost one query per tick, not a
hundred; a view nobody watches costs nothing, and its task ends with its last subscriber.

A stream sends a comment line every ``heartbeat`` seconds while nothing changes, so that a
vanished client is noticed by the failing write. It ends after ``max_age`` seconds: the browser
reconnects by itself, and that new request checks the session again (a revoked token or an
expired session stops receiving within ``max_age``); a reconnecting subscriber gets the view's
current state at once, so nothing is missed in between.

:meth:`Hub.close` ends every stream and topic task at once: ``opsloom up`` calls it when it
stops, before it waits for open requests to end (an open stream would otherwise hold the
shutdown until its grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from starlette.responses import StreamingResponse

from opsloom.errors import OverloadedError

log = logging.getLogger(__name__)

#: One server-sent event: its name (what the page listens for) and its data (HTML).
Message = tuple[str, str]
#: What a topic computes on each tick; None keeps what was sent last.
Render = Callable[[], Awaitable[list[Message] | None]]


def encode(messages: list[Message]) -> bytes:
    """The wire form of ``messages`` (``event:`` and one ``data:`` line per line of data)."""
    parts = []
    for name, data in messages:
        lines = "".join(f"data: {line}\n" for line in (data.splitlines() or [""]))
        parts.append(f"event: {name}\n{lines}\n")
    return "".join(parts).encode()


@dataclass(eq=False)
class _Topic:
    render: Render
    subscribers: int = 0
    version: int = 0
    payload: bytes = b""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, payload: bytes) -> None:
        self.payload = payload
        self.version += 1
        woken, self.changed = self.changed, asyncio.Event()
        woken.set()


class Hub:
    """The live topics of one UI and their subscribers (see the module docstring)."""

    def __init__(
        self,
        tick: float = 1.0,
        heartbeat: float = 15.0,
        max_topics: int = 256,
        max_age: float = 300.0,
    ) -> None:
        self.tick = tick
        self.heartbeat = heartbeat
        self.max_age = max_age
        self.max_topics = max_topics
        #: How many times a topic was rendered (one per topic and tick): for tests and figures.
        self.renders = 0
        self._topics: dict[Hashable, _Topic] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._closing: asyncio.Event | None = None

    @property
    def topics(self) -> int:
        """How many views are watched now."""
        return len(self._topics)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End every stream and topic task (the server is stopping); later streams end at once."""
        self._closed = True
        if self._closing is not None:
            self._closing.set()
        for topic in self._topics.values():
            topic.changed.set()

    def admit(self, key: Hashable) -> None:
        """Refuse (``OverloadedError``) a new view when ``max_topics`` views are watched."""
        if key not in self._topics and len(self._topics) >= self.max_topics:
            raise OverloadedError(
                f"more than {self.max_topics} different live views are watched; reload later"
            )

    async def stream(self, key: Hashable, render: Render) -> AsyncIterator[bytes]:
        """The events of topic ``key`` for one subscriber, until the hub closes.

        ``render`` is used only if this subscriber opens the topic; subscribers of the same key
        share the first one's. The first message comes with the topic's next render.
        """
        if self._closed:
            return
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = _Topic(render)
            task = asyncio.create_task(self._run(key, topic), name=f"opsloom-live-{key!r}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        topic.subscribers += 1
        seen = 0
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.max_age
        try:
            yield b": live\n\n"
            while not self._closed and loop.time() < ends:
                if topic.version != seen:
                    seen = topic.version
                    yield topic.payload
                    continue
                wait = min(self.heartbeat, max(ends - loop.time(), 0.0))
                try:
                    await asyncio.wait_for(topic.changed.wait(), wait)
                except TimeoutError:
                    yield b": keep-alive\n\n"
        finally:
            topic.subscribers -= 1

    async def _run(self, key: Hashable, topic: _Topic) -> None:
        if self._closing is None:
            self._closing = asyncio.Event()
        last: list[Message] | None = None
        try:
            while topic.subscribers > 0 and not self._closed:
                self.renders += 1
                try:
                    messages = await topic.render()
                except Exception:  # a failing view keeps its last state; its page still answers
                    log.warning("live view failed", extra={"event": "live_failed"}, exc_info=True)
                    messages = None
                if messages is not None and messages != last:
                    last = messages
                    topic.publish(encode(messages))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self.tick)
        finally:
            if self._topics.get(key) is topic:
                del self._topics[key]
            topic.changed.set()

    async def wait_closed(self) -> None:
        """Wait for the topic tasks to end (after :meth:`close`)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def event_stream(hub: Hub, key: Hashable, render: Render) -> StreamingResponse:
    """The ``text/event-stream`` response of one subscriber of topic ``key``."""
    hub.admit(key)
    return StreamingResponse(
        hub.stream(key, render),
        media_type="text/event-stream",
        # No proxy may hold events back; the stream is never cached.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
