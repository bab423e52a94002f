"""Rate limits of run starts, per workflow and per key, shared through the store.

A workflow's limit is part of its row of ``workflow_controls`` (set by an operator with
``opsloom workflows limit``, or declared with the workflow and saved by each worker that
starts); a trigger's limit is part of the trigger. Each new run takes the next start slot of
every limit it falls under (see :mod:`opsloom.model.ratelimit`): one row of ``rate_slots`` per
limit and key, moved on by one upsert in the transaction that creates the run, so every
process on the store draws from the same schedule (PostgreSQL locks the row until commit;
SQLite has one writer). Its job is ready at the latest slot it took, so a storm of starts
becomes a queue that drains at the rate; a limit that drops refuses the start instead, and
then takes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsloom.codec import decode
from opsloom.model.ratelimit import RateLimit
from opsloom.store.tx import Op, Transactions, Tx

#: A limit to draw a start slot from: its scope (``workflow:<name>``, ``trigger:<id>``), the
#: key the start counts under, and the limit.
Slot = tuple[str, str, RateLimit]

# One statement takes the slot and moves the schedule on. A dropping limit takes it only when
# it is free now (its WHERE refuses, and no row comes back, when the burst is used up).
_TAKE = (
    "INSERT INTO rate_slots (scope, key, next_start) VALUES (?, ?, ?) "
    "ON CONFLICT (scope, key) DO UPDATE SET next_start = CASE WHEN rate_slots.next_start < ? "
    "THEN ? ELSE rate_slots.next_start END + ?"
)
_TAKE_FREE = _TAKE + " WHERE rate_slots.next_start <= ?"


@dataclass(frozen=True, slots=True)
class WorkflowRateLimit:
    """A workflow's rate limit; ``declared``: it came from the workflow's declaration."""

    workflow: str
    limit: RateLimit
    declared: bool = False

    @property
    def rate(self) -> float:
        return self.limit.rate

    @property
    def burst(self) -> int:
        return self.limit.burst

    def to_dict(self) -> dict[str, Any]:
        return {"workflow": self.workflow, **self.limit.to_dict(), "declared": self.declared}


async def take_slot(tx: Tx, scope: str, key: str, limit: RateLimit, now: float) -> float | None:
    """When a start under ``limit`` (for ``key``) may run, now or later; None when the limit
    drops starts and has no free slot (nothing is taken then)."""
    step = limit.interval
    params: tuple[Any, ...] = (scope, key, now + step, now, now, step)
    sql = _TAKE
    if limit.overflow == "drop":
        sql, params = _TAKE_FREE, (*params, now + (limit.burst - 1) * step)
    row = await tx.one(sql + " RETURNING next_start", params)
    if row is None:
        return None
    # The slot taken began one step before the new schedule; a burst lets it start that many
    # steps early.
    return max(now, float(row[0]) - step - (limit.burst - 1) * step)


async def take_slots(tx: Tx, slots: Sequence[Slot], now: float) -> float | None:
    """The latest start time over ``slots``, or None if one of them refuses.

    Dropping limits are asked first, so a refusal leaves the queueing ones untouched.
    """
    start_at = now
    for scope, key, limit in sorted(slots, key=lambda s: s[2].overflow != "drop"):
        taken = await take_slot(tx, scope, key, limit, now)
        if taken is None:
            return None
        start_at = max(start_at, taken)
    return start_at


_CONTROL = (
    "SELECT paused_at, rate, burst, rate_key, overflow FROM workflow_controls WHERE workflow = ?"
)


async def workflow_control(tx: Tx, workflow: str, input: bytes | None) -> tuple[bool, Slot | None]:
    """Whether ``workflow`` is paused, and the slot a new run with ``input`` draws from."""
    row = await tx.one(_CONTROL, (workflow,))
    if row is None:
        return False, None
    paused = row[0] is not None
    if row[1] is None:
        return paused, None
    limit = RateLimit(float(row[1]), int(row[2]), row[3], row[4])
    key = limit.key_of(decode(input)) if limit.key is not None else ""
    return paused, (f"workflow:{workflow}", key, limit)


def _limit_of(row: Sequence[Any]) -> WorkflowRateLimit:
    workflow, rate, burst, key, overflow, declared = row
    return WorkflowRateLimit(
        str(workflow), RateLimit(float(rate), int(burst), key, overflow), bool(declared)
    )


_SET = (
    "INSERT INTO workflow_controls (workflow, rate, burst, rate_key, overflow, rate_declared) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workflow) DO UPDATE SET rate = excluded.rate, "
    "burst = excluded.burst, rate_key = excluded.rate_key, overflow = excluded.overflow, "
    "rate_declared = excluded.rate_declared"
)


class RateLimitOps(Transactions):
    """``set_rate_limit``, ``declare_rate_limit``, ``rate_limits``, ``prune_rate_slots``."""

    async def set_rate_limit(
        self, workflow: str, limit: RateLimit | float | None, burst: int = 1
    ) -> None:
        """Limit the runs of ``workflow`` (a :class:`RateLimit`, or a rate per second with
        ``burst``); None lifts the limit. ``InputError`` for a rate that is not positive or a
        burst < 1."""
        if limit is not None and not isinstance(limit, RateLimit):
            limit = RateLimit(float(limit), burst)
        await self.write(_setter(workflow, limit, declared=False))

    async def declare_rate_limit(self, workflow: str, limit: RateLimit) -> bool:
        """Save the limit ``workflow`` declares, unless it is the one saved; whether it
        changed. It replaces a limit an operator set (the declaration is the newer word)."""

        async def declare(tx: Tx) -> bool:
            row = await tx.one(
                "SELECT workflow, rate, burst, rate_key, overflow, rate_declared "
                "FROM workflow_controls WHERE workflow = ? AND rate IS NOT NULL",
                (workflow,),
            )
            if row is not None and _limit_of(row).limit == limit:
                return False
            await _setter(workflow, limit, declared=True)(tx)
            return True

        return await self.write(declare)

    async def rate_limits(self) -> list[WorkflowRateLimit]:
        """The workflows under a rate limit, by name."""
        rows = await self.read(
            lambda tx: tx.all(
                "SELECT workflow, rate, burst, rate_key, overflow, rate_declared "
                "FROM workflow_controls WHERE rate IS NOT NULL ORDER BY workflow"
            )
        )
        return [_limit_of(row) for row in rows]

    async def prune_rate_slots(self, now: float) -> int:
        """Forget start schedules that are past (the same as none); how many."""
        return await self.write(
            lambda tx: tx.execute("DELETE FROM rate_slots WHERE next_start < ?", (now,))
        )


def _setter(workflow: str, limit: RateLimit | None, *, declared: bool) -> Op[None]:
    async def limit_op(tx: Tx) -> None:
        if limit is None:
            await tx.execute(
                "UPDATE workflow_controls SET rate = NULL, burst = 1, rate_key = NULL, "
                "overflow = 'queue', rate_declared = 0 WHERE workflow = ?",
                (workflow,),
            )
        else:
            params = (workflow, limit.rate, limit.burst, limit.key, limit.overflow, int(declared))
            await tx.execute(_SET, params)
        # A changed limit starts from a clean schedule (a slower old rate would hold new runs).
        await tx.execute("DELETE FROM rate_slots WHERE scope = ?", (f"workflow:{workflow}",))

    return limit_op
