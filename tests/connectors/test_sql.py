"""SQL connector against the real PostgreSQL test server, in a schema of its own; and a
runbook document that queries it read-only, opens a Linear issue and notifies a chat."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from opsloom import App
from opsloom.connectors.builtin import sql as sqlc
from opsloom.errors import ConnectorPermanentError, ConnectorRetryableError, InputError


@pytest.fixture
def dsn(postgres_schemas: Callable[[], str]) -> str:
    """A connection string whose search path is a fresh schema holding a ``hosts`` table
    (the schema is one ``postgres_schemas`` names, and drops afterwards)."""
    server, schema = postgres_schemas().rsplit("schema=", 1)
    server = server.rstrip("?&")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.hosts (name text PRIMARY KEY, disk numeric, "
                "seen timestamptz, tags text[], facts jsonb)"
            ).format(sql.Identifier(schema))
        )
    separator = "&" if "?" in server else "?"
    return f"{server}{separator}options={quote(f'-csearch_path={schema}')}"


async def add(app: App, name: str, dsn: str, **more: object) -> None:
    await app.connections.add_connection(name, "sql", {"dsn": dsn, **more})


async def test_query__parameters_and_json_rows(ops: App, dsn: str) -> None:
    await add(ops, "db", dsn)
    wrote = await ops.connections.call(
        sqlc.query,
        "db",
        {
            "sql": "INSERT INTO hosts VALUES (%s, %s, '2026-12-07T10:00:00Z', %s, %s), "
            "(%s, 42, NULL, NULL, NULL)",
            "params": ["db-1", 97.5, ["sev1"], '{"rack": 4}', "db-2; DROP TABLE hosts"],
        },
    )
    assert wrote["row_count"] == 2 and wrote["columns"] == [] and wrote["rows"] == []
    out = await ops.connections.call(
        sqlc.query,
        "db",
        {"sql": "SELECT * FROM hosts WHERE disk > %(min)s ORDER BY name", "params": {"min": 40}},
    )
    assert out["columns"] == ["name", "disk", "seen", "tags", "facts"]
    assert out["rows"][0] == {
        "name": "db-1",
        "disk": 97.5,
        "seen": "2026-12-07T10:00:00+00:00",
        "tags": ["sev1"],
        "facts": {"rack": 4},
    }
    assert out["rows"][1]["name"] == "db-2; DROP TABLE hosts" and out["rows"][1]["disk"] == 42


async def test_read_only__the_server_refuses_a_write(ops: App, dsn: str) -> None:
    await add(ops, "db", dsn)
    with pytest.raises(ConnectorPermanentError, match="read-only transaction"):
        await ops.connections.call(
            sqlc.query,
            "db",
            {"sql": "INSERT INTO hosts (name) VALUES ('x')", "read_only": True},
        )
    # A write inside a SELECT, or after one, is refused by the server, not by parsing the SQL;
    # a call cannot lift the connection's read-only.
    await add(ops, "ro", dsn, read_only=True)
    with pytest.raises(ConnectorPermanentError, match=r"25006|read-only"):
        await ops.connections.call(
            sqlc.query,
            "ro",
            {
                "sql": "WITH gone AS (DELETE FROM hosts RETURNING name) SELECT count(*) FROM gone",
                "read_only": False,
            },
        )
    with pytest.raises(ConnectorPermanentError, match="read-only"):
        await ops.connections.call(
            sqlc.query, "ro", {"sql": "SELECT 1; CREATE TABLE sneaky (x int)"}
        )
    out = await ops.connections.call(sqlc.query, "ro", {"sql": "SELECT count(*) AS n FROM hosts"})
    assert out == {
        "columns": ["n"],
        "rows": [{"n": 0}],
        "row_count": 1,
        "truncated": False,
        "read_only": True,
    }


async def test_max_rows__truncates_and_says_so(ops: App, dsn: str) -> None:
    await add(ops, "db", dsn, max_rows=5)
    out = await ops.connections.call(
        sqlc.query, "db", {"sql": "SELECT g FROM generate_series(1, 12) g", "max_rows": 50}
    )
    assert [r["g"] for r in out["rows"]] == [1, 2, 3, 4, 5]
    assert out["truncated"] is True and out["row_count"] == 12


async def test_errors__sql_is_permanent_connection_is_retryable(ops: App, dsn: str) -> None:
    await add(ops, "db", dsn)
    with pytest.raises(ConnectorPermanentError, match="SQLSTATE 42P01"):
        await ops.connections.call(sqlc.query, "db", {"sql": "SELECT * FROM nowhere"})
    with pytest.raises(ConnectorPermanentError, match="SQLSTATE 23505"):
        for _ in range(2):
            await ops.connections.call(
                sqlc.query, "db", {"sql": "INSERT INTO hosts (name) VALUES ('dup')"}
            )
    await add(ops, "dead", "postgresql://nobody:s3cret-pw@127.0.0.1:1/none", timeout=2)
    with pytest.raises(ConnectorRetryableError) as caught:
        await ops.connections.call(sqlc.query, "dead", {"sql": "SELECT 1"})
    assert "s3cret-pw" not in str(caught.value)
    with pytest.raises(InputError, match="dsn"):
        await ops.connections.add_connection("none", "sql", {})


async def test_connection_check__names_server_and_user(ops: App, dsn: str) -> None:
    await add(ops, "db", dsn)
    line = await ops.connections.test_connection("db")
    assert line.startswith("PostgreSQL ") and "database test" in line
    shown = await ops.connections.connection("db")
    assert shown["secrets"] == ["dsn"] and "dsn" not in shown["settings"]


RUNBOOK = """
document:
  dsl: '1.0.3'
  namespace: ops
  name: full-disks
  version: '1.0.0'
do:
  - find:
      call: sql-query:1.0.0@default
      with:
        connection: reporting
        sql: SELECT name, disk FROM hosts WHERE disk > %(limit)s ORDER BY name
        params:
          limit: ${ .limit }
      export:
        as: '${ { hosts: [.rows[].name] } }'
  - ticket:
      call: linear-create-issue:1.0.0@default
      with:
        connection: linear
        team_id: team-ops
        title: ${ "Disks over " + ($workflow.input.limit | tostring) + "%" }
        description: ${ $context.hosts | join(", ") }
      export:
        as: '${ $context + { issue: .identifier } }'
  - tell:
      call: notify-send:1.0.0@default
      with:
        connection: chat
        title: ${ $context.issue }
        body: ${ $context.hosts | join(", ") }
        type: warning
"""


async def test_runbook_document__sql_linear_and_notify_as_catalog_functions(
    fresh: App, dsn: str
) -> None:
    from saas_vendors import apprise_target, linear_fake

    from opsloom.dsl.runtime import DslOptions, DslRuntime

    runtime = DslRuntime(fresh, DslOptions())
    with linear_fake() as linear, apprise_target() as chat:
        async with fresh:
            add = fresh.connections.add_connection
            await add("reporting", "sql", {"dsn": dsn, "read_only": True})
            await add(
                "linear", "linear", {"api_key": "lin_api_x1", "api_url": f"{linear.url}/graphql"}
            )
            await add("chat", "notify", {"urls": f"form://127.0.0.1:{chat.port}/hooks/form"})
            await add("writer", "sql", {"dsn": dsn})
            await fresh.connections.call(
                sqlc.query,
                "writer",
                {
                    "sql": "INSERT INTO hosts (name, disk) VALUES (%s, 97), (%s, 40), (%s, 91)",
                    "params": ["db-1", "db-2", "web-1"],
                },
            )
            workflow = runtime.register(runtime.load(RUNBOOK), RUNBOOK)
            handle = await fresh.start(workflow, {"limit": 90})
            output = await handle.result(timeout=20)
    # The connection's one URL is its whole secret, so even its privacy form is masked.
    assert output["delivered"] == ["Form ***"]
    sent = chat.last("/hooks/form").form
    assert (
        sent["title"] == "OPS-1" and sent["message"] == "db-1, web-1" and sent["type"] == "warning"
    )
    (issue,) = linear.issues.values()  # type: ignore[attr-defined]
    assert issue["title"] == "Disks over 90%" and issue["description"] == "db-1, web-1"
    assert linear.problems == chat.problems == []
