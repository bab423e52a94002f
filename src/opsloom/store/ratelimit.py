"""Rate limits of workflows: at most ``rate`` runs start per second (``burst`` at once).

The limit is a row of ``workflow_controls`` that every process creating runs reads (see
:func:`opsloom.store.job.admission`): a new run takes the next start slot and its job is ready
only then, so a storm of starts (an alert storm through a trigger, a burst of API calls)
becomes a queue that drains at the rate. Nothing is refused; runs are cancelled as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsloom.errors import InputError
from opsloom.store.tx import Transactions, Tx


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A workflow's rate limit."""

    workflow: str
    rate: float
    burst: int


class RateLimitOps(Transactions):
    """``set_rate_limit`` and ``rate_limits``."""

    async def set_rate_limit(self, workflow: str, rate: float | None, burst: int = 1) -> None:
        """Limit runs of ``workflow`` to ``rate`` starts a second, ``burst`` at once; ``rate``
        None lifts the limit. ``InputError`` for a rate that is not positive or a burst < 1."""
        if rate is not None and not rate > 0:
            raise InputError(f"a rate limit is a positive number of runs per second, not {rate}")
        if burst < 1:
            raise InputError(f"a rate limit's burst is at least 1, not {burst}")

        async def limit(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO workflow_controls (workflow, rate, burst) VALUES (?, ?, ?) "
                "ON CONFLICT (workflow) DO UPDATE SET rate = excluded.rate, "
                "burst = excluded.burst",
                (workflow, rate, burst),
            )

        await self.write(limit)

    async def rate_limits(self) -> list[RateLimit]:
        """The workflows under a rate limit, by name."""
        rows = await self.read(
            lambda tx: tx.all(
                "SELECT workflow, rate, burst FROM workflow_controls WHERE rate IS NOT NULL "
                "ORDER BY workflow"
            )
        )
        return [RateLimit(str(w), float(rate), int(burst)) for w, rate, burst in rows]
