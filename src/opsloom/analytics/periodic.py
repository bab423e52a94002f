"""A background task that one process per database does every so often (under a singleton)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from opsloom.clock import Clock
from opsloom.model.cloudevent import CloudEvent, EventReceipt
from opsloom.store.base import Store
from opsloom.store.tx import stop_if_cancelled

#: How a background task stores the events it raises (the application's ``emit_events``).
Emit = Callable[[list[CloudEvent]], Awaitable[list[EventReceipt]]]


class Periodic(ABC):
    """Calls :meth:`run_once` every ``period`` seconds until stopped; a failure is logged."""

    #: Names the task and its log lines.
    name: str = "periodic"
    log: logging.Logger = logging.getLogger("opsloom")

    def __init__(self, period: float) -> None:
        self.period = period
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run_once(self) -> Any:
        """One round of the work."""

    def start(self) -> None:
        """Begin in the background."""
        self._task = asyncio.create_task(self._loop(), name=f"opsloom-{self.name}")

    async def stop(self) -> None:
        """Stop (a store write in flight is finished by the store)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                stop_if_cancelled()  # the driver may turn our cancellation into an error
                self.log.exception("%s failed", self.name)
            stop_if_cancelled()  # … or swallow it and return
            await asyncio.sleep(self.period)


class StoreTask(Periodic):
    """A periodic task of one process over the store, that one process per database does at a
    time: the holder of the singleton named after the task (see :meth:`hold`)."""

    def __init__(self, store: Store, clock: Clock, owner: str, period: float) -> None:
        super().__init__(period)
        self.store = store
        self.clock = clock
        self.owner = owner

    async def hold(self, now: float) -> bool:
        """Take or keep the task's singleton; a holder that stops renewing it gives it up
        within three periods."""
        return await self.store.hold_singleton(self.name, self.owner, now, 3 * self.period)
