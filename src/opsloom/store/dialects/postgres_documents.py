"""SQL of deployed documents for PostgreSQL (see :mod:`opsloom.store.document`)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from opsloom.store.document import DOCUMENT_COLUMNS, DocumentRecord, document_from_row

Conn = AsyncConnection[Any]


async def save(conn: Conn, doc: DocumentRecord) -> tuple[DocumentRecord, bool]:
    """Insert ``doc`` unless its version exists; the stored record and whether it is new."""
    cur = await conn.execute(
        f"INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (namespace, name, version) DO NOTHING",
        (doc.namespace, doc.name, doc.version, doc.text, doc.digest, doc.deployed_at),
    )
    if cur.rowcount == 1:
        return doc, True
    found = await get(conn, doc.namespace, doc.name, doc.version)
    assert found is not None
    return found, False


async def get(conn: Conn, namespace: str, name: str, version: str | None) -> DocumentRecord | None:
    """One version, or the latest deployed when ``version`` is None."""
    if version is None:
        cur = await conn.execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE namespace = %s AND name = %s "
            "ORDER BY deployed_at DESC, version DESC LIMIT 1",
            (namespace, name),
        )
    else:
        cur = await conn.execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents "
            "WHERE namespace = %s AND name = %s AND version = %s",
            (namespace, name, version),
        )
    row = await cur.fetchone()
    return None if row is None else document_from_row(tuple(row))


async def list_all(conn: Conn, since: float | None) -> list[DocumentRecord]:
    """Every version (deployed at or after ``since``), oldest first."""
    if since is None:
        cur = await conn.execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents "
            "ORDER BY deployed_at, namespace, name, version"
        )
    else:
        cur = await conn.execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE deployed_at >= %s "
            "ORDER BY deployed_at, namespace, name, version",
            (since,),
        )
    return [document_from_row(tuple(row)) for row in await cur.fetchall()]
