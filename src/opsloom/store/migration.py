"""Versioned schema migrations, one ordered SQL file per version and dialect.

Files live in ``opsloom/store/migrations/<dialect>/NNNN_description.sql``; the number is the
schema version the file brings the database to.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The SQL split into complete statements, to run inside the caller's transaction."""
        out: list[str] = []
        pending = ""
        for line in self.sql.splitlines(keepends=True):
            if not pending and (not line.strip() or line.lstrip().startswith("--")):
                continue
            pending += line
            if sqlite3.complete_statement(pending):
                out.append(pending.strip())
                pending = ""
        if pending.strip():
            raise RuntimeError(f"migration {self.version:04d} ends with an incomplete statement")
        return out


def migrations(dialect: str) -> list[Migration]:
    """All migrations of ``dialect``, in version order, checked for gaps."""
    folder = resources.files("opsloom.store.migrations") / dialect
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"{dialect} migrations have a gap before {migration.version:04d}")
    return found


def latest_version(dialect: str) -> int:
    """The schema version this code writes."""
    return len(migrations(dialect))
