"""Writers of several processes on one SQLite file take turns on ``<database>-writer``.

SQLite alone makes a writer that finds the file locked poll with growing sleeps; opsloom's
writers wait for each other on an ``flock`` instead, which the kernel hands over at once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from opsloom.model.cloudevent import CloudEvent
from opsloom.store.dialects.sqlite import SqliteStore


def _event(n: int) -> CloudEvent:
    return CloudEvent(id=f"e-{n}", source="/tests/turns", type="test.turn", data={"n": n})


async def test_writer__waits_for_the_turn_another_process_holds(tmp_path: Path) -> None:
    path = tmp_path / "turns.db"
    store = SqliteStore(f"sqlite:///{path}")
    await store.open()
    try:
        # Another process's writer holds its turn: an flock on its own open file.
        other = os.open(f"{path}-writer", os.O_RDWR)
        fcntl.flock(other, fcntl.LOCK_EX)
        try:
            stored = asyncio.ensure_future(store.append_events([_event(1)], 1.0))
            done, _ = await asyncio.wait({stored}, timeout=0.3)
            assert not done, "the write did not wait for the other writer's turn"
        finally:
            fcntl.flock(other, fcntl.LOCK_UN)
            os.close(other)
        assert await asyncio.wait_for(stored, 10) == [True]
        writer = store._writer
        assert writer is not None and writer.turns_waited == 1
        # The turn is given back after each commit: another writer gets it at once.
        probe = os.open(f"{path}-writer", os.O_RDWR)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(probe)
    finally:
        await store.close()


async def test_writers__of_one_file_lose_nothing_and_keep_dedup(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [SqliteStore(url) for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        # Every store sends the same 200 events, all at once: each is stored exactly once.
        results = await asyncio.gather(
            *(store.append_events([_event(n)], 1.0) for n in range(200) for store in stores)
        )
        assert sum(stored for result in results for stored in result) == 200
        found = await stores[0].read(
            lambda tx: tx.one("SELECT count(*) FROM events WHERE source = '/tests/turns'")
        )
        assert found is not None and found[0] == 200
    finally:
        for store in stores:
            await store.close()
