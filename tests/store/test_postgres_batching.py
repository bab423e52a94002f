"""PostgreSQL group commit in pipeline mode: rollups added once per batch, claims in few trips.

A batch of the writer adds the rollups of every run it finishes in one statement at its end;
these tests check that the sums are those of adding each run on its own, that a run whose
finish is refused adds nothing while the rest of its batch does, and that a claim still hands
over history and signals.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opsloom.codec import encode
from opsloom.errors import LeaseLostError
from opsloom.model import RunStatus, StepKind, StepRecord, StepStatus
from opsloom.model.run import Fence, NewRun
from opsloom.store.dialects.postgres import PostgresStore
from opsloom.store.rollup import Finished, FinishedStep, batched, upserts
from opsloom.store.tx import Tx

KINDS = frozenset({"wf@1"})
T0 = 1_000_000.0
TABLES = ("run_rollups", "step_rollups", "failure_rollups")


def finished(i: int) -> Finished:
    """Runs that share rows (same workflow, hour and shard) and fall in different buckets."""
    failed = i % 3 == 0
    steps = [
        FinishedStep("fetch", "completed", 1 + i % 2, T0, T0 + 0.001 * (i + 1), None),
        FinishedStep(
            "apply",
            "failed" if failed else "completed",
            2,
            T0 + 0.01,
            T0 + 0.01 + 0.5 * i,
            encode({"type": "Timeout", "message": f"after {i}s"}) if failed else None,
        ),
    ]
    return Finished(
        workflow="wf" if i % 4 else "other",
        version="1",
        status="failed" if failed else "completed",
        created_at=T0 - i,
        started_at=None if i == 5 else T0,
        completed_at=T0 + 1 + i * 400.0,  # some in the next hour
        steps=steps,
        reason=("Timeout", "after <n>s") if failed else None,
    )


async def rows(store: PostgresStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the rollups, in a fixed order; sums of seconds rounded (the order in which
    floats are added moves their last digits)."""

    def plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(round(v, 9) if isinstance(v, float) else v for v in row)

    async def read(tx: Tx) -> dict[str, list[tuple[Any, ...]]]:
        return {t: sorted(map(plain, await tx.all(f"SELECT * FROM {t}")), key=repr) for t in TABLES}

    return await store.read(read)


async def test_rollups__one_statement_for_many_runs_adds_what_each_run_adds(
    postgres_schemas: Any,
) -> None:
    runs = [(finished(i), i % 2) for i in range(12)]
    one_by_one, together = PostgresStore(postgres_schemas()), PostgresStore(postgres_schemas())
    await one_by_one.open()
    await together.open()
    try:

        async def each(tx: Tx) -> None:
            for run, shard in runs:
                for sql, params in upserts(run, shard):
                    await tx.execute(sql, params)

        statement = batched(runs)
        assert statement is not None

        async def at_once(tx: Tx) -> None:
            await tx.execute(*statement)

        await one_by_one.write(each)
        await together.write(at_once)
        expected, got = await rows(one_by_one), await rows(together)
        assert all(expected[t] for t in TABLES)
        assert got == expected
    finally:
        await one_by_one.close()
        await together.close()


def new_run(run_id: str) -> NewRun:
    return NewRun(id=run_id, workflow="wf", version="1", input=encode(run_id))


async def total(store: PostgresStore, sql: str) -> int:
    row = await store.read(lambda tx: tx.one(sql))
    return 0 if row is None or row[0] is None else int(row[0])


async def test_finish__a_refused_run_adds_nothing_and_its_batch_adds_the_rest(
    postgres_schema_url: str,
) -> None:
    store = PostgresStore(postgres_schema_url)
    await store.open()
    try:
        for i in range(6):
            await store.create_run(new_run(f"r{i}"), T0)
        claims = await store.claim("w", KINDS, 6, T0 + 1, 30)
        assert len(claims) == 6
        stale = claims[0].fence
        # All finishes in one batch, one of them under a fence that no longer holds.
        outcomes = await asyncio.gather(
            store.finish_run(
                Fence(stale.run_id, stale.owner, stale.token + 1),
                RunStatus.COMPLETED,
                encode(0),
                None,
                T0 + 2,
            ),
            *(
                store.finish_run(c.fence, RunStatus.COMPLETED, encode(1), None, T0 + 2)
                for c in claims[1:]
            ),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], LeaseLostError)
        assert outcomes[1:] == [None] * 5
        duration = "FROM run_rollups WHERE width = 3600 AND measure = 'duration'"
        assert await total(store, f"SELECT sum(runs) {duration}") == 5
        # Once more, all fences holding: one batch, one rollup statement, every run counted.
        await store.finish_run(stale, RunStatus.COMPLETED, encode(0), None, T0 + 3)
        assert await total(store, f"SELECT sum(runs) {duration}") == 6
        assert await total(store, "SELECT count(*) FROM runs WHERE status = 'completed'") == 6
    finally:
        await store.close()


async def test_claim__hands_over_history_and_signals_in_one_transaction(
    postgres_schema_url: str,
) -> None:
    store = PostgresStore(postgres_schema_url)
    await store.open()
    try:
        await store.create_run(new_run("a"), T0)
        await store.create_run(new_run("b"), T0)
        await store.send_signal("b", "go", encode(7), T0)
        claims = {c.run.id: c for c in await store.claim("w", KINDS, 5, T0 + 1, 30)}
        assert set(claims) == {"a", "b"}
        assert [s.name for s in claims["b"].signals] == ["go"]
        assert claims["a"].signals == []
        assert all(c.run.status is RunStatus.RUNNING for c in claims.values())
        assert {c.fence.token for c in claims.values()} == {1}
        # Nothing left to claim: an empty claim changes nothing and leaves no transaction open.
        assert await store.claim("w2", KINDS, 5, T0 + 2, 30) == []
        assert await total(store, "SELECT count(*) FROM jobs WHERE owner = 'w'") == 2
    finally:
        await store.close()


def step(run_id: str, seq: int, output: int) -> StepRecord:
    return StepRecord(
        run_id=run_id,
        seq=seq,
        kind=StepKind.STEP,
        name="add",
        status=StepStatus.COMPLETED,
        output=output,
        started_at=T0,
        completed_at=T0 + 1,
    )


async def test_record_step__answers_read_after_the_batch_is_sent_still_fence_each_step(
    postgres_schema_url: str,
) -> None:
    store = PostgresStore(postgres_schema_url)
    await store.open()
    try:
        for i in range(4):
            await store.create_run(new_run(f"s{i}"), T0)
        claims = await store.claim("w", KINDS, 4, T0 + 1, 30)
        fences = {c.run.id: c.fence for c in claims}
        stale = Fence("s0", "w", fences["s0"].token + 1)
        await store.record_step(fences["s1"], step("s1", 1, 10))
        # One batch: a stale fence, a duplicate completion (ignored) and new steps.
        outcomes = await asyncio.gather(
            store.record_step(fences["s1"], step("s1", 2, 20)),
            store.record_step(stale, step("s0", 1, 99)),
            store.record_step(fences["s1"], step("s1", 1, 11)),
            store.record_step(fences["s2"], step("s2", 1, 30)),
            store.record_step(fences["s3"], step("s3", 1, 40)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], LeaseLostError)
        assert [outcomes[i] for i in (0, 2, 3, 4)] == [None] * 4
        history = {}
        for run_id in ("s0", "s1", "s2", "s3"):
            run = await store.get_run(run_id, with_steps=True)
            assert run is not None
            history[run_id] = {s.seq: s.output for s in run.steps}
        assert history == {"s0": {}, "s1": {1: 10, 2: 20}, "s2": {1: 30}, "s3": {1: 40}}
        # And when every fence holds, the whole batch goes in one transaction.
        await asyncio.gather(*(store.record_step(fences["s2"], step("s2", n, n)) for n in (2, 3)))
        run = await store.get_run("s2", with_steps=True)
        assert run is not None and [s.seq for s in run.steps] == [1, 2, 3]
    finally:
        await store.close()
