"""The store: the only package that knows SQL."""

from __future__ import annotations

from opsloom.errors import ConfigurationError
from opsloom.store.base import Claim, HeartbeatResult, RunFilter, Store


def open_store(url: str, *, sqlite_synchronous: str = "FULL", postgres_pool_size: int = 8) -> Store:
    """Build the store named by ``url``; call ``open()`` on it next.

    ``sqlite:///file.db`` is the embedded store; ``postgresql://user@host/db?schema=name``
    (or ``postgres://``) the shared one, in schema ``opsloom`` unless ``schema`` says otherwise.
    """
    if url.startswith("sqlite:"):
        from opsloom.store.dialects.sqlite import SqliteStore

        return SqliteStore(url, synchronous=sqlite_synchronous)
    if url.startswith(("postgresql:", "postgres:")):
        from opsloom.store.dialects.postgres import PostgresStore

        return PostgresStore(url, pool_size=postgres_pool_size)
    raise ConfigurationError(
        f"unsupported database URL {url!r} (expected sqlite:///path.db or postgresql://…)"
    )


__all__ = ["Claim", "HeartbeatResult", "RunFilter", "Store", "open_store"]
