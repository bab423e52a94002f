"""LISTEN/NOTIFY: a store hears, after commit, the writes of other processes that make work."""

from __future__ import annotations

import asyncio

import psycopg

from opsloom.codec import encode
from opsloom.model.run import NewRun
from opsloom.store.dialects.postgres import PostgresStore, postgres_target

KINDS = frozenset({"wf@1"})
T0 = 1_000.0


def new_run(run_id: str) -> NewRun:
    return NewRun(id=run_id, workflow="wf", version="1", input=encode(run_id))


class Heard:
    def __init__(self) -> None:
        self.work = asyncio.Event()
        self.done = asyncio.Event()
        self.log: list[str] = []

    def hear(self, topic: str) -> None:
        self.log.append(topic)
        getattr(self, topic).set()

    async def next(self, topic: str, timeout: float = 5.0) -> None:
        event = getattr(self, topic)
        await asyncio.wait_for(event.wait(), timeout)
        event.clear()


async def open_pair(url: str) -> tuple[PostgresStore, PostgresStore, Heard]:
    listening, writing = PostgresStore(url), PostgresStore(url)
    await listening.open()
    await writing.open()
    heard = Heard()
    listening.add_wake_listener("work", lambda: heard.hear("work"))
    listening.add_wake_listener("done", lambda: heard.hear("done"))
    await listening.wait_listening()
    return listening, writing, heard


async def test_wakeup__new_run_signal_and_finish_are_heard(postgres_schema_url: str) -> None:
    listening, writing, heard = await open_pair(postgres_schema_url)
    try:
        await writing.create_run(new_run("r1"), T0)
        await heard.next("work")
        [claim] = await listening.claim("w", KINDS, 1, T0, 30)
        assert not heard.done.is_set()
        await writing.finish_run(claim.fence, claim.run.status.COMPLETED, encode(1), None, T0)
        await heard.next("done")
        await writing.create_run(new_run("r2"), T0)
        await heard.next("work")
        await writing.send_signal("r2", "go", encode(None), T0)
        await heard.next("work")
    finally:
        await listening.close()
        await writing.close()


async def test_wakeup__claims_steps_and_heartbeats_wake_no_one(postgres_schema_url: str) -> None:
    listening, writing, heard = await open_pair(postgres_schema_url)
    try:
        await writing.create_run(new_run("r1"), T0)
        [claim] = await writing.claim("w", KINDS, 1, T0, 30)
        await writing.heartbeat("w", ["r1"], T0 + 30)
        await writing.finish_run(claim.fence, claim.run.status.COMPLETED, encode(1), None, T0)
        await heard.next("done")
        # Notifications arrive in commit order: by the time the finish is heard, anything the
        # claim or the heartbeat had sent would have been heard before it.
        assert heard.log[: heard.log.index("done")] == ["work"]
    finally:
        await listening.close()
        await writing.close()


async def test_wakeup__listener_reconnects_after_its_backend_is_killed(
    postgres_schema_url: str,
) -> None:
    listening, writing, heard = await open_pair(postgres_schema_url)
    conninfo, _ = postgres_target(postgres_schema_url)
    try:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query = ANY(%s) AND pid <> pg_backend_pid()",
                ([f'LISTEN "{c}"' for c in (listening.channel, listening.private_channel)],),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        # After reconnecting, every listener is called once: hints may have been missed.
        await heard.next("work", timeout=10)
        await heard.next("done", timeout=1)
        await listening.wait_listening()
        await writing.create_run(new_run("r1"), T0)
        await heard.next("work")
    finally:
        await listening.close()
        await writing.close()


async def test_wakeup__one_new_job_wakes_one_idle_worker_not_all(postgres_schema_url: str) -> None:
    stores = [PostgresStore(postgres_schema_url) for _ in range(3)]
    for store in stores:
        await store.open()
    writing, idle = stores[0], stores[1:]
    heard = [Heard() for _ in idle]
    try:
        for store, ear in zip(idle, heard, strict=True):
            store.add_wake_listener("work", lambda ear=ear: ear.hear("work"))
            await store.wait_listening()
            # A claim that finds nothing says the worker waits.
            assert await store.claim("w", KINDS, 4, T0, 30) == []
        await writing.create_run(new_run("r1"), T0)
        await asyncio.sleep(0.5)  # time for a second wake-up, were one sent
        assert sorted(len(ear.log) for ear in heard) == [0, 1]
        # The one woken is no longer idle until it claims again: the next job wakes the other.
        await writing.create_run(new_run("r2"), T0)
        await asyncio.sleep(0.5)
        assert [len(ear.log) for ear in heard] == [1, 1]
        # Nobody said it was idle since: a new job wakes everyone.
        await writing.create_run(new_run("r3"), T0)
        await asyncio.sleep(0.5)
        assert [len(ear.log) for ear in heard] == [2, 2]
        # Two jobs made ready at once wake two idle workers.
        assert len(await idle[0].claim("w", KINDS, 4, T0, 30)) == 3
        assert await idle[1].claim("w", KINDS, 4, T0, 30) == []
        await asyncio.gather(*(writing.create_run(new_run(f"r{i}"), T0) for i in (4, 5)))
        await asyncio.sleep(0.5)
        assert [len(ear.log) for ear in heard] == [3, 3]
    finally:
        for store in stores:
            await store.close()


async def test_wakeup__a_worker_its_claim_filled_is_not_woken(postgres_schema_url: str) -> None:
    stores = [PostgresStore(postgres_schema_url) for _ in range(3)]
    for store in stores:
        await store.open()
    writing, early, late = stores
    heard = {"early": Heard(), "late": Heard()}
    try:
        for store, name in ((early, "early"), (late, "late")):
            store.add_wake_listener("work", lambda name=name: heard[name].hear("work"))
            await store.wait_listening()
        await writing.create_run(new_run("later"), T0 + 100)  # ready only from T0 + 100
        await asyncio.sleep(0.3)
        assert await early.claim("w", KINDS, 4, T0, 30) == []  # idle
        assert await late.claim("w", KINDS, 4, T0, 30) == []  # idle, most recently
        assert len(await late.claim("w", KINDS, 1, T0 + 200, 30)) == 1  # full: not idle now
        for ear in heard.values():
            ear.log.clear()
        await writing.create_run(new_run("now"), T0)
        await asyncio.sleep(0.5)
        assert (len(heard["early"].log), len(heard["late"].log)) == (1, 0)
    finally:
        for store in stores:
            await store.close()


async def test_wakeup__a_closed_store_is_no_longer_recorded_idle(postgres_schema_url: str) -> None:
    idle, other = PostgresStore(postgres_schema_url), PostgresStore(postgres_schema_url)
    await idle.open()
    await other.open()
    try:
        idle.add_wake_listener("work", lambda: None)
        await idle.wait_listening()
        assert await idle.claim("w", KINDS, 4, T0, 30) == []
        count = "SELECT count(*) FROM idle_workers"
        assert await other.read(lambda tx: tx.one(count)) == (1,)
        await idle.close()
        assert await other.read(lambda tx: tx.one(count)) == (0,)
    finally:
        await idle.close()
        await other.close()
