"""The audit log as the store keeps it: entries, their hash chain, and dialect-neutral SQL.

Each entry is sealed with the SHA-256 of a canonical encoding of its content (sorted-key JSON
of ``seq``, ``at``, ``actor``, ``action``, ``subject``, ``data`` and ``prev_hash``), where
``prev_hash`` is the hash of the entry before it (:data:`GENESIS` for the first). Changing,
removing or inserting an entry anywhere breaks the chain from that point on.

An appender reads the head and inserts the entry in one transaction, with the head row locked
(``FOR UPDATE`` on PostgreSQL, where processes on other machines append to the same log; SQLite's
writer holds ``BEGIN IMMEDIATE``): the next appender sees this entry, and the chain cannot fork.

A hash chain alone stops nobody who can write to the database: they can edit an entry and
recompute every hash after it. So each entry is also **sealed** with a key kept outside the
database (:class:`AuditKey`, derived from the connection secret key): ``mac`` is the
HMAC-SHA256 of the entry's hash under that key. Without the key an edited entry cannot be sealed
again, and because each hash covers the one before it, the first sealed entry also vouches for
every entry written before the log had a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsloom.clock import to_datetime
from opsloom.store.tx import Row, Transactions, Tx

#: The ``prev_hash`` of the first entry.
GENESIS = "0" * 64

AUDIT_COLUMNS = "seq, at, actor, action, subject, data, prev_hash, hash, mac"
HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1"
MOVE_HEAD = "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"
INSERT_ENTRY = f"INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
#: Entries after a seq, in chain order (``{where}``: extra conditions, ``{limit}``: LIMIT ?).
SELECT_ENTRIES = f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > ? {{where}} ORDER BY seq"


def canonical(value: Any) -> str:
    """The one JSON text of ``value`` that is hashed: sorted keys, no spaces, UTF-8 as is."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def entry_hash(
    seq: int, at: float, actor: str, action: str, subject: str, data: Any, prev_hash: str
) -> str:
    """The SHA-256 (hex) sealing an entry with this content."""
    content = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "data": data,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical(content).encode("utf-8")).hexdigest()


class AuditKey:
    """The key that seals audit entries, read when first needed and then kept.

    Args:
        load: gives the key's bytes; ``create`` says whether it may make a key that does not
            exist yet (appending does; verifying does not, and checks no seal without one).
    """

    __slots__ = ("_key", "_load")

    def __init__(self, load: Callable[[bool], bytes | None]) -> None:
        self._load = load
        self._key: bytes | None = None

    def get(self, *, create: bool) -> bytes | None:
        """The key, or None when there is none and ``create`` is false."""
        if self._key is None:
            self._key = self._load(create)
        return self._key


def seal_of(key: bytes, digest: str) -> str:
    """The seal (hex HMAC-SHA256 under ``key``) of an entry hashed ``digest``."""
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An entry to append: who did what to what, when, with which details.

    Attributes:
        actor: who acted: a user id, ``cli:<os user>``, ``system:…``.
        action: what happened, as ``noun.verb`` (``role.grant``, ``approval.decide``).
        subject: what it happened to, as ``kind:id`` (``user:alice``, ``token:…``).
        data: details; must be JSON (no NaN or infinities).
        at: epoch seconds, from the caller's clock.
    """

    actor: str
    action: str
    subject: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0

    def seal(self, seq: int, prev_hash: str, key: bytes | None = None) -> AuditEntry:
        """The entry this draft becomes at position ``seq`` after an entry hashed ``prev_hash``,
        sealed with ``key`` when one is given."""
        # Hash what a reader will find: the stored text parsed back (tuples become lists,
        # keys strings) and the time as a float, so verifying gives the same digest.
        data_json = canonical(self.data)
        at = float(self.at)
        data = json.loads(data_json)
        digest = entry_hash(seq, at, self.actor, self.action, self.subject, data, prev_hash)
        mac = None if key is None else seal_of(key, digest)
        return AuditEntry(
            seq, at, self.actor, self.action, self.subject, data_json, prev_hash, digest, mac
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry of the audit log as stored.

    ``data_json`` is the canonical JSON text of the details as written; :attr:`data` parses
    it (a tampered text that is no longer JSON raises ``ValueError``). ``mac`` is the entry's
    seal under the audit key (None: written without a key).
    """

    seq: int
    at: float
    actor: str
    action: str
    subject: str
    data_json: str
    prev_hash: str
    hash: str
    mac: str | None = None

    @property
    def data(self) -> Any:
        """The details of the entry."""
        return json.loads(self.data_json)

    def params(self) -> tuple[Any, ...]:
        """The values of an INSERT of this entry, in :data:`AUDIT_COLUMNS` order."""
        return (
            self.seq,
            self.at,
            self.actor,
            self.action,
            self.subject,
            self.data_json,
            self.prev_hash,
            self.hash,
            self.mac,
        )

    def computed_hash(self) -> str:
        """The hash this entry's stored content gives (``ValueError`` if data is not JSON)."""
        return entry_hash(
            self.seq, self.at, self.actor, self.action, self.subject, self.data, self.prev_hash
        )

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON form (``at`` as hashed, ``time`` as ISO 8601 UTC for people)."""
        moment = to_datetime(self.at)
        return {
            "seq": self.seq,
            "at": self.at,
            "time": None if moment is None else moment.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "mac": self.mac,
        }


def entry_from_row(row: Row) -> AuditEntry:
    """An entry from a row of :data:`AUDIT_COLUMNS`."""
    seq, at, actor, action, subject, data, prev_hash, digest, mac = row
    return AuditEntry(
        int(seq),
        float(at),
        actor,
        action,
        subject,
        str(data),
        str(prev_hash),
        str(digest),
        None if mac is None else str(mac),
    )


def entries_query(since: float | None, limit: int | None) -> tuple[str, tuple[Any, ...]]:
    """The SELECT for entries after a seq (first parameter, left to the caller) and its rest."""
    where = ""
    params: tuple[Any, ...] = ()
    if since is not None:
        where = "AND at >= ?"
        params += (since,)
    text = SELECT_ENTRIES.format(where=where)
    if limit is not None:
        text += " LIMIT ?"
        params += (limit,)
    return text, params


async def append_audit_entry(tx: Tx, draft: AuditDraft, key: bytes | None) -> AuditEntry:
    """Append ``draft`` after the current head, inside the caller's write transaction, sealed
    with ``key`` (see :meth:`AuditOps.audit_seal_key`).

    For store operations that record their audit entry in the transaction of the change itself.
    """
    row = await tx.one(HEAD + tx.lock("FOR UPDATE"))
    assert row is not None, "audit_head is created by migration 0008"
    entry = draft.seal(int(row[0]) + 1, str(row[1]), key)
    await tx.execute(INSERT_ENTRY, entry.params())
    await tx.execute(MOVE_HEAD, (entry.seq, entry.hash))
    return entry


class AuditOps(Transactions):
    """The audit log operations of :class:`~opsloom.store.base.Store`."""

    #: Seals appended entries; set by the application (none: entries are only hash-chained).
    audit_key: AuditKey | None = None

    def audit_seal_key(self) -> bytes | None:
        """The key to seal an entry appended now (read, or created, before the write queues)."""
        return None if self.audit_key is None else self.audit_key.get(create=True)

    async def append_audit(self, draft: AuditDraft) -> AuditEntry:
        key = self.audit_seal_key()
        return await self.write(lambda tx: append_audit_entry(tx, draft, key))

    async def audit_entries(
        self, *, after_seq: int = 0, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        text, params = entries_query(since, limit)
        rows = await self.read(lambda tx: tx.all(text, (after_seq, *params)))
        return [entry_from_row(row) for row in rows]

    async def audit_head(self) -> tuple[int, str]:
        row = await self.read(lambda tx: tx.one(HEAD))
        assert row is not None, "audit_head is created by migration 0008"
        return int(row[0]), str(row[1])
