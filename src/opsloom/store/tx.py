"""The transaction seam: every store operation is one ``async def`` against a :class:`Tx`.

An operation is written once, with ``?`` placeholders, and runs on both dialects: the SQLite
store runs it inside its group-commit writer's ``BEGIN IMMEDIATE`` transaction (its ``Tx``
calls sqlite3 directly and never suspends), the PostgreSQL store awaits psycopg inside its
writer's transaction. The few places where the dialects differ are hooks of the ``Tx``:
lists (:meth:`Tx.among`), row locks (:meth:`Tx.lock`), advisory locks (:meth:`Tx.lock_key`) and
planner hints (:meth:`Tx.unindexed`). Wake-ups are named when the operation is submitted
(:meth:`Transactions.write`).

A new operation reads::

    async def rename(tx: Tx) -> bool:
        return await tx.execute("UPDATE users SET name = ? WHERE id = ?", (name, uid)) == 1

    renamed: bool = await self.write(rename)
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, Literal, Protocol, TypeVar

T = TypeVar("T")
Row = tuple[Any, ...]
Params = Sequence[Any]
Dialect = Literal["sqlite", "postgres"]

#: Wake-ups sent with a write (PostgreSQL NOTIFY, in the write's transaction): a job may be
#: ready; a run finished (which may also unblock its parent or a run waiting for its slot).
WORK = ("work",)
DONE = ("done", "work")
#: A run was paused or asked to cancel: workers holding it should look now, not at their next
#: heartbeat.
CONTROL = ("control",)


class Rows(Protocol):
    """The rows of a statement sent ahead (:meth:`Tx.later`), read when needed."""

    async def rows(self) -> list[Row]:
        """Every row of the statement."""
        ...


class Later:
    """What an operation returns when the answer to its statement may wait: its writer sends
    the statements of the batch's other operations first, then calls ``check`` (before it
    commits), which raises what the operation would have raised or returns its result.
    PostgreSQL then gets many operations' statements in one round trip instead of one round
    trip each.

    Only returned when :attr:`Tx.pipelined`; the operation's caller gets what ``check``
    returned.
    """

    __slots__ = ("check",)

    def __init__(self, check: Callable[[], Awaitable[Any]]) -> None:
        self.check = check


class Tx(Protocol):
    """One transaction (or, for reads, one connection) as operations see it."""

    #: The dialect, for the rare statement that has no common form.
    dialect: Dialect

    @property
    def pipelined(self) -> bool:
        """Whether statements are pipelined, so that an operation may return a :class:`Later`."""
        ...

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of ``sql``, or None."""
        ...

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of ``sql``."""
        ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run ``sql``; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run ``sql`` once per row of parameters."""
        ...

    async def send(self, sql: str, params: Params = ()) -> None:
        """Run ``sql`` whose result nobody reads; PostgreSQL may send it with the next
        statement (one round trip for both), so its error may show there instead."""
        ...

    async def later(self, sql: str, params: Params = ()) -> Rows:
        """Run ``sql`` and read its rows later: PostgreSQL sends statements run this way one
        after another in one round trip, at the first read."""
        ...

    def among(self, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """A condition ``column`` is one of ``values``, and its parameters (any length)."""
        ...

    def lock(self, clause: str) -> str:
        """``clause`` (``FOR UPDATE``, ``FOR SHARE``, ``… SKIP LOCKED``) where rows are locked.

        SQLite has one writer at a time (``BEGIN IMMEDIATE``): nothing to lock, an empty string.
        """
        ...

    async def lock_key(self, key: str) -> None:
        """Serialise transactions on ``key`` until this one ends (nothing to do on SQLite)."""
        ...

    def unindexed(self, column: str) -> str:
        """``column`` in a form the planner will not walk an index for (SQLite's ``+column``)."""
        ...


#: A store operation: a coroutine function of one transaction.
Op = Callable[[Tx], Coroutine[Any, Any, T]]


class Transactions(ABC):
    """What the operations of every aggregate need from a dialect: typed reads and writes."""

    @abstractmethod
    def write(
        self, op: Op[T], wake: tuple[str, ...] = (), *, one_statement: bool = False
    ) -> Awaitable[T]:
        """Queue ``op`` for the group-commit writer, in call order; its result once committed.

        ``wake``: wake-ups to send when the write commits (``WORK``, ``DONE``).
        ``one_statement``: ``op`` changes at most one row in one statement, so alone in its
        batch it may skip BEGIN and COMMIT.
        """

    @abstractmethod
    async def read(self, fn: Op[T], *, snapshot: bool = False) -> T:
        """Run ``fn`` on a reading connection (``snapshot``: inside one transaction)."""


def stop_if_cancelled() -> None:
    """Raise ``CancelledError`` when the current task is being cancelled.

    A database driver may answer the cancellation of a query it was running by cancelling the
    query and returning, or by an error of its own (psycopg's ``QueryCanceled``), so a loop
    that logs store errors and goes on would never stop: closing an app on PostgreSQL hung
    that way. Loops call this where they catch a store error.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()
