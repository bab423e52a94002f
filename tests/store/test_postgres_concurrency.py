"""PostgreSQL under contention: several stores (as several processes would) on one schema."""

from __future__ import annotations

import asyncio

import psycopg

from opsloom.codec import encode
from opsloom.model import RunStatus
from opsloom.model.run import NewRun
from opsloom.store.dialects.postgres import PostgresStore, postgres_target

KINDS = frozenset({"wf@1"})
T0 = 1_000.0


def new_run(run_id: str, **extra: object) -> NewRun:
    return NewRun(id=run_id, workflow="wf", version="1", input=encode(run_id), **extra)  # type: ignore[arg-type]


async def test_concurrency_key__admits_no_more_than_the_limit_across_stores(
    postgres_schema_url: str,
) -> None:
    stores = [PostgresStore(postgres_schema_url) for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        for i in range(30):
            await stores[0].create_run(
                new_run(f"r{i}", concurrency_key="db", concurrency_limit=2), T0 + i
            )
        running: set[str] = set()
        finished: set[str] = set()
        for round_ in range(40):
            now = T0 + 100 + round_
            results = await asyncio.gather(
                *[s.claim(f"w{n}", KINDS, 5, now, 30) for n, s in enumerate(stores)]
            )
            claims = [(n, c) for n, claims in enumerate(results) for c in claims]
            for _, c in claims:
                assert c.run.id not in running | finished
                running.add(c.run.id)
            assert len(running) <= 2, f"{sorted(running)} open at once with limit 2"
            await asyncio.gather(
                *[
                    stores[n].finish_run(c.fence, RunStatus.COMPLETED, encode(1), None, now)
                    for n, c in claims
                ]
            )
            running -= {c.run.id for _, c in claims}
            finished |= {c.run.id for _, c in claims}
            if len(finished) == 30:
                break
        assert len(finished) == 30, "every blocked run was eventually admitted"
    finally:
        for store in stores:
            await store.close()


async def test_store__survives_killed_connections(postgres_schema_url: str) -> None:
    store = PostgresStore(postgres_schema_url)
    await store.open()
    try:
        await store.create_run(new_run("before"), T0)
        # Kill the writer's session and a reader's, as a server restart would.
        writer = store._writer._conn  # type: ignore[union-attr]
        assert writer is not None
        reader = await store.read(lambda tx: tx.one("SELECT pg_backend_pid()"))
        assert reader is not None
        conninfo, _ = postgres_target(postgres_schema_url)
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid",
                ([writer.info.backend_pid, reader[0]],),
            )
        # Nothing was sent on the dead connection: the write goes through on a new one.
        run, created = await store.create_run(new_run("after"), T0)
        assert created and run.id == "after"
        assert await store.get_run("before") is not None
    finally:
        await store.close()
