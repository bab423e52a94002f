"""Retention: finished runs and old events pruned in small batches, rollups kept.

Each batch is one short write (at most ``limit`` runs with their history, signals and trigger
keys, then at most ``limit`` events), so that pruning a long backlog shares the writer with the
work going on instead of holding it. A run is pruned only once it and its parent (if any) have
ended: a parent that is still open may replay and read its child's outcome. The rollups that
analytics read are not touched, so reports over pruned periods stay whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsloom.store.tx import Transactions, Tx

# Oldest first along runs_created_idx; a run created before the cut that is still open is
# passed over (it has no completed_at), and one that ended after the cut is kept.
_PRUNABLE = (
    "SELECT r.id FROM runs r WHERE r.created_at < ? AND r.completed_at < ? "
    "AND (r.parent_id IS NULL OR NOT EXISTS "
    "(SELECT 1 FROM runs p WHERE p.id = r.parent_id AND p.completed_at IS NULL)) "
    "ORDER BY r.created_at LIMIT ?"
)
_OLD_EVENTS = "SELECT seq FROM events WHERE received_at < ? ORDER BY seq LIMIT ?"


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one batch removed."""

    runs: int
    events: int

    @property
    def total(self) -> int:
        return self.runs + self.events


class RetentionOps(Transactions):
    """Pruning of old history; mixed into both stores."""

    async def prune(self, before: float, limit: int = 500) -> Pruned:
        """Remove up to ``limit`` runs that ended before ``before`` and up to ``limit`` events
        received before it, in one transaction; call again until nothing is left."""

        async def prune(tx: Tx) -> Pruned:
            ids = [row[0] for row in await tx.all(_PRUNABLE, (before, before, limit))]
            if ids:
                among, params = tx.among("run_id", ids)
                for table in ("steps", "signals", "trigger_runs", "subscriptions"):
                    await tx.execute(f"DELETE FROM {table} WHERE {among}", params)
                among, params = tx.among("id", ids)
                await tx.execute(f"DELETE FROM runs WHERE {among}", params)
            seqs = [row[0] for row in await tx.all(_OLD_EVENTS, (before, limit))]
            if seqs:
                among, params = tx.among("seq", seqs)
                await tx.execute(f"DELETE FROM events WHERE {among}", params)
            await tx.execute("DELETE FROM dead_letters WHERE created_at < ?", (before,))
            return Pruned(len(ids), len(seqs))

        return await self.write(prune)
