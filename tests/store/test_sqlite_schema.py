"""SQLite specifics: migrations, refusing foreign files, durability settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from opsloom.codec import encode
from opsloom.errors import ConfigurationError, NotAnOpsloomDatabaseError, SchemaTooNewError
from opsloom.model.run import NewRun
from opsloom.store.dialects.sqlite import APPLICATION_ID, SqliteStore, dump_schema, sqlite_path
from opsloom.store.migration import latest_version, migrations


def build_old(path: Path, version: int) -> None:
    """A database as an older opsloom left it: migrations up to ``version`` only."""
    conn = sqlite3.connect(path)
    for migration in migrations("sqlite")[:version]:
        conn.executescript(
            f"BEGIN; {migration.sql}; PRAGMA application_id = {APPLICATION_ID}; "
            f"PRAGMA user_version = {migration.version}; COMMIT;"
        )
    conn.execute(
        "INSERT INTO runs (id, workflow, version, status, input, created_at, "
        "updated_at) VALUES ('old', 'wf', '1', 'completed', '1', 1.0, 1.0)"
    )
    conn.commit()
    conn.close()


async def test_upgrade__old_database_equals_fresh_one(tmp_path: Path) -> None:
    assert latest_version("sqlite") >= 2
    for version in range(1, latest_version("sqlite")):
        old = tmp_path / f"old{version}.db"
        build_old(old, version)
        upgraded = SqliteStore(f"sqlite:///{old}")
        await upgraded.open()
        run = await upgraded.get_run("old")
        await upgraded.close()
        assert run is not None and run.input == 1, "data kept across the upgrade"
        fresh_path = tmp_path / f"fresh{version}.db"
        fresh = SqliteStore(f"sqlite:///{fresh_path}")
        await fresh.open()
        await fresh.close()
        assert dump_schema(old) == dump_schema(fresh_path)


async def test_open__refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(NotAnOpsloomDatabaseError, match="not an opsloom database"):
        await SqliteStore(f"sqlite:///{path}").open()
    assert path.read_bytes().startswith(b"these are my notes")


async def test_open__refuses_another_programs_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    with pytest.raises(NotAnOpsloomDatabaseError, match="another program"):
        await SqliteStore(f"sqlite:///{path}").open()
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.close()
    assert tables == ["customers"]


async def test_open__refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = SqliteStore(f"sqlite:///{path}")
    await store.open()
    await store.create_run(NewRun(id="r", workflow="wf", version="1", input=encode(1)), 1.0)
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {latest_version('sqlite') + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError, match="newer than this opsloom knows"):
        await SqliteStore(f"sqlite:///{path}").open()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    conn.close()


async def test_open__uses_wal_and_full_sync_by_default(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    store = SqliteStore(f"sqlite:///{path}")
    await store.open()
    assert store.synchronous == "FULL"
    await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_sqlite_url__relative_and_absolute() -> None:
    assert sqlite_path("sqlite:///opsloom.db") == "opsloom.db"
    assert sqlite_path("sqlite:////var/lib/o.db") == "/var/lib/o.db"
    with pytest.raises(ConfigurationError):
        sqlite_path("sqlite:///")
    with pytest.raises(ConfigurationError):
        SqliteStore("sqlite:///x.db", synchronous="SOMETIMES")


async def test_group_commit__many_writes_share_transactions(tmp_path: Path) -> None:
    import asyncio

    store = SqliteStore(f"sqlite:///{tmp_path / 'g.db'}")
    await store.open()
    try:
        await asyncio.gather(
            *[
                store.create_run(
                    NewRun(id=f"r{i}", workflow="wf", version="1", input=encode(i)), 1.0
                )
                for i in range(500)
            ]
        )
        batches, ops = store.writer_stats
        assert ops == 500
        assert batches < 50, f"{batches} transactions for 500 concurrent writes"
    finally:
        await store.close()
