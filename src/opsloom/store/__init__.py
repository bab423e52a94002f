"""The store: the only package that knows SQL."""

from __future__ import annotations

from opsloom.errors import ConfigurationError
from opsloom.store.base import Claim, Fence, HeartbeatResult, NewRun, RunFilter, Store


def open_store(url: str, *, sqlite_synchronous: str = "FULL") -> Store:
    """Build the store named by ``url`` (``sqlite:///file.db``); call ``open()`` on it next."""
    if url.startswith("sqlite:"):
        from opsloom.store.dialects.sqlite import SqliteStore

        return SqliteStore(url, synchronous=sqlite_synchronous)
    if url.startswith(("postgresql:", "postgres:")):
        raise ConfigurationError("the PostgreSQL store is not available in this version")
    raise ConfigurationError(f"unsupported database URL {url!r} (expected sqlite:///path.db)")


__all__ = ["Claim", "Fence", "HeartbeatResult", "NewRun", "RunFilter", "Store", "open_store"]
