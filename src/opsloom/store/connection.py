"""Connections and their circuit breakers as the store keeps them (SQL shared by both dialects).

A connection's secrets arrive here already sealed (see :mod:`opsloom.connectors.secret`); the
store keeps the token as text and never decrypts it. A breaker row is the last state any worker
moved the connection's breaker to: a write only replaces an older one, so two workers that
open the same breaker at nearly the same time keep the later opening.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from opsloom.store.tx import Transactions, Tx

CONNECTION_COLUMNS = "name, connector, settings, secrets, created_at, updated_at"
BREAKER_COLUMNS = "connection, state, opened_at, reopen_at, failures, changed_at"

#: Insert or replace a connection, keeping its creation time.
SAVE_CONNECTION = (
    f"INSERT INTO connections ({CONNECTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET connector = excluded.connector, "
    "settings = excluded.settings, secrets = excluded.secrets, updated_at = excluded.updated_at"
)
SELECT_CONNECTION = f"SELECT {CONNECTION_COLUMNS} FROM connections WHERE name = ?"
SELECT_CONNECTIONS = f"SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY name"
DELETE_CONNECTION = "DELETE FROM connections WHERE name = ?"
DELETE_BREAKER = "DELETE FROM breakers WHERE connection = ?"
#: A breaker state replaces the stored one only when it is newer.
SAVE_BREAKER = (
    f"INSERT INTO breakers ({BREAKER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (connection) DO UPDATE SET state = excluded.state, "
    "opened_at = excluded.opened_at, reopen_at = excluded.reopen_at, "
    "failures = excluded.failures, changed_at = excluded.changed_at "
    "WHERE breakers.changed_at < excluded.changed_at"
)
SELECT_BREAKERS = f"SELECT {BREAKER_COLUMNS} FROM breakers ORDER BY connection"


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """A stored connection.

    Attributes:
        name: unique name (``ops-slack``).
        connector: the connector it configures.
        settings: the settings that are not secret, as JSON.
        secrets: the sealed secrets (an opaque token; empty when there are none).
        created_at / updated_at: epoch seconds.
    """

    name: str
    connector: str
    settings: dict[str, Any]
    secrets: str
    created_at: float
    updated_at: float

    def params(self) -> tuple[object, ...]:
        """Parameters of :data:`SAVE_CONNECTION`."""
        return (
            self.name,
            self.connector,
            json.dumps(self.settings, sort_keys=True),
            self.secrets,
            self.created_at,
            self.updated_at,
        )


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    """The stored state of one connection's breaker (``closed``, ``open``, ``half_open``)."""

    connection: str
    state: str
    opened_at: float | None
    reopen_at: float | None
    failures: int
    changed_at: float

    def params(self) -> tuple[object, ...]:
        """Parameters of :data:`SAVE_BREAKER`."""
        return (
            self.connection,
            self.state,
            self.opened_at,
            self.reopen_at,
            self.failures,
            self.changed_at,
        )


def connection_from_row(row: Any) -> ConnectionRecord:
    """A record from a row selected with :data:`CONNECTION_COLUMNS`."""
    name, connector, settings, secrets, created_at, updated_at = row
    return ConnectionRecord(
        str(name),
        str(connector),
        json.loads(settings),
        str(secrets),
        float(created_at),
        float(updated_at),
    )


def breaker_from_row(row: Any) -> BreakerRecord:
    """A record from a row selected with :data:`BREAKER_COLUMNS`."""
    connection, state, opened_at, reopen_at, failures, changed_at = row
    return BreakerRecord(
        str(connection),
        str(state),
        None if opened_at is None else float(opened_at),
        None if reopen_at is None else float(reopen_at),
        int(failures),
        float(changed_at),
    )


class ConnectionOps(Transactions):
    """The connection and breaker operations of :class:`~opsloom.store.base.Store`."""

    async def save_connection(self, rec: ConnectionRecord) -> None:
        await self.write(lambda tx: tx.execute(SAVE_CONNECTION, rec.params()))

    async def get_connection(self, name: str) -> ConnectionRecord | None:
        row = await self.read(lambda tx: tx.one(SELECT_CONNECTION, (name,)))
        return None if row is None else connection_from_row(row)

    async def list_connections(self) -> list[ConnectionRecord]:
        rows = await self.read(lambda tx: tx.all(SELECT_CONNECTIONS))
        return [connection_from_row(row) for row in rows]

    async def delete_connection(self, name: str) -> bool:
        async def delete(tx: Tx) -> bool:
            await tx.execute(DELETE_BREAKER, (name,))
            return await tx.execute(DELETE_CONNECTION, (name,)) == 1

        return await self.write(delete)

    async def save_breaker(self, rec: BreakerRecord) -> None:
        await self.write(lambda tx: tx.execute(SAVE_BREAKER, rec.params()))

    async def list_breakers(self) -> list[BreakerRecord]:
        return [
            breaker_from_row(row) for row in await self.read(lambda tx: tx.all(SELECT_BREAKERS))
        ]
