"""Worker slots of a SQLite database: byte ``n`` of ``<database>-workers``, locked by its holder.

A worker process holds slot ``n`` with an advisory record lock (``fcntl``) on one byte of a
file beside the database. The kernel drops the lock when the process ends, however it ends
(SIGKILL included), so a lock that can be taken means that nobody alive holds the slot: a
worker restarted after a crash takes the lowest free slot — the one its predecessor held — and
may resume that predecessor's runs at once instead of waiting for their leases to expire.

Record locks belong to a process, not to a file descriptor: a process never conflicts with
itself, and closing any descriptor of the file drops all its locks on it. So each process keeps
one descriptor per file and remembers the slots its own workers hold (``_files`` below is that
per-process state, as the kernel's locks are).
"""

from __future__ import annotations

import fcntl
import os
import threading

from opsloom.store.base import MAX_WORKER_SLOTS


class _SlotFile:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.held: set[int] = set()


_files: dict[str, _SlotFile] = {}
_guard = threading.Lock()


def _file(path: str) -> _SlotFile:
    found = _files.get(path)
    if found is None:
        found = _files[path] = _SlotFile(path)
    return found


def _try_lock(fd: int, slot: int) -> bool:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
    except OSError:
        return False
    return True


def take_slot(path: str) -> int | None:
    """Hold the lowest slot of ``path`` that no living process holds; ``None`` if none is."""
    with _guard:
        slots = _file(path)
        for slot in range(MAX_WORKER_SLOTS):
            if slot not in slots.held and _try_lock(slots.fd, slot):
                slots.held.add(slot)
                return slot
    return None


def slot_free(path: str, slot: int) -> bool:
    """Nobody alive holds ``slot`` (a worker of this process holding it counts as alive)."""
    with _guard:
        slots = _file(path)
        if slot in slots.held or not _try_lock(slots.fd, slot):
            return False
        fcntl.lockf(slots.fd, fcntl.LOCK_UN, 1, slot)
        return True


def give_back(path: str, slot: int) -> None:
    """Stop holding ``slot``; the file is closed when this process holds no slot of it."""
    with _guard:
        slots = _files.get(path)
        if slots is None or slot not in slots.held:
            return
        fcntl.lockf(slots.fd, fcntl.LOCK_UN, 1, slot)
        slots.held.discard(slot)
        if not slots.held:
            os.close(slots.fd)
            del _files[path]
