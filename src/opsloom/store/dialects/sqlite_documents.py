"""SQL of deployed documents for SQLite (see :mod:`opsloom.store.document`)."""

from __future__ import annotations

import sqlite3

from opsloom.store.document import DOCUMENT_COLUMNS, DocumentRecord, document_from_row


def save(conn: sqlite3.Connection, doc: DocumentRecord) -> tuple[DocumentRecord, bool]:
    """Insert ``doc`` unless its version exists; the stored record and whether it is new."""
    cur = conn.execute(
        f"INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (namespace, name, version) DO NOTHING",
        (doc.namespace, doc.name, doc.version, doc.text, doc.digest, doc.deployed_at),
    )
    if cur.rowcount == 1:
        return doc, True
    found = get(conn, doc.namespace, doc.name, doc.version)
    assert found is not None
    return found, False


def get(
    conn: sqlite3.Connection, namespace: str, name: str, version: str | None
) -> DocumentRecord | None:
    """One version, or the latest deployed when ``version`` is None."""
    if version is None:
        row = conn.execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE namespace = ? AND name = ? "
            "ORDER BY deployed_at DESC, version DESC LIMIT 1",
            (namespace, name),
        ).fetchone()
    else:
        row = conn.execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents "
            "WHERE namespace = ? AND name = ? AND version = ?",
            (namespace, name, version),
        ).fetchone()
    return None if row is None else document_from_row(row)


def list_all(conn: sqlite3.Connection, since: float | None) -> list[DocumentRecord]:
    """Every version (deployed at or after ``since``), oldest first."""
    rows = conn.execute(
        f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE deployed_at >= ? "
        "ORDER BY deployed_at, namespace, name, version",
        (since if since is not None else float("-inf"),),
    ).fetchall()
    return [document_from_row(row) for row in rows]
