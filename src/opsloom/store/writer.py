"""Group commit: one writer connection per store, many operations per transaction.

Callers submit operations (see :mod:`opsloom.store.tx`) in the order they want them applied.
The writer takes everything queued, runs the operations one after another inside one
transaction and resolves all the callers' futures once it has committed: one flush to disk for
the whole batch, and writes of one run are applied in call order. While a batch commits, the
next one fills up, so the number of flushes stays flat as the load grows.

This module holds the queue and the outcomes; each dialect's writer (``dialects/*_writer.py``)
holds its connection, its transactions and what it does when an operation fails half-way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, NamedTuple

from opsloom.errors import (
    DeadLetterNotFoundError,
    DeadLetterStateError,
    InputError,
    LeaseLostError,
    RateLimitExceededError,
    RunNotFoundError,
    RunStateError,
    StoreError,
)
from opsloom.model.observer import Observer
from opsloom.store.tx import Op, T

log = logging.getLogger("opsloom.store")

#: Errors an operation raises on purpose, before it writes anything: passed to the caller as
#: they are, and the rest of the batch goes on.
CLEAN_ERRORS = (
    LeaseLostError,
    RunNotFoundError,
    RunStateError,
    InputError,
    DeadLetterNotFoundError,
    DeadLetterStateError,
    RateLimitExceededError,
)


class Pending(NamedTuple):
    """A submitted operation and what comes with it."""

    op: Op[Any]
    future: asyncio.Future[Any]
    wake: tuple[str, ...]
    one_statement: bool


#: What became of an operation: its future, whether it succeeded, its result or error.
Outcome = tuple["asyncio.Future[Any]", bool, Any]


def failure(exc: BaseException) -> StoreError:
    """The ``StoreError`` a caller gets for an unexpected database error."""
    wrapped = StoreError(f"store write failed: {type(exc).__name__}: {exc}")
    wrapped.__cause__ = exc
    return wrapped


class GroupCommit(ABC):
    """The queue of one writer: batches in call order, outcomes resolved after each commit."""

    def __init__(self, name: str, max_batch: int) -> None:
        self._name = name
        self._max_batch = max_batch
        self._pending: list[Pending] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.ops = 0
        #: Told the size and duration of every committed batch.
        self.observer = Observer()
        #: Told, after each commit, the wake-ups its committed operations asked for (for a
        #: dialect whose database cannot tell other processes itself).
        self.on_commit: Callable[[frozenset[str]], None] | None = None

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._serve(), name=self._name)

    def submit(
        self, op: Op[T], wake: tuple[str, ...] = (), *, one_statement: bool = False
    ) -> asyncio.Future[T]:
        """Queue ``op``; the future resolves once its transaction is committed.

        ``one_statement``: the op makes at most one change in one statement, so when it is
        alone in its batch it may run without BEGIN and COMMIT (the statement commits itself).
        """
        if self._loop is None or self._closing:
            raise StoreError("the store is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append(Pending(op, future, wake, one_statement))
        self._wake.set()
        return future

    @property
    def alive(self) -> bool:
        """The writer is serving: started, not stopped, and its loop has not died."""
        return self._task is not None and not self._task.done() and not self._closing

    async def stop(self) -> None:
        """Commit what is queued, then close the connection."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        self._task = None
        await self._close()

    async def _serve(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self.batches += 1
            self.ops += len(batch)
            started = time.perf_counter()
            try:
                outcomes = await self._commit(batch)
                self.observer.store_committed(len(batch), time.perf_counter() - started)
            except Exception as exc:  # the database itself failed (disk full, connection lost…)
                log.error("group commit failed: %r", exc)
                error = StoreError(f"store write failed: {type(exc).__name__}: {exc}")
                outcomes = [(pending.future, False, error) for pending in batch]
                await self._failed()
            if self.on_commit is not None:
                topics = frozenset(
                    topic
                    for pending, (_, ok, _) in zip(batch, outcomes, strict=True)
                    if ok
                    for topic in pending.wake
                )
                if topics:
                    self.on_commit(topics)
            for future, ok, value in outcomes:
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    @abstractmethod
    async def _commit(self, batch: list[Pending]) -> list[Outcome]:
        """Run and commit ``batch`` in one transaction; an outcome per operation, in order."""

    async def _failed(self) -> None:
        """A batch failed as a whole: get ready for the next one."""
        return None

    @abstractmethod
    async def _close(self) -> None:
        """Close the connection."""
