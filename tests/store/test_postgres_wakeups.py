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
                "WHERE query = %s AND pid <> pg_backend_pid()",
                (f'LISTEN "{listening.channel}"',),
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
