"""Resetting a run: a new run that starts with another run's history before a position.

The new run replays the recorded results before position ``to_seq`` without running them
again (the side effects they had are not repeated) and executes from there with the code
deployed now: what a bug fix needs. Both runs are linked (``reset_of``/``reset_to`` on the new
one, :meth:`ResetOps.resets_of` for the old one).

Event subscriptions the kept history leaves open are the new run's own: their ids (derived
from the run id, ``<run>:<position>``) and the names of the waits on them are rewritten to the
new run's, and they are opened again at the reset, so events stored from then on reach the new
run, and a run a trigger started holds its dedup key again (unless another run of the key is
open), so the key's events reach the new run's inbox. Events the old run received are not
delivered again: those it took before ``to_seq`` are
in the kept history, the others belonged to the history that is redone. Timers and waits
before ``to_seq`` are final (a reset to a later position is refused), so nothing of them is
left to fire.
"""

from __future__ import annotations

from dataclasses import replace

from opsloom.codec import encode
from opsloom.errors import InputError, RunNotFoundError, RunStateError
from opsloom.model import RunRecord, StepKind, StepRecord
from opsloom.model.matching import signal_name
from opsloom.model.run import NewRun
from opsloom.store.event import (
    SUBSCRIBE_STEP,
    UNSUBSCRIBE_STEP,
    open_subscription,
    open_subscriptions,
)
from opsloom.store.job import fetch_labels, fetch_run, fetch_steps, insert_run, upsert_step
from opsloom.store.trigger import OPEN
from opsloom.store.tx import WORK, Transactions, Tx


class ResetOps(Transactions):
    """``reset_run`` and ``resets_of``."""

    async def reset_run(
        self,
        run_id: str,
        to_seq: int,
        new_id: str,
        *,
        version: str | None,
        by: str | None,
        now: float,
    ) -> RunRecord:
        """Start run ``new_id`` from the history of finished run ``run_id`` before ``to_seq``.

        Raises:
            RunNotFoundError: no such run.
            RunStateError: the run is still open, or an entry before ``to_seq`` is not final.
            InputError: ``to_seq`` is not a position of the run (1 to its last position + 1).
        """

        async def reset(tx: Tx) -> RunRecord:
            run = await fetch_run(tx, run_id)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            if not run.status.terminal:
                raise RunStateError(
                    f"run {run_id!r} is still {run.status}; cancel it before resetting it"
                )
            row = await tx.one("SELECT max(seq) FROM steps WHERE run_id = ? AND seq > 0", (run_id,))
            last = int(row[0]) if row is not None and row[0] is not None else 0
            if not 1 <= to_seq <= last + 1:
                raise InputError(
                    f"run {run_id!r} has positions 1 to {last}: the step to reset to must be "
                    f"between 1 and {last + 1}, not {to_seq}"
                )
            unfinished = await tx.one(
                "SELECT seq, status FROM steps WHERE run_id = ? AND seq > 0 AND seq < ? "
                "AND status NOT IN ('completed', 'failed') ORDER BY seq LIMIT 1",
                (run_id, to_seq),
            )
            if unfinished is not None:
                raise RunStateError(
                    f"position {unfinished[0]} of run {run_id!r} never finished "
                    f"({unfinished[1]}): reset to it or to an earlier step"
                )
            raw = await tx.one(
                "SELECT input, concurrency_limit, deadline - created_at FROM runs WHERE id = ?",
                (run_id,),
            )
            assert raw is not None
            new = NewRun(
                id=new_id,
                workflow=run.workflow,
                version=version or run.version,
                input=raw[0],
                priority=run.priority,
                concurrency_key=run.concurrency_key,
                concurrency_limit=raw[1],
                deadline=None if raw[2] is None else now + float(raw[2]),
                traceparent=run.traceparent,
                started_by=by,
                reset_of=run_id,
                reset_to=to_seq,
                labels=tuple((await fetch_labels(tx, [run_id])).get(run_id, {}).items()),
            )
            if await insert_run(tx, new, now) is None:
                raise InputError(f"a run {new_id!r} exists already")
            kept = (await fetch_steps(tx, [run_id])).get(run_id, {})
            history = [_rebind(kept[seq], run_id, new_id) for seq in sorted(kept)]
            history = [step for step in history if 0 < step.seq < to_seq]
            for step in history:
                await upsert_step(tx, step)
            entries = [
                (step.name, encode(step.output))
                for step in history
                if step.kind is StepKind.VALUE and step.name in (SUBSCRIBE_STEP, UNSUBSCRIBE_STEP)
            ]
            for subscription_id, filters in open_subscriptions(entries).items():
                await open_subscription(tx, new_id, subscription_id, filters, now)
            started = await tx.one(
                "SELECT trigger_id, key, event_source, event_id FROM trigger_runs WHERE run_id = ?",
                (run_id,),
            )
            if started is not None:
                # The key's later events reach the new run's inbox, unless another run
                # of the key opened meanwhile (then they go on reaching that one).
                trigger_id, key, source, event_id = started
                await tx.execute(OPEN, (trigger_id, key, new_id, source, event_id, now))
            fetched = await fetch_run(tx, new_id)
            assert fetched is not None
            return fetched

        return await self.write(reset, WORK)

    async def resets_of(self, run_id: str) -> list[RunRecord]:
        """The runs reset from ``run_id``, oldest first."""

        async def fetch(tx: Tx) -> list[RunRecord]:
            rows = await tx.all(
                "SELECT id FROM runs WHERE reset_of = ? ORDER BY created_at, id", (run_id,)
            )
            found = [await fetch_run(tx, row[0]) for row in rows]
            return [run for run in found if run is not None]

        return await self.read(fetch)


def _rebind(step: StepRecord, old_id: str, new_id: str) -> StepRecord:
    """``step`` of run ``old_id`` as an entry of ``new_id``: the subscriptions it names (and
    the signals that carry their events) become the new run's."""
    old, new = f"{old_id}:", f"{new_id}:"
    name, output = step.name, step.output
    if step.kind is StepKind.VALUE and step.name in (SUBSCRIBE_STEP, UNSUBSCRIBE_STEP):
        subscription = str((output or {}).get("subscription", ""))
        if subscription.startswith(old):
            output = {**output, "subscription": new + subscription.removeprefix(old)}
    elif step.kind is StepKind.SIGNAL and name.startswith(signal_name(old)):
        name = signal_name(new) + name.removeprefix(signal_name(old))
    return replace(step, run_id=new_id, name=name, output=output, encoded=None)
