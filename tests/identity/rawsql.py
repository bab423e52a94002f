"""Raw SQL on a test database behind the store's back: what someone tampering with it does."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from psycopg import sql

from opsloom.store.dialects.postgres import postgres_target
from opsloom.store.dialects.sqlite import sqlite_path


def execute(db_url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement (``?`` placeholders) outside the store; its rows, if any."""
    if db_url.startswith("sqlite:"):
        conn = sqlite3.connect(sqlite_path(db_url))
        try:
            with conn:
                return conn.execute(statement, params).fetchall()
        finally:
            conn.close()
    conninfo, schema = postgres_target(db_url)
    with psycopg.connect(conninfo, autocommit=True) as pg:
        pg.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = pg.execute(statement.replace("?", "%s").encode(), params)
        return cur.fetchall() if cur.description else []


def everything_stored(db_url: str) -> bytes:
    """Every byte the database holds for the test: the SQLite files, or every row as text."""
    if db_url.startswith("sqlite:"):
        path = sqlite_path(db_url)
        out = b""
        for suffix in ("", "-wal"):
            try:
                with open(path + suffix, "rb") as handle:
                    out += handle.read()
            except FileNotFoundError:
                pass
        return out
    conninfo, schema = postgres_target(db_url)
    with psycopg.connect(conninfo, autocommit=True) as pg:
        tables = [
            row[0]
            for row in pg.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        ]
        out = b""
        for table in tables:
            query = sql.SQL("SELECT t::text FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            out += "\n".join(row[0] for row in pg.execute(query)).encode()
        return out
