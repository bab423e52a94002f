"""``opsloom events``, run as a subprocess against a temporary SQLite file."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_cli import Project, clean_env

FLOWS = """
from opsloom import App, Context

app = App()


@app.workflow(name="await-deploy")
async def await_deploy(ctx: Context) -> dict:
    event = await ctx.wait_for_event({"type": "deploy.finished", "subject": "api"})
    return {"id": event["id"], "data": event["data"]}
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "flows.py").write_text(FLOWS)
    return Project(tmp_path, f"sqlite:///{tmp_path / 'cli.db'}")


def test_emit_list_show__round_trip(project: Project) -> None:
    sent = project.json(
        "events", "emit", "--type", "deploy.finished", "--source", "ci/github", "--id", "d-1",
        "--subject", "api", "--data", '{"version": "1.2.3"}', "--db", project.db,
    )  # fmt: skip
    assert sent == {"id": "d-1", "source": "ci/github", "stored": True}
    again = project.ok(
        "events", "emit", "--type", "alert.firing", "--source", "ci/github", "--id", "d-1",
        "--db", project.db,
    )  # fmt: skip
    assert "already stored" in again, "same source and id: a duplicate"
    generated = project.json(
        "events", "emit", "--type", "alert.firing", "--source", "am", "--db", project.db
    )
    assert generated["stored"] and generated["id"]

    by_type = project.json("events", "list", "--type", "deploy.finished", "--db", project.db)
    assert [e["event"]["id"] for e in by_type] == ["d-1"]
    table = project.ok("events", "list", "--limit", "1", "--db", project.db)
    assert "alert.firing" in table and "deploy.finished" not in table

    shown = project.json("events", "show", "ci/github", "d-1", "--db", project.db)
    assert shown["event"] == {
        "specversion": "1.0",
        "id": "d-1",
        "source": "ci/github",
        "type": "deploy.finished",
        "subject": "api",
        "datacontenttype": "application/json",
        "data": {"version": "1.2.3"},
    }


def test_errors__unknown_or_invalid_event_exit_2(project: Project) -> None:
    project.ok("db", "upgrade", "--db", project.db)  # read commands never create a database
    missing = project.run("events", "show", "s", "nope", "--db", project.db)
    assert missing.returncode == 2 and "no event 'nope'" in missing.stderr
    invalid = project.run(
        "events", "emit", "--type", "t", "--source", "s", "--id", "", "--db", project.db
    )
    assert invalid.returncode == 2 and "'id'" in invalid.stderr


def test_emit__wakes_a_run_waiting_in_a_worker(project: Project) -> None:
    waiter = subprocess.Popen(
        [
            sys.executable, "-m", "opsloom.cli.main", "start", "await-deploy", "--run-id", "w-1",
            "--wait", "--timeout", "30", "--json", "--app", "flows:app", "--db", project.db,
        ],
        cwd=project.path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _subscribed(project, "w-1"):
            assert waiter.poll() is None, waiter.communicate()
            assert time.monotonic() < deadline, "the run never subscribed"
            time.sleep(0.1)  # polling another process's progress, not waiting for time
        project.ok(
            "events", "emit", "--type", "deploy.finished", "--source", "ci", "--subject", "api",
            "--id", "d-9", "--data", '"ok"', "--db", project.db,
        )  # fmt: skip
        stdout, stderr = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
    assert waiter.returncode == 0, stderr
    result: dict[str, Any] = json.loads(stdout)
    assert result["output"] == {"id": "d-9", "data": "ok"}


def _subscribed(project: Project, run_id: str) -> bool:
    # Read the file directly: a CLI call per poll would cost a process start each time.
    try:
        with contextlib.closing(sqlite3.connect(project.path / "cli.db")) as conn:
            row = conn.execute(
                "SELECT count(*) FROM subscriptions WHERE run_id = ?", (run_id,)
            ).fetchone()
    except sqlite3.OperationalError:  # not created yet
        return False
    return bool(row[0])


def test_export__a_period_as_json_and_csv_and_bad_periods_are_named(project: Project) -> None:
    for number, data in enumerate(({"check": "tls", "passed": True}, {"check": "s3", "ok": [1]})):
        project.ok(
            "events", "emit", "--type", "evidence", "--source", "audit", "--id", f"e-{number}",
            "--data", json.dumps(data), "--db", project.db,
        )  # fmt: skip
    project.ok("events", "emit", "--type", "other", "--source", "audit", "--db", project.db)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    period = ("--from", today, "--to", today, "--db", project.db)

    exported = json.loads(project.ok("events", "export", "--type", "evidence", *period))
    assert [e["event"]["id"] for e in exported] == ["e-0", "e-1"]  # oldest first, one type
    text = project.ok("events", "export", "--type", "evidence", "--format", "csv", *period)
    header, first, second = text.splitlines()
    assert header == "received_at,time,type,source,id,subject,data.check,data.passed,data.ok"
    assert first.endswith(",evidence,audit,e-0,,tls,true,") and second.endswith(",s3,,[1]")
    written = project.path / "evidence.csv"
    saved = project.ok("events", "export", "--type", "evidence", "--format", "csv", "-o",
                       str(written), *period)  # fmt: skip
    assert "2 events written" in saved and written.read_text() == text
    earlier = ("--from", "2020-01-01", "--to", "2020-12-31T23:59:59", "--db", project.db)
    assert json.loads(project.ok("events", "export", "--type", "evidence", *earlier)) == []

    for args, problem in (
        (("--from", "yesterday", "--to", today), "--from 'yesterday' is not a date"),
        (("--from", today, "--to", "2020-01-01"), "the end of the period must come after"),
        (("--from", today, "--to", today, "--format", "xml"), "--format must be json or csv"),
    ):
        failed = project.run("events", "export", "--type", "evidence", *args, "--db", project.db)
        assert failed.returncode != 0 and problem in failed.stderr, failed.stderr
