"""``opsloom audit verify|export`` (Typer's runner, a temporary SQLite file)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from opsloom import App, FakeClock
from opsloom.cli.audit import audit_cli, parse_since
from opsloom.identity.audit import GENESIS, AuditLog
from opsloom.store.audit import entry_hash

runner = CliRunner()

# The sub-app as `opsloom` mounts it.
cli = typer.Typer()
cli.add_typer(audit_cli, name="audit")

#: Entries are written an hour apart from this time (2023-11-14T22:13:20Z).
START = 1_700_000_000.0


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"

    async def fill() -> None:
        clock = FakeClock(START)
        async with App(f"sqlite:///{path}", worker=None, clock=clock) as app:
            log = AuditLog(app.store, clock)
            for i, actor in enumerate(["alice", "bob", "carol", "dave"], start=1):
                await log.append(actor, "approval.decide", f"task:{i}", {"approved": i != 3})
                clock.advance(3600)

    asyncio.run(fill())
    return path


def run(db_file: Path, *args: str) -> Any:
    return runner.invoke(cli, ["audit", *args, "--db", f"sqlite:///{db_file}"])


def test_verify__intact_log_exits_0(db_file: Path) -> None:
    result = run(db_file, "verify")
    assert result.exit_code == 0, result.output
    assert "intact: 4 entries checked, every seal matches" in result.stdout
    assert json.loads(run(db_file, "verify", "--json").stdout) == {
        "ok": True,
        "checked": 4,
        "sealed": 4,
        "seals_checked": True,
        "first_bad": None,
    }


def test_verify__tampered_row_exits_1_naming_it(db_file: Path) -> None:
    with sqlite3.connect(db_file) as conn:
        conn.execute("""UPDATE audit_log SET data = '{"approved":true}' WHERE seq = 3""")
    result = run(db_file, "verify")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "entry 3" in message
    assert "'carol'" in message and "'approval.decide'" in message
    assert "does not match its hash" in message
    as_json = run(db_file, "verify", "--json")
    assert as_json.exit_code == 1
    bad = json.loads(as_json.stdout)["first_bad"]
    assert (bad["seq"], bad["actor"], bad["action"]) == (3, "carol", "approval.decide")


def test_verify__deleted_row_exits_1(db_file: Path) -> None:
    with sqlite3.connect(db_file) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = 2")
    result = run(db_file, "verify")
    assert result.exit_code == 1
    assert "entry 2 is missing" in " ".join(result.stderr.split())


def test_verify__rows_beyond_a_head_moved_back_are_tampered(db_file: Path) -> None:
    # Edit entry 4, then move the head back to 3 so that the edit is "not yet verified".
    with sqlite3.connect(db_file) as conn:
        conn.execute("""UPDATE audit_log SET data = '{"approved":false}' WHERE seq = 4""")
        third = conn.execute("SELECT hash FROM audit_log WHERE seq = 3").fetchone()[0]
        conn.execute("UPDATE audit_head SET seq = 3, hash = ? WHERE id = 1", (third,))
    result = run(db_file, "verify")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "entry 4" in message and "beyond the log head" in message
    lines = [json.loads(line) for line in run(db_file, "export").stdout.splitlines()]
    assert [line.get("beyond_head", False) for line in lines] == [False, False, False, True]


def test_export__json_lines_that_recompute_the_chain(db_file: Path) -> None:
    result = run(db_file, "export")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["actor"] for line in lines] == ["alice", "bob", "carol", "dave"]
    assert lines[0]["time"] == "2023-11-14T22:13:20+00:00"
    prev = GENESIS
    for line in lines:
        assert line["prev_hash"] == prev
        fields = ("seq", "at", "actor", "action", "subject", "data", "prev_hash")
        assert entry_hash(*(line[name] for name in fields)) == line["hash"]
        prev = line["hash"]


@pytest.mark.parametrize(
    "since",
    ["2023-11-15T00:13:20Z", "2023-11-15T00:13:20", "2023-11-15T01:13:20+01:00", "1700007200"],
)
def test_export__since_a_time(db_file: Path, since: str) -> None:
    result = run(db_file, "export", "--since", since)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [3, 4]


def test_export__since_a_duration_and_to_a_file(db_file: Path, tmp_path: Path) -> None:
    # The entries are from 2023: none is in the last hour, all are in the last 100000 days.
    assert run(db_file, "export", "--since", "1h").stdout == ""
    target = tmp_path / "audit.jsonl"
    result = run(db_file, "export", "--since", "100000d", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert "4 audit entries written" in result.stdout
    assert len(target.read_text().splitlines()) == 4


def test_export__invalid_since_exits_2(db_file: Path) -> None:
    result = run(db_file, "export", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "not an ISO 8601 time" in result.stderr


def test_parse_since__forms() -> None:
    now = 1_000_000.0
    assert parse_since("90s", now) == now - 90
    assert parse_since("15m", now) == now - 900
    assert parse_since("1.5h", now) == now - 5400
    assert parse_since("7d", now) == now - 7 * 86400
    assert parse_since("12345.5", now) == 12345.5
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_since("2024-01-02T03:04:05Z", now) == moment.timestamp()
    with pytest.raises(ValueError):
        parse_since("soon", now)
