"""Deployed workflow documents as the store keeps them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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


def document_from_row(row: tuple[object, ...]) -> DocumentRecord:
    """A record from a row selected with :data:`DOCUMENT_COLUMNS`."""
    namespace, name, version, text, digest, deployed_at = row
    return DocumentRecord(
        str(namespace),
        str(name),
        str(version),
        str(text),
        str(digest),
        float(deployed_at),  # type: ignore[arg-type]
    )
