"""A store whose writes are slow or fail, as a slow disk or a lost database would make them.

:class:`WriteGate` sits on the store's one write entry point (every aggregate writes through
it), so the real writer still applies the writes in the order they were made; the gate only
holds them back or refuses them. It stands in for the disk and the database, not for the
engine: what the engine does about a slow or failed write is what the tests check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from opsloom.errors import StoreError
from opsloom.model import StepRecord
from opsloom.store import Store

_Write = tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]


class WriteGate:
    """Holds every write of a store back by ``delay`` seconds, in order, or refuses them all
    with ``StoreError`` while ``broken``.

    :meth:`hold_from` chooses a history entry: its write and every write after it wait in the
    gate until :meth:`release` lets them through, or :meth:`fail_held` refuses them (the
    database went away while they waited; the gate stays ``broken`` until told otherwise).
    """

    def __init__(self, store: Store, delay: float = 0.0) -> None:
        self.real: Callable[..., Awaitable[Any]] = store.write  # type: ignore[attr-defined]
        self.delay = delay
        self.broken = False
        self.refused = 0
        self.holding = asyncio.Event()  # set once a chosen write is held
        self._chosen: Callable[[StepRecord], bool] | None = None
        self._held: list[_Write] | None = None
        self._entry: StepRecord | None = None  # the history entry being written, if any
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._forwarder = asyncio.ensure_future(self._forward())
        self._store = store
        self._record_step = store.record_step
        store.write = self.write  # type: ignore[attr-defined,method-assign]
        store.record_step = self._record  # type: ignore[method-assign]

    def hold_from(self, chosen: Callable[[StepRecord], bool]) -> None:
        """Hold the first write of an entry ``chosen`` accepts, and every write after it."""
        self._chosen = chosen

    def release(self) -> None:
        """Let the held writes through, in order; later writes pass again."""
        held, self._held = self._held or [], None
        for write in held:
            self._queue.put_nowait(write)

    def fail_held(self) -> None:
        """Refuse the held writes and, from now on, every new one (until ``broken`` is unset)."""
        held, self._held = self._held or [], None
        self.broken = True
        for _, _, future in held:
            self._refuse(future)

    def _record(self, fence: Any, step: StepRecord) -> Awaitable[None]:
        # The store's record_step calls ``write`` at once: note which entry that write is.
        self._entry = step
        try:
            return self._record_step(fence, step)
        finally:
            self._entry = None

    def write(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry, chosen = self._entry, self._chosen
        if self.broken:
            self._refuse(future)
        elif self._held is not None:
            self._held.append((args, kwargs, future))
        elif entry is not None and chosen is not None and chosen(entry):
            self._chosen = None
            self._held = [(args, kwargs, future)]
            self.holding.set()
        else:
            self._queue.put_nowait((args, kwargs, future))
        return future

    def _refuse(self, future: asyncio.Future[Any]) -> None:
        self.refused += 1
        future.set_exception(StoreError("the database is unreachable (test outage)"))

    async def _forward(self) -> None:
        while True:
            args, kwargs, future = await self._queue.get()
            if self.delay:
                await asyncio.sleep(self.delay)
            # Handed to the real writer in the order they were made; not awaited here, so
            # the writer still batches them.
            self._pass(args, kwargs, future)

    def _pass(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], out: asyncio.Future[Any]
    ) -> None:
        pending = asyncio.ensure_future(self.real(*args, **kwargs))
        pending.add_done_callback(lambda done: _chain(done, out))

    def close(self) -> None:
        """Take the gate away: writes go straight to the store again, queued ones at once
        (held ones are refused: nothing let them through)."""
        self._forwarder.cancel()
        del self._store.write  # type: ignore[attr-defined]
        del self._store.record_step  # type: ignore[attr-defined]
        for _, _, future in self._held or []:
            if not future.done():
                future.set_exception(StoreError("the gate closed on a held write"))
        self._held = None
        while not self._queue.empty():
            self._pass(*self._queue.get_nowait())


def _chain(done: asyncio.Future[Any], out: asyncio.Future[Any]) -> None:
    if out.done():
        return
    if done.cancelled():
        out.cancel()
    elif done.exception() is not None:
        out.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        out.set_result(done.result())
