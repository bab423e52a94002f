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
