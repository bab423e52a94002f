"""Deploying workflow documents: stored, registered and written to the audit log."""

from __future__ import annotations

from opsloom.app import App
from opsloom.store.document import DocumentRecord


async def deploy_document(
    app: App, text: str, source: str, *, actor: str
) -> tuple[DocumentRecord, bool]:
    """Validate, store and register a document version on an open ``app``.

    A new version is audited as ``document.deploy`` by ``actor``; deploying the same text
    again is a no-op that logs nothing.

    Returns:
        The stored record and whether it was new.

    Raises:
        DocumentError: the document is invalid (each problem with its position).
        DocumentVersionExistsError: that version is deployed with another text.
    """
    record, created = await app.documents.deploy(text, source)
    if created:
        await app.audit.append(
            actor,
            "document.deploy",
            f"document:{record.workflow}:{record.version}",
            {"source": source, "digest": record.digest},
        )
    return record, created
