"""Retention in the background: one process per database prunes finished runs and old events.

With ``OPSLOOM_RETENTION_DAYS`` set, every process that runs a worker starts a
:class:`Retention` loop; the holder of the ``retention`` singleton prunes, the others wait.
Every ``period`` seconds it prunes batch after batch (see :mod:`opsloom.store.retention`) until
a batch comes back short, giving the loop back between batches so that runs keep being written.
"""

from __future__ import annotations

import asyncio
import logging

from opsloom.analytics.periodic import Periodic
from opsloom.clock import Clock
from opsloom.store.base import Store

log = logging.getLogger("opsloom.retention")


async def prune_all(store: Store, before: float, batch: int = 500) -> int:
    """Prune everything older than ``before``, batch by batch; how many runs and events."""
    total = 0
    while True:
        pruned = await store.prune(before, batch)
        total += pruned.total
        if pruned.runs < batch and pruned.events < batch:
            return total
        await asyncio.sleep(0)  # let other writes into the next batch


class Retention(Periodic):
    """The pruning loop of one process."""

    name = "retention"
    log = log

    def __init__(
        self, store: Store, clock: Clock, owner: str, days: float, period: float = 300.0
    ) -> None:
        super().__init__(period)
        self.store = store
        self.clock = clock
        self.owner = owner
        self.keep_seconds = days * 86400

    async def run_once(self) -> int:
        """Prune now if this process holds the ``retention`` singleton; how much it removed."""
        now = self.clock.now()
        if not await self.store.hold_singleton("retention", self.owner, now, 3 * self.period):
            return 0
        pruned = await prune_all(self.store, now - self.keep_seconds)
        if pruned:
            log.info(
                "pruned %d finished runs and events older than %g days",
                pruned,
                self.keep_seconds / 86400,
                extra={"event": "retention_pruned", "pruned": pruned},
            )
        return pruned
