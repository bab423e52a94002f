"""PostgreSQL specifics: migrations, schema selection, refusing foreign or newer schemas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from opsloom.codec import encode
from opsloom.errors import NotAnOpsloomDatabaseError, SchemaTooNewError
from opsloom.model import RunStatus, StepKind, StepRecord, StepStatus
from opsloom.model.run import NewRun
from opsloom.store import open_store
from opsloom.store.dialects.postgres import PostgresStore, postgres_target
from opsloom.store.migration import latest_version, migrations


def connect(url: str) -> tuple[psycopg.Connection[Any], str]:
    conninfo, schema = postgres_target(url)
    return psycopg.connect(conninfo, autocommit=True), schema


def build_old(url: str, version: int) -> None:
    """A schema as an older opsloom left it: migrations up to ``version`` only."""
    conn, schema = connect(url)
    with conn, conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        for migration in migrations("postgres")[:version]:
            conn.execute(migration.sql.encode())
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        conn.execute(
            "INSERT INTO runs (id, workflow, version, status, input, created_at, updated_at) "
            "VALUES ('old', 'wf', '1', 'completed', '1', 1.0, 1.0)"
        )


def dump_schema(url: str) -> list[tuple[Any, ...]]:
    """Columns, indexes and constraints of a store's schema, without the schema's name."""
    conn, schema = connect(url)
    with conn:
        columns = conn.execute(
            "SELECT 'column', table_name, column_name, ordinal_position, data_type, "
            "is_nullable, column_default, is_identity FROM information_schema.columns "
            "WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (schema,),
        ).fetchall()
        indexes = conn.execute(
            "SELECT 'index', tablename, indexname, replace(indexdef, %s, '') FROM pg_indexes "
            "WHERE schemaname = %s ORDER BY tablename, indexname",
            (f"{schema}.", schema),
        ).fetchall()
        constraints = conn.execute(
            "SELECT 'constraint', c.conrelid::regclass::text, c.conname, c.contype, "
            "pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_namespace n "
            "ON n.oid = c.connamespace WHERE n.nspname = %s ORDER BY 2, 3",
            (schema,),
        ).fetchall()
        version = conn.execute(
            sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(schema))
        ).fetchall()
    rows = [*columns, *indexes, *constraints, ("version", *version)]
    return [tuple(str(v).replace(f"{schema}.", "") for v in row) for row in rows]


async def test_upgrade__old_schema_equals_fresh_one(postgres_schemas: Callable[[], str]) -> None:
    assert latest_version("postgres") >= 2
    fresh = postgres_schemas()
    store = PostgresStore(fresh)
    await store.open()
    assert await store.schema_version() == latest_version("postgres")
    await store.close()
    expected = dump_schema(fresh)
    for version in range(1, latest_version("postgres")):
        old = postgres_schemas()
        build_old(old, version)
        upgraded = PostgresStore(old)
        await upgraded.open()
        run = await upgraded.get_run("old")
        await upgraded.close()
        assert run is not None and run.input == 1, f"data kept across the upgrade from {version}"
        assert dump_schema(old) == expected, f"upgraded from version {version}"


async def test_open__refuses_a_newer_schema(postgres_schema_url: str) -> None:
    store = PostgresStore(postgres_schema_url)
    await store.open()
    await store.create_run(NewRun(id="r", workflow="wf", version="1", input=encode(1)), 1.0)
    await store.close()
    conn, schema = connect(postgres_schema_url)
    with conn:
        conn.execute(
            sql.SQL("UPDATE {}.schema_version SET version = %s").format(sql.Identifier(schema)),
            (latest_version("postgres") + 1,),
        )
    with pytest.raises(SchemaTooNewError, match="newer than this opsloom knows"):
        await PostgresStore(postgres_schema_url).open()
    conn, schema = connect(postgres_schema_url)
    with conn:
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.runs").format(sql.Identifier(schema))
        ).fetchone()
    assert count == (1,)


async def test_open__refuses_another_programs_schema(postgres_schema_url: str) -> None:
    conn, schema = connect(postgres_schema_url)
    with conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {}.customers (id integer)").format(sql.Identifier(schema))
        )
    with pytest.raises(NotAnOpsloomDatabaseError, match="another program"):
        await PostgresStore(postgres_schema_url).open()


async def test_open__concurrent_opens_of_a_fresh_schema_both_succeed(
    postgres_schema_url: str,
) -> None:
    stores = [PostgresStore(postgres_schema_url) for _ in range(4)]
    await asyncio.gather(*[store.open() for store in stores])
    try:
        versions = [await store.schema_version() for store in stores]
        assert versions == [latest_version("postgres")] * 4
    finally:
        for store in stores:
            await store.close()


async def test_open__schema_from_url_or_argument(postgres_schemas: Callable[[], str]) -> None:
    url = postgres_schemas()
    conninfo, schema = postgres_target(url)
    assert "schema=" not in conninfo and schema.startswith("opsloom_test_")
    assert postgres_target("postgres://u@h/db")[1] == "opsloom"
    assert postgres_target("postgresql://u@h/db?sslmode=disable", "other") == (
        "postgresql://u@h/db?sslmode=disable",
        "other",
    )
    store = open_store(url)
    assert isinstance(store, PostgresStore) and store.schema == schema
    await store.open()
    try:
        timeout = await store.read(lambda tx: tx.one("SHOW statement_timeout"))
        assert timeout == ("30s",)
    finally:
        await store.close()


async def test_writer__posted_writes_apply_in_call_order(postgres_schema_url: str) -> None:
    store = PostgresStore(postgres_schema_url)
    await store.open()
    try:
        await store.create_run(NewRun(id="r", workflow="wf", version="1", input=encode(1)), 1.0)
        fence = (await store.claim("w", frozenset({"wf@1"}), 1, 1.0, 30))[0].fence
        posted = store.record_step(
            fence,
            StepRecord(
                run_id="r", seq=1, kind=StepKind.VALUE, name="now", status=StepStatus.COMPLETED
            ),
        )
        await store.finish_run(fence, RunStatus.COMPLETED, encode(2), None, 2.0)
        await posted
        run = await store.get_run("r", with_steps=True)
        assert run is not None and run.status is RunStatus.COMPLETED
        assert [s.seq for s in run.steps] == [1]
    finally:
        await store.close()


async def test_group_commit__many_writes_share_transactions(postgres_schema_url: str) -> None:
    store = PostgresStore(postgres_schema_url)
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
