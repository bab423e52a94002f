"""SQL on PostgreSQL: one parametrised statement, optionally in a read-only transaction.

Speaks to PostgreSQL with psycopg 3 (already opsloom's driver for its own store). The
connection string is a secret (it usually holds the password). Each call opens a connection,
runs the statement in one transaction with a statement timeout, and commits; values are sent
as parameters (``%s`` or ``%(name)s`` placeholders), never pasted into the SQL text.

**Read-only** (the connection's ``read_only``, or a call's ``read_only: true``) runs the
statement in a ``READ ONLY`` transaction: PostgreSQL itself refuses any write
(``25006 read_only_sql_transaction``), whatever the SQL says, so a runbook's diagnostic query
cannot change data. A connection marked read-only cannot be overridden by a call.

Failures: a refused or dropped connection, a serialization failure or deadlock, and an
administrator's shutdown are retried; a syntax error, a constraint violation, a refused write,
a statement timeout and other SQL errors fail the step with the server's SQLSTATE and message.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector
from opsloom.errors import ConnectorPermanentError, ConnectorRetryableError

#: SQLSTATE classes worth another try: connection exception, transaction rollback
#: (serialization failure, deadlock), insufficient resources, operator intervention.
_RETRYABLE = ("08", "40", "53", "57P")


class SqlSettings(ConnectionSettings):
    """A PostgreSQL database."""

    dsn: SecretStr = Field(description="postgresql://user:password@host:5432/db (a secret).")
    read_only: bool = Field(default=False, description="Every statement read-only.")
    max_rows: int = Field(default=1000, ge=1, le=100_000, description="Rows returned at most.")


connector = Connector("sql", SqlSettings, title="SQL (PostgreSQL)", doc=__doc__ or "")


class Query(BaseModel):
    """One SQL statement and its parameters."""

    sql: str = Field(min_length=1, description="With %s or %(name)s placeholders.")
    params: list[Any] | dict[str, Any] | None = None
    read_only: bool = Field(default=False, description="Run in a read-only transaction.")
    max_rows: int | None = Field(default=None, ge=1, le=100_000)


class Result(BaseModel):
    """The rows a statement returned (if any) and how many rows it touched."""

    columns: list[str]
    rows: list[dict[str, Any]]
    row_count: int = Field(
        description="Rows the statement returned (all, even past max_rows) or changed."
    )
    truncated: bool = Field(description="More rows than max_rows were available.")
    read_only: bool


def json_value(value: Any) -> Any:
    """A column value as JSON: times as ISO 8601, decimals as numbers, bytes as base64."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)


def _failure(exc: Exception, what: str) -> ConnectorPermanentError | ConnectorRetryableError:
    import psycopg

    state = getattr(exc, "sqlstate", None) or ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if state == "25006":
        return ConnectorPermanentError(f"{what}: refused in a read-only transaction: {text}")
    retry = state.startswith(_RETRYABLE) or (
        not state and isinstance(exc, psycopg.OperationalError)
    )
    kind = ConnectorRetryableError if retry else ConnectorPermanentError
    return kind(f"{what}: {f'SQLSTATE {state}: ' if state else ''}{text}")


@connector.action
async def query(ctx: ActionContext[SqlSettings], data: Query) -> Result:
    """Run one parametrised SQL statement; rows come back as objects by column name."""
    return await run(ctx, data)


async def run(ctx: ActionContext[SqlSettings], data: Query) -> Result:
    """What :data:`query` does (also the connection check)."""
    import psycopg

    settings = ctx.settings
    read_only = settings.read_only or data.read_only
    limit = min(data.max_rows or settings.max_rows, settings.max_rows)
    what = f"SQL on connection {ctx.connection!r}"
    try:
        conn = await psycopg.AsyncConnection.connect(
            settings.dsn.get_secret_value(), connect_timeout=max(1, int(min(5, settings.timeout)))
        )
    except psycopg.Error as exc:
        raise _failure(exc, what) from None
    try:
        await conn.set_read_only(read_only)
        async with conn.transaction(), conn.cursor() as cursor:
            timeout_ms = str(int(settings.timeout * 1000))
            await cursor.execute("SELECT set_config('statement_timeout', %s, true)", [timeout_ms])
            await cursor.execute(data.sql.encode(), data.params)
            columns = [c.name for c in cursor.description or []]
            rows: list[tuple[Any, ...]] = []
            if cursor.description is not None:
                rows = await cursor.fetchmany(limit + 1)
            count = cursor.rowcount
    except psycopg.Error as exc:
        raise _failure(exc, what) from None
    finally:
        await conn.close()
    truncated = len(rows) > limit
    return Result(
        columns=columns,
        rows=[
            {c: json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows[:limit]
        ],
        row_count=count,
        truncated=truncated,
        read_only=read_only,
    )


@connector.connection_check
async def _check(ctx: ActionContext[SqlSettings]) -> str:
    asked = Query(sql="SELECT current_user AS who, current_database() AS db, version() AS v")
    row = (await run(ctx, asked)).rows[0]
    server = str(row["v"]).split(" on ")[0]
    return f"{server}: database {row['db']} as {row['who']}"
