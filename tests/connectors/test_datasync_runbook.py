"""The data-sync runbook between a real PostgreSQL table and Linear's spec fake.

Every GraphQL request the runbook sends is validated against Linear's published schema and
executed on it; the table lives in a fresh schema of the test PostgreSQL, with a trigger
keeping ``updated_at`` as an application would. A person editing Linear is ``fake.edit``;
a person editing the table is a plain ``UPDATE``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from examples.runbooks.datasync import (
    CONFLICT,
    RECONCILE,
    REPLAY,
    WORKFLOW,
    SyncSettings,
    SyncSettingsError,
    install,
)
from polling import until
from psycopg import sql
from saas_vendors import linear_fake

from opsloom import App, WorkerOptions
from opsloom.connectors.testing import FakeRequest, FakeResponse, FakeVendor
from opsloom.identity.access import Identity

pytestmark = [pytest.mark.timeout(120)]

TEAM = "9cfb482a-81e3-4154-b5b9-2c805e70a02d"
HERE = Path(__file__).resolve().parent
TABLE = """
CREATE TABLE support_tickets (
  id serial PRIMARY KEY, title text NOT NULL, body text, priority int,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE UPDATE ON support_tickets FOR EACH ROW EXECUTE FUNCTION touch();
"""


@pytest.fixture
def database(postgres_schemas: Callable[[], str]) -> Iterator[str]:
    """A connection string whose search path is a fresh schema holding the tickets table."""
    server, schema = postgres_schemas().rsplit("schema=", 1)
    server = server.rstrip("?&")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(TABLE.encode())
    separator = "&" if "?" in server else "?"
    yield f"{server}{separator}options={quote(f'-csearch_path={schema}')}"


def db(dsn: str, text: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(text.encode(), params or None)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def linear() -> Iterator[FakeVendor]:
    fake = linear_fake()
    with fake:
        yield fake
    assert fake.problems == []


def calls(fake: FakeVendor, operation: str) -> int:
    return sum(1 for r in fake.requests if operation in r.json["query"])


def person_creates(fake: FakeVendor, title: str, priority: int = 3) -> dict[str, Any]:
    """A person opens an issue in Linear's app (through the same GraphQL endpoint)."""
    query = (
        "mutation($input: IssueCreateInput!) { issueCreate(input: $input) "
        "{ issue { id identifier } } }"
    )
    body = {
        "query": query,
        "variables": {"input": {"teamId": TEAM, "title": title, "priority": priority}},
    }
    answer = httpx.post(f"{fake.url}/graphql", json=body, headers={"Authorization": "lin_api_x"})
    issue: dict[str, Any] = answer.json()["data"]["issueCreate"]["issue"]
    return issue


def issue_of(fake: FakeVendor, title: str) -> dict[str, Any]:
    [found] = [i for i in fake.issues.values() if i["title"] == title]  # type: ignore[attr-defined]
    return found


async def connect(app: App, dsn: str, fake: FakeVendor) -> None:
    await app.connections.add_connection("database", "sql", {"dsn": dsn})
    linear = {"api_key": "lin_api_secret", "api_url": f"{fake.url}/graphql"}
    await app.connections.add_connection("linear", "linear", linear)


def sync_app(db_url: str, **settings: Any) -> App:
    app = App(db_url, worker=WorkerOptions(poll_seconds=0.05, grace_seconds=5))
    install(app, SyncSettings(table="support_tickets", team_id=TEAM, every=None, **settings))
    return app


async def run(app: App, workflow: str = WORKFLOW) -> dict[str, Any]:
    handle = await app.start(workflow)
    result: dict[str, Any] = await handle.result(timeout=60)
    return result


async def test_datasync__links_both_ways_then_copies_one_sided_changes_and_rests(
    db_url: str, database: str, linear: FakeVendor
) -> None:
    db(
        database,
        "INSERT INTO support_tickets (title, body, priority) VALUES "
        "('Refund stuck', 'card declined twice', 2), ('Login loop', NULL, 3)",
    )
    person_creates(linear, "VPN drops at night", priority=1)
    app = sync_app(db_url)
    async with app:
        await connect(app, database, linear)
        first = await run(app)
        assert sorted(first["created_remote"]) == ["local:1", "local:2"]
        assert len(first["created_local"]) == 1
        refund = issue_of(linear, "Refund stuck")
        assert refund["description"] == "card declined twice" and refund["priority"] == 2.0
        [(vpn_priority,)] = db(
            database, "SELECT priority FROM support_tickets WHERE title = 'VPN drops at night'"
        )
        assert vpn_priority == 1

        # Nothing changed: a pass reads (the overlap again) and writes nothing.
        writes = calls(linear, "issueCreate") + calls(linear, "issueUpdate")
        rest = await run(app)
        assert [k for k, v in rest.items() if v and k != "read"] == []
        assert calls(linear, "issueCreate") + calls(linear, "issueUpdate") == writes

        # One side changes: the other follows, and the echo of our own write changes nothing.
        db(database, "UPDATE support_tickets SET title = 'Refund stuck (EU)' WHERE id = 1")
        linear.edit(issue_of(linear, "Login loop")["identifier"], priority=1)  # type: ignore[attr-defined]
        moved = await run(app)
        assert moved["to_remote"] == ["local:1"] and moved["to_local"] == ["local:2"]
        assert refund["title"] == "Refund stuck (EU)"
        assert db(database, "SELECT priority FROM support_tickets WHERE id = 2") == [(1,)]
        echo = await run(app)
        assert echo["to_remote"] == echo["to_local"] == []
        report = await run(app, RECONCILE)
    assert report["counts"]["in_sync"] == 3 and report["counts"]["pending"] == 0
    assert report["counts"]["unlinked_local"] == report["counts"]["unlinked_remote"] == 0
    assert len(linear.issues) == 3  # type: ignore[attr-defined]
    assert db(database, "SELECT count(*) FROM support_tickets") == [(3,)]


async def both_changed(
    app: App, database: str, linear: FakeVendor, local: str, remote: dict[str, Any]
) -> None:
    """Link one ticket, then change it on both sides (PostgreSQL first)."""
    db(
        database,
        "INSERT INTO support_tickets (title, body, priority) "
        "VALUES ('Printer on fire', 'floor 3', 3)",
    )
    await run(app)
    db(database, local)
    await asyncio.sleep(0.01)  # Linear's change is the later one (ms timestamps)
    linear.edit(issue_of(linear, "Printer on fire")["identifier"], **remote)  # type: ignore[attr-defined]


def row(database: str) -> tuple[Any, ...]:
    [found] = db(database, "SELECT title, body, priority FROM support_tickets")
    return found


async def test_conflict__merge_keeps_each_sides_fields_and_a_shared_field_goes_to_the_later(
    db_url: str, database: str, linear: FakeVendor
) -> None:
    app = sync_app(db_url, policy="merge", then="last-writer-wins")
    async with app:
        await connect(app, database, linear)
        await both_changed(
            app,
            database,
            linear,
            "UPDATE support_tickets SET body = 'floor 3, east wing', priority = 2",
            {"priority": 1, "title": "Printer on fire!"},
        )
        merged = await run(app)
    assert merged["conflicts"] == ["local:1"]  # priority changed on both sides
    # body from PostgreSQL, title from Linear, priority from the later writer (Linear).
    assert row(database) == ("Printer on fire!", "floor 3, east wing", 1)
    issue = issue_of(linear, "Printer on fire!")
    assert (issue["description"], issue["priority"]) == ("floor 3, east wing", 1.0)


async def test_conflict__merge_without_a_shared_field_is_no_conflict(
    db_url: str, database: str, linear: FakeVendor
) -> None:
    app = sync_app(db_url, policy="merge")
    async with app:
        await connect(app, database, linear)
        await both_changed(
            app, database, linear, "UPDATE support_tickets SET body = 'floor 4'", {"priority": 1}
        )
        merged = await run(app)
    assert merged["merged"] == ["local:1"] and merged["conflicts"] == []
    assert row(database) == ("Printer on fire", "floor 4", 1)


async def test_conflict__last_writer_wins_takes_the_later_record_whole(
    db_url: str, database: str, linear: FakeVendor
) -> None:
    app = sync_app(db_url, policy="last-writer-wins")
    async with app:
        await connect(app, database, linear)
        await both_changed(
            app, database, linear, "UPDATE support_tickets SET body = 'floor 4'", {"priority": 1}
        )
        decided = await run(app)
    assert decided["conflicts"] == ["local:1"]
    assert row(database) == ("Printer on fire", "floor 3", 1)  # Linear's record, whole
    assert issue_of(linear, "Printer on fire")["description"] == "floor 3"


async def test_conflict__ask_holds_the_record_until_a_person_picks_a_side(
    db_url: str, database: str, linear: FakeVendor
) -> None:
    app = sync_app(db_url, policy="ask", approvers=("data-owners",))
    async with app:
        await connect(app, database, linear)
        identity = Identity(app.store, app.clock)
        await identity.add_user("dana", roles=("approver",), actor="test")
        await identity.add_to_group("dana", "data-owners", actor="test")
        await both_changed(
            app,
            database,
            linear,
            "UPDATE support_tickets SET body = 'floor 4'",
            {"description": "floor 5"},
        )
        asked = await run(app)
        assert asked["held"] == ["local:1"]
        [pending] = await until(lambda: app.approvals.requests(status="pending"), "the request")
        assert pending["subject"]["local"]["description"] == "floor 4"
        assert pending["subject"]["remote"]["description"] == "floor 5"
        again = await run(app)  # a pass meanwhile leaves the held record alone
        assert again["held"] == ["local:1"] and row(database)[1] == "floor 4"
        dana = await identity.principal("dana")
        await app.approvals.decide(dana, pending["stages"][0]["task"], True, "ours is right")
        [conflict] = await app.list_runs(workflow=CONFLICT)
        settled = await app.result(conflict.id, timeout=60)
        assert settled == {
            "record": "local:1",
            "kept": "postgresql",
            "by": "dana",
            "outcome": "settled",
        }
        assert issue_of(linear, "Printer on fire")["description"] == "floor 4"
        calm = await run(app)
    assert calm["held"] == [] and calm["to_remote"] == [] and row(database)[1] == "floor 4"


def refuse_updates_of(fake: FakeVendor, title: str) -> list[bool]:
    """Linear refuses updates of one issue (an INVALID_INPUT error) while the flag is up."""
    refusing = [True]
    serve = fake.routes[0][2]

    def guarded(request: FakeRequest) -> FakeResponse:
        body = request.json
        target = (body.get("variables") or {}).get("id")
        if refusing[0] and "issueUpdate" in body["query"] and target == issue_of(fake, title)["id"]:
            error = {
                "message": "Argument Validation Error",
                "extensions": {"code": "INVALID_INPUT"},
            }
            return FakeResponse(400, {"errors": [error]})
        return serve(request)

    fake.routes = [(m, p, guarded) for m, p, _ in fake.routes]
    return refusing


async def test_failed_record__kept_reported_and_replayed(
    db_url: str, database: str, linear: FakeVendor
) -> None:
    db(database, "INSERT INTO support_tickets (title) VALUES ('Alpha'), ('Beta')")
    app = sync_app(db_url, overlap=0.0)  # a pass reads only what is newer than its cursor
    async with app:
        await connect(app, database, linear)
        await run(app)
        refusing = refuse_updates_of(linear, "Alpha")
        db(database, "UPDATE support_tickets SET priority = 1")
        partial = await run(app)
        assert partial["to_remote"] == ["local:2"], json.dumps(partial)
        [failed] = partial["failed"]
        assert failed["record"] == "local:1" and "Argument Validation Error" in failed["error"]
        report = await run(app, RECONCILE)
        assert report["counts"]["failed"] == 1 and report["counts"]["pending"] == 1
        assert report["failed"][0]["record"] == "1"
        # The cursor moved on: a plain pass does not see the row again; the replay does.
        assert (await run(app))["failed"] == []
        still = await run(app, REPLAY)
        assert still["replayed"] == 1 and len(still["failed"]) == 1
        refusing[0] = False
        replayed = await run(app, REPLAY)
        assert replayed["to_remote"] == ["local:1"] and replayed["failed"] == []
        clean = await run(app, RECONCILE)
    assert clean["counts"] == {**clean["counts"], "failed": 0, "pending": 0, "in_sync": 2}
    assert issue_of(linear, "Alpha")["priority"] == 1.0


def test_settings__bad_names_are_refused_naming_the_setting() -> None:
    with pytest.raises(SyncSettingsError, match=r"table: 'tickets; drop'"):
        SyncSettings(table="tickets; drop", team_id=TEAM)
    with pytest.raises(SyncSettingsError, match=r"fields\['body'\]: 'labels' is not one of"):
        SyncSettings(table="t", team_id=TEAM, fields={"title": "title", "body": "labels"})
    with pytest.raises(SyncSettingsError, match="policy"):
        SyncSettings(table="t", team_id=TEAM, policy="coin-flip")  # type: ignore[arg-type]


# --- a worker killed in the middle of a pass ----------------------------------------------------


def hold_second_create(fake: FakeVendor) -> tuple[threading.Event, threading.Event]:
    """Linear creates the second issue, then keeps its answer until ``release`` (the worker
    that asked is killed meanwhile: the issue exists, the step is not recorded)."""
    held, release = threading.Event(), threading.Event()
    serve = fake.routes[0][2]
    creates = [0]

    def holding(request: FakeRequest) -> FakeResponse:
        answer = serve(request)
        if "issueCreate" in request.json["query"]:
            creates[0] += 1
            if creates[0] == 2:
                held.set()
                release.wait(30)
        return answer

    fake.routes = [(m, p, holding) for m, p, _ in fake.routes]
    return held, release


def spawn(db_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOM_")}
    env["OPSLOOM_SECRET_KEY"] = os.environ["OPSLOOM_SECRET_KEY"]
    env["DATASYNC_TEAM"] = TEAM
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), str(HERE)])
    with log.open("ab") as sink:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opsloom.cli.main",
                "worker",
                "--app",
                "datasync_worker:app",
                "--db",
                db_url,
                "--lease",
                "2",
                "--grace",
                "1",
            ],
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.crash
@pytest.mark.slow
async def test_crash__a_killed_pass_resumes_on_another_worker_without_duplicate_writes(
    tmp_path: Path, database: str, linear: FakeVendor
) -> None:
    db(database, "INSERT INTO support_tickets (title) VALUES ('One'), ('Two'), ('Three')")
    person_creates(linear, "Four")
    db_url = f"sqlite:///{tmp_path / 'opsloom.db'}"
    client = App(db_url, worker=None)
    install(client, SyncSettings(table="support_tickets", team_id=TEAM, every=None))
    held, release = hold_second_create(linear)
    workers: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "workers.log"
    try:
        async with client:
            await connect(client, database, linear)
            handle = await client.start(WORKFLOW)
            workers.append(spawn(db_url, log))
            assert await asyncio.to_thread(held.wait, 60), log.read_text()
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
            release.set()
            workers.append(spawn(db_url, log))
            result = await handle.result(timeout=60)
    finally:
        release.set()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
    assert sorted(result["created_remote"]) == ["local:1", "local:2", "local:3"]
    assert len(result["created_local"]) == 1
    # Three issues made from rows, one from a person: none twice, though one create ran twice.
    assert sorted(i["title"] for i in linear.issues.values()) == ["Four", "One", "Three", "Two"]  # type: ignore[attr-defined]
    assert calls(linear, "issueCreate") >= 5
    assert db(database, "SELECT count(*) FROM support_tickets") == [(4,)]
    links = db(database, "SELECT count(*), count(DISTINCT remote_id) FROM opsloom_sync_records")
    assert links == [(4, 4)]
    assert json.loads(json.dumps(result["read"])) == {"rows": 3, "issues": 1}
