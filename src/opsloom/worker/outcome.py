"""Waiting for runs to end: what ``App.result`` and ``RunHandle.result`` rest on.

Runs finished by this process's worker wake their waiters directly (:meth:`Outcomes.finished`).
Runs that other processes finish are noticed by one query for all waiters per wake-up: a store
that hears other processes (PostgreSQL) says when one of theirs finished, so the poll is only a
safety net there; on SQLite the poll is what notices them. A new waiter is checked by the same
query at once (has its run ended already? does it exist?), so many callers awaiting results
together cost one read, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from opsloom.errors import RunNotFoundError
from opsloom.model import RunRecord
from opsloom.store import Store
from opsloom.store.tx import stop_if_cancelled

log = logging.getLogger("opsloom.worker")


class Outcomes:
    """The runs some caller waits for, and the task that notices them end elsewhere.

    Args:
        store: the open store, or ``None`` once it is closed (the watcher then stops).
        local_worker: whether this process runs a worker (it wakes waiters itself, so other
            processes' runs are polled less often).
        executing: whether a run is executing in this process's worker now: it has not ended,
            and its end will wake the waiters (:meth:`finished`), so nothing is read for it.
    """

    def __init__(
        self,
        store: Callable[[], Store | None],
        local_worker: Callable[[], bool],
        executing: Callable[[str], bool] = lambda run_id: False,
    ):
        self._store = store
        self._local_worker = local_worker
        self._executing = executing
        self._waiters: dict[str, list[asyncio.Future[RunRecord | None]]] = {}
        #: New waiters (with their runs) whose first look-up by the watcher has not ended.
        self._unchecked: dict[asyncio.Future[RunRecord | None], str] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._finished_elsewhere = asyncio.Event()

    def listen(self, store: Store) -> None:
        """Hear ``store``'s "a run finished" wake-ups (once per opening of the store)."""
        self._finished_elsewhere = asyncio.Event()
        store.add_wake_listener("done", self._finished_elsewhere.set)

    async def wait(self, store: Store, run_id: str, timeout: float | None) -> RunRecord:
        """The run once it has ended.

        Raises:
            RunNotFoundError: there is no such run.
            TimeoutError: it did not end within ``timeout`` seconds.
        """
        future: asyncio.Future[RunRecord | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        try:
            # The waiter is registered first: a run executing here cannot end unheard. Any
            # other run is looked up by the watcher's next query, which starts now.
            if not self._executing(run_id):
                self._unchecked[future] = run_id
                self._finished_elsewhere.set()
            if self._watcher is None or self._watcher.done():
                self._watcher = asyncio.create_task(self._watch(), name="opsloom-results")
            looked = True
            try:
                run = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                if future not in self._unchecked:
                    raise TimeoutError(f"run {run_id!r} did not end within {timeout}s") from None
                looked = False
            if not looked:
                # The time ran out before the watcher's look-up answered: a run that had
                # ended before the caller asked (or that does not exist) is answered all the
                # same, as the timeout bounds the wait for the run's end, not the look-up.
                run = await self._look_up_one(store, run_id, timeout)
            if run is None:
                run = await store.get_run(run_id)
                assert run is not None
            return run
        finally:
            self._unchecked.pop(future, None)
            waiters = self._waiters.get(run_id)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(future)
                if not waiters:
                    del self._waiters[run_id]

    async def _watch(self) -> None:
        store = self._store()
        if store is not None and store.wakes_across_processes:
            poll = 1.0
        else:
            poll = 0.5 if self._local_worker() else 0.05
        while self._waiters:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished_elsewhere.wait(), poll)
            self._finished_elsewhere.clear()
            store = self._store()
            if store is None:
                return
            unchecked = list(self._unchecked.items())
            try:
                await self._look_up(store, unchecked)
            except Exception as exc:
                stop_if_cancelled()
                # The callers whose first look failed get the error; the others wait on.
                for future, _ in unchecked:
                    if not future.done():
                        future.set_exception(exc)
                log.warning("could not read the outcome of awaited runs: %r", exc)
            for future, _ in unchecked:
                self._unchecked.pop(future, None)

    async def _look_up(
        self, store: Store, unchecked: list[tuple[asyncio.Future[RunRecord | None], str]]
    ) -> None:
        """Wake the waiters of every ended run; fail the new waiters of runs that do not
        exist."""
        ended = await store.ended_runs(list(self._waiters))
        for run in ended:
            self._wake(run.id, run)
        unknown = {run_id for future, run_id in unchecked if not future.done()}
        if unknown:
            existing = {span.id for span in await store.run_spans(sorted(unknown))}
            for future, run_id in unchecked:
                if run_id not in existing and not future.done():
                    future.set_exception(RunNotFoundError(f"no run {run_id!r}"))

    @staticmethod
    async def _look_up_one(store: Store, run_id: str, timeout: float | None) -> RunRecord:
        """``run_id`` if it has ended.

        Raises:
            RunNotFoundError: there is no such run.
            TimeoutError: it has not ended.
        """
        status = await store.status_of(run_id)
        if status is None:
            raise RunNotFoundError(f"no run {run_id!r}")
        if not status.terminal:
            raise TimeoutError(f"run {run_id!r} did not end within {timeout}s")
        run = await store.get_run(run_id)
        assert run is not None
        return run

    def finished(self, run: RunRecord) -> None:
        """A run this process's worker finished: wake its waiters with it."""
        self._wake(run.id, run)

    def _wake(self, run_id: str, run: RunRecord | None) -> None:
        for future in self._waiters.get(run_id, []):
            if not future.done():
                future.set_result(run)
