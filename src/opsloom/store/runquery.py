"""The WHERE clause of run listings, written once for both dialects (``?`` placeholders)."""

from __future__ import annotations

from typing import Any

from opsloom.store.base import RunFilter

#: Newest first; the id breaks ties of creation time, as the keyset cursor does.
RUN_ORDER = "created_at DESC, id DESC"
#: How each dialect finds text inside the id (text) and the input (JSON bytes).
SQLITE_TEXT = "(instr(id, ?) > 0 OR instr(input, ?) > 0)"
POSTGRES_TEXT = "(strpos(id, ?) > 0 OR position(?::bytea IN input) > 0)"
TEXT = {"sqlite": SQLITE_TEXT, "postgres": POSTGRES_TEXT}


def run_where(flt: RunFilter, text_clause: str, *, paged: bool = True) -> tuple[str, list[Any]]:
    """``WHERE …`` (or ``""``) and its parameters for ``flt``.

    ``paged=False`` leaves out the status and the keyset cursor (for counts per status).
    """
    clauses: list[str] = []
    params: list[Any] = []
    if paged and flt.status is not None:
        clauses.append("status = ?")
        params.append(str(flt.status))
    if flt.quarantined:
        clauses.append("quarantined_at IS NOT NULL AND completed_at IS NULL")
    if flt.workflow is not None:
        clauses.append("workflow = ?")
        params.append(flt.workflow)
    if flt.parent_id is not None:
        clauses.append("parent_id = ?")
        params.append(flt.parent_id)
    if flt.created_from is not None:
        clauses.append("created_at >= ?")
        params.append(flt.created_from)
    if flt.created_to is not None:
        clauses.append("created_at < ?")
        params.append(flt.created_to)
    for key, value in flt.labels:
        clauses.append("id IN (SELECT run_id FROM run_labels WHERE key = ? AND value = ?)")
        params += [key, value]
    if flt.text:
        clauses.append(text_clause)
        params += [flt.text, flt.text.encode()]
    if paged and flt.before is not None:
        # Row-value comparison keeps the (created_at, id) index usable in both dialects.
        clauses.append("(created_at, id) < (?, ?)")
        params += [flt.before[0], flt.before[1]]
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params
