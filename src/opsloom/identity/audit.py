"""The tamper-evident audit log: every decision, delegation, escalation, clarification,
cancellation, token and role change, with who made it, when, on what, and its details.

Entries are append-only and hash-chained (see :mod:`opsloom.store.audit`): each is sealed with
the SHA-256 of its content and of the previous entry's hash. :meth:`AuditLog.verify` recomputes
the chain and names the first entry that does not fit: an edited entry no longer matches its
hash, a removed one leaves a gap in the sequence (or behind the recorded head), an entry
re-sealed after an edit no longer matches the next entry's ``prev_hash``, and an entry beyond
the recorded head (added behind the log's back, or hidden by moving the head back) is named too.

Someone who can write to the database could still edit an entry and recompute every hash after
it; the seal stops them: with the audit key at hand (``OPSLOOM_SECRET_KEY`` or its key file),
verification checks each entry's HMAC seal, and names an entry whose seal does not match, or an
entry without a seal after a sealed one. Entries written before the log had a key carry no seal;
the first sealed entry after them vouches for them through its ``prev_hash``.

Example:
    >>> log = AuditLog(app.store, app.clock)                                # doctest: +SKIP
    >>> await log.append("alice", "approval.decide", "task:42", {"approved": True})
    >>> (await log.verify()).ok
    True
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from opsloom.clock import Clock
from opsloom.errors import InputError
from opsloom.store.audit import GENESIS, AuditDraft, AuditEntry, AuditKey, seal_of
from opsloom.store.base import Store

__all__ = ["GENESIS", "AuditDraft", "AuditEntry", "AuditKey", "AuditLog", "VerifyResult"]

#: Entries read per store round trip when walking the whole log.
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What :meth:`AuditLog.verify` found.

    Attributes:
        ok: whether the whole chain is intact.
        checked: how many entries were checked (up to the first bad one).
        first_bad: ``(seq, reason)`` of the first entry that does not fit, or None.
        entry: that entry as stored (None when it is missing altogether).
        sealed: how many of the checked entries carry a seal.
        seals_checked: whether the seals were checked (False: the audit key is not at hand).
    """

    ok: bool
    checked: int
    first_bad: tuple[int, str] | None = None
    entry: AuditEntry | None = None
    sealed: int = 0
    seals_checked: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON form."""
        bad = None
        if self.first_bad is not None:
            bad = {"seq": self.first_bad[0], "reason": self.first_bad[1]}
            if self.entry is not None:
                bad.update(actor=self.entry.actor, action=self.entry.action)
                bad.update(subject=self.entry.subject)
        return {
            "ok": self.ok,
            "checked": self.checked,
            "sealed": self.sealed,
            "seals_checked": self.seals_checked,
            "first_bad": bad,
        }


class AuditLog:
    """Append to, read and verify the audit log of a store.

    Args:
        store: an open store.
        clock: dates the entries.
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def append(
        self, actor: str, action: str, subject: str, data: dict[str, Any] | None = None
    ) -> AuditEntry:
        """Append an entry dated now; returns it with its seq and hash.

        Args:
            actor: who acted (a user id, ``cli:<os user>``, ``system:…``).
            action: what happened, as ``noun.verb`` (``approval.decide``).
            subject: what it happened to, as ``kind:id`` (``task:42``).
            data: JSON details (no NaN or infinities).
        """
        for value, what in ((actor, "actor"), (action, "action"), (subject, "subject")):
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"an audit entry needs a non-empty {what}")
        draft = AuditDraft(actor, action, subject, dict(data or {}), self._clock.now())
        try:
            draft.seal(1, GENESIS)  # refuses what cannot be hashed before it reaches the store
        except (TypeError, ValueError) as exc:
            raise InputError(f"audit data is not JSON: {exc}") from None
        return await self._store.append_audit(draft)

    async def entries(
        self, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Entries in chain order, only those at or after ``since`` (epoch seconds)."""
        return await self._store.audit_entries(since=since, limit=limit)

    async def head(self) -> int:
        """The seq of the last entry the log itself appended (entries beyond it are suspect)."""
        seq, _ = await self._store.audit_head()
        return seq

    async def walk(self, since: float | None = None) -> AsyncIterator[AuditEntry]:
        """Every entry (at or after ``since``) in chain order, read page by page."""
        after = 0
        while True:
            page = await self._store.audit_entries(after_seq=after, since=since, limit=_PAGE)
            for entry in page:
                yield entry
            if len(page) < _PAGE:
                return
            after = page[-1].seq

    async def verify(self) -> VerifyResult:
        """Recompute the chain up to the head, check the seals when the audit key is at hand,
        and name the first entry that does not fit."""
        seals = _Seals(self._store.audit_key)
        result = await self._verify_chain(seals)
        return replace(result, sealed=seals.count, seals_checked=seals.key is not None)

    async def _verify_chain(self, seals: _Seals) -> VerifyResult:
        # The head is read first: entries appended while the walk goes on lie beyond it and
        # are left to the next verification.
        head_seq, head_hash = await self._store.audit_head()
        checked = 0
        prev_hash = GENESIS
        expected = 1
        previous: AuditEntry | None = None
        async for entry in self.walk():
            if entry.seq > head_seq:
                # Appended since the head was read, or written behind the store's back (or
                # the head moved back to hide it): read the head again to tell which.
                head_seq, head_hash = await self._store.audit_head()
                if entry.seq > head_seq:
                    reason = (
                        f"it lies beyond the log head (at {head_seq}): written outside the "
                        "log, or the head was moved back to hide it"
                    )
                    return VerifyResult(False, checked, (entry.seq, reason), entry)
            if entry.seq != expected:
                missing = _span(expected, entry.seq - 1)
                reason = f"{missing} missing: the log goes from entry {expected - 1} to {entry.seq}"
                return VerifyResult(False, checked, (expected, reason))
            problem = _check(entry, prev_hash) or seals.check(entry)
            if problem is not None:
                return VerifyResult(False, checked, (entry.seq, problem), entry)
            prev_hash = entry.hash
            previous = entry
            checked += 1
            expected += 1
        last = expected - 1
        if last < head_seq:
            reason = f"{_span(expected, head_seq)} missing from the end (the head is at {head_seq})"
            return VerifyResult(False, checked, (expected, reason))
        if head_seq and prev_hash != head_hash:
            reason = "its hash is not the one the log head recorded for it"
            return VerifyResult(False, checked - 1, (head_seq, reason), previous)
        return VerifyResult(True, checked)


class _Seals:
    """Checks the seals of the entries of one verification, in chain order."""

    def __init__(self, key: AuditKey | None) -> None:
        self.key = None if key is None else key.get(create=False)
        self.count = 0

    def check(self, entry: AuditEntry) -> str | None:
        """What is wrong with the seal of ``entry`` (the next one in the chain), or None."""
        if entry.mac is None:
            if self.count:
                return (
                    "it has no seal although entries before it are sealed: it was written "
                    "outside opsloom, or its seal was removed"
                )
            return None
        self.count += 1
        if self.key is not None and not hmac.compare_digest(
            entry.mac, seal_of(self.key, entry.hash)
        ):
            return (
                "its seal does not match the audit key: it was changed and hashed again "
                "outside opsloom (or sealed with another key)"
            )
        return None


def _check(entry: AuditEntry, prev_hash: str) -> str | None:
    """What is wrong with ``entry`` following an entry hashed ``prev_hash``, or None."""
    if entry.prev_hash != prev_hash:
        return (
            f"its prev_hash does not match the hash of entry {entry.seq - 1} "
            "(an entry before it was changed and sealed again, or this one was)"
        )
    try:
        computed = entry.computed_hash()
    except ValueError:
        return "its data is not valid JSON any more"
    if computed != entry.hash:
        return "its content (time, actor, action, subject or data) does not match its hash"
    return None


def _span(first: int, last: int) -> str:
    return f"entry {first} is" if first == last else f"entries {first}-{last} are"
