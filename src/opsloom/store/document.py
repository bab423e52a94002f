"""Deployed workflow documents as the store keeps them: one immutable row per version."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from opsloom.store.tx import Row, Transactions, Tx

#: Columns of the ``documents`` table, in the order rows are read.
DOCUMENT_COLUMNS = "namespace, name, version, text, digest, deployed_at"


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """One deployed version of a document: its text as deployed, and when.

    Attributes:
        namespace / name / version: the document's identity (``document.*`` of its text).
        text: the YAML or JSON text, as deployed.
        digest: SHA-256 of ``text``; deploying the same text again is a no-op.
        deployed_at: epoch seconds of the first deploy of this version.
    """

    namespace: str
    name: str
    version: str
    text: str
    digest: str
    deployed_at: float

    @property
    def workflow(self) -> str:
        """The engine workflow name of the document: ``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(
        cls, namespace: str, name: str, version: str, text: str, deployed_at: float
    ) -> DocumentRecord:
        """A record for ``text``, with its digest computed."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls(namespace, name, version, text, digest, deployed_at)


def document_from_row(row: Row) -> DocumentRecord:
    """A record from a row selected with :data:`DOCUMENT_COLUMNS`."""
    namespace, name, version, text, digest, deployed_at = row
    return DocumentRecord(
        str(namespace), str(name), str(version), str(text), str(digest), float(deployed_at)
    )


async def _get(tx: Tx, namespace: str, name: str, version: str | None) -> DocumentRecord | None:
    if version is None:
        row = await tx.one(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE namespace = ? AND name = ? "
            "ORDER BY deployed_at DESC, version DESC LIMIT 1",
            (namespace, name),
        )
    else:
        row = await tx.one(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents "
            "WHERE namespace = ? AND name = ? AND version = ?",
            (namespace, name, version),
        )
    return None if row is None else document_from_row(row)


async def _list(tx: Tx, since: float | None) -> list[DocumentRecord]:
    where, params = ("", ()) if since is None else ("WHERE deployed_at >= ? ", (since,))
    rows = await tx.all(
        f"SELECT {DOCUMENT_COLUMNS} FROM documents {where}"
        "ORDER BY deployed_at, namespace, name, version",
        params,
    )
    return [document_from_row(row) for row in rows]


class DocumentOps(Transactions):
    """The document operations of :class:`~opsloom.store.base.Store`."""

    async def save_document(self, doc: DocumentRecord) -> tuple[DocumentRecord, bool]:
        async def save(tx: Tx) -> tuple[DocumentRecord, bool]:
            added = await tx.execute(
                f"INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (namespace, name, version) DO NOTHING",
                (doc.namespace, doc.name, doc.version, doc.text, doc.digest, doc.deployed_at),
            )
            if added == 1:
                return doc, True
            found = await _get(tx, doc.namespace, doc.name, doc.version)
            assert found is not None
            return found, False

        return await self.write(save)

    async def get_document(
        self, namespace: str, name: str, version: str | None = None
    ) -> DocumentRecord | None:
        return await self.read(lambda tx: _get(tx, namespace, name, version))

    async def list_documents(self, since: float | None = None) -> list[DocumentRecord]:
        return await self.read(lambda tx: _list(tx, since))
