"""Resetting a run: a new run that starts with another run's history before a position.

The new run replays the recorded results before position ``to_seq`` without running them
again (the side effects they had are not repeated) and executes from there with the code
deployed now: what a bug fix needs. Both runs are linked (``reset_of``/``reset_to`` on the new
one, :meth:`ResetOps.resets_of` for the old one).
"""

from __future__ import annotations

from opsloom.errors import InputError, RunNotFoundError, RunStateError
from opsloom.model import RunRecord
from opsloom.model.run import NewRun
from opsloom.store.job import fetch_labels, fetch_run, insert_run
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
            await tx.execute(
                "INSERT INTO steps (run_id, seq, kind, name, status, output, error, attempts, "
                "wake_at, started_at, completed_at) SELECT ?, seq, kind, name, status, output, "
                "error, attempts, wake_at, started_at, completed_at FROM steps "
                "WHERE run_id = ? AND seq > 0 AND seq < ?",
                (new_id, run_id, to_seq),
            )
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
