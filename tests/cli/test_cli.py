"""The real ``opsloom`` command, run as a subprocess against a temporary SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

FLOWS = """
from opsloom import App, Context

app = App()


@app.step()
def add_one(x: int) -> int:
    return x + 1


@app.workflow(name="chain")
async def chain(ctx: Context, x: int) -> int:
    for _ in range(3):
        x = await ctx.step(add_one, x)
    return x


@app.workflow(name="approve")
async def approve(ctx: Context) -> dict:
    return {"decision": await ctx.wait_for("approval")}
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the developer's own OPSLOOM_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOM_")}
    env.update(extra)
    return env


@dataclass
class Project:
    """A folder holding ``flows.py`` and the database the commands use."""

    path: Path
    db: str

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opsloom.cli.main", *args],
            cwd=cwd or self.path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "flows.py").write_text(FLOWS)
    return Project(tmp_path, f"sqlite:///{tmp_path / 'cli.db'}")


def test_db_upgrade__creates_and_keeps_the_schema(project: Project) -> None:
    first = project.ok("db", "upgrade", "--db", project.db)
    assert "database schema is at version" in first
    assert project.ok("db", "upgrade", "--db", project.db) == first
    assert (project.path / "cli.db").exists()


def test_start_wait_json__prints_the_output(project: Project) -> None:
    result = project.json(
        "start", "chain", "--input", "1", "--wait", "--app", "flows:app", "--db", project.db
    )
    assert result["output"] == 4
    assert result["status"] == "completed"
    assert result["created"] is True

    listed = project.json("runs", "list", "--db", project.db)
    assert [run["id"] for run in listed] == [result["run_id"]]
    assert listed[0]["status"] == "completed"
    assert project.json("runs", "list", "--status", "failed", "--db", project.db) == []

    shown = project.json("runs", "show", result["run_id"], "--db", project.db)
    assert shown["output"] == 4
    assert [step["output"] for step in shown["steps"]] == [2, 3, 4]


def test_signal__reaches_the_waiting_run(project: Project) -> None:
    run_id = project.ok("start", "approve", "--app", "flows:app", "--db", project.db).strip()
    sent = project.ok(
        "signal", run_id, "approval", "--data", '{"approved": true}', "--db", project.db
    )
    assert run_id in sent
    # Starting with the same run id is idempotent: it waits for the existing run.
    result = project.json(
        "start", "approve", "--run-id", run_id, "--wait", "--app", "flows:app", "--db", project.db
    )
    assert result == {
        "run_id": run_id,
        "created": False,
        "status": "completed",
        "output": {"decision": {"approved": True}},
    }


def test_runs_cancel__the_run_ends_cancelled(project: Project) -> None:
    project.ok(
        "start", "approve", "--run-id", "incident-7", "--app", "flows:app", "--db", project.db
    )
    assert project.json("runs", "cancel", "incident-7", "--db", project.db) == {
        "cancelled": ["incident-7"]
    }
    shown = project.json("runs", "show", "incident-7", "--db", project.db)
    # The run never started: it is cancelled at once, without a worker.
    assert shown["cancel_requested"] is True and shown["status"] == "cancelled"
    waited = project.run(
        "start",
        "approve",
        "--run-id",
        "incident-7",
        "--wait",
        "--json",
        "--app",
        "flows:app",
        "--db",
        project.db,
    )
    assert waited.returncode == 1
    assert json.loads(waited.stdout)["status"] == "cancelled"
    again = project.run("runs", "cancel", "incident-7", "--db", project.db)
    assert again.returncode == 1
    assert "already cancelled" in again.stderr


def test_start__bad_input_json_exits_2(project: Project) -> None:
    result = project.run(
        "start", "chain", "--input", "{not json", "--app", "flows:app", "--db", project.db
    )
    assert result.returncode == 2
    assert "--input is not valid JSON" in result.stderr
    assert result.stdout == ""


def test_signal__bad_data_json_exits_2(project: Project) -> None:
    result = project.run("signal", "some-run", "approval", "--data", "yes", "--db", project.db)
    assert result.returncode == 2
    assert "--data is not valid JSON" in result.stderr


def test_start__unknown_workflow_exits_with_message(project: Project) -> None:
    result = project.run("start", "nope", "--app", "flows:app", "--db", project.db)
    assert result.returncode == 2
    assert "unknown workflow 'nope'" in result.stderr
    assert "approve, chain" in result.stderr


def test_runs_show__unknown_run_exits_with_message(project: Project) -> None:
    project.ok("db", "upgrade", "--db", project.db)  # read commands never create a database
    result = project.run("runs", "show", "missing", "--db", project.db)
    assert result.returncode == 2
    assert "no run 'missing'" in result.stderr


# --- opsloom up --------------------------------------------------------------------------------


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def listening(
    process: subprocess.Popen[bytes], stdout: Path, stderr: Path
) -> Callable[[], str | None]:
    """The URL in the listening line ``opsloom up`` prints, once printed (None before)."""

    def url() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"opsloom up exited early:\n{stderr.read_text()}")
        for line in stdout.read_text().splitlines():
            if line.startswith("opsloom listening on "):
                return line.split()[3]
        return None

    return url


def test_up__serves_the_examples_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'up.db'}"
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    token = "up-test-token"
    with stdout.open("w") as out, stderr.open("w") as err:
        # No --app, from the repository root: the bundled examples are served.
        process = subprocess.Popen(
            [sys.executable, "-m", "opsloom.cli.main", "up", "--db", db, "--port", "0"],
            cwd=ROOT,
            env=clean_env(OPSLOOM_API_TOKEN=token),
            stdout=out,
            stderr=err,
        )
    try:
        url = wait_until(listening(process, stdout, stderr), "the listening line")
        served = "chain, fanout, nightly_report, ops/disk-cleanup, ops/incident-triage, remediate"
        assert f"workflows: {served}" in stdout.read_text()

        def healthy() -> dict[str, Any] | None:
            try:
                response = httpx.get(f"{url}/api/v1/health", timeout=5)
            except httpx.TransportError:
                return None
            return response.json() if response.status_code == 200 else None

        health = wait_until(healthy, "a healthy /api/v1/health")
        assert health["worker"]["running"] is True

        body = {"workflow": "chain", "input": 1}
        assert httpx.post(f"{url}/api/v1/runs", json=body).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        started = httpx.post(f"{url}/api/v1/runs", json=body, headers=auth)
        assert started.status_code == 201, started.text
        run_url = f"{url}/api/v1/runs/{started.json()['id']}"

        def finished() -> dict[str, Any] | None:
            run: dict[str, Any] = httpx.get(run_url, headers=auth).json()
            return run if run["status"] in ("completed", "failed") else None

        run = wait_until(finished, "the run to finish")
        assert run["status"] == "completed"
        assert run["output"] == 4

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in stderr.read_text()


def test_start__without_app_hints_at_it(project: Project) -> None:
    project.ok("db", "upgrade", "--db", project.db)
    result = project.run("start", "chain", "--db", project.db)
    assert result.returncode == 2
    assert "unknown workflow 'chain'" in result.stderr
    assert "pass --app module:attribute" in result.stderr


def test_read_commands__never_create_a_database_and_name_the_one_they_looked_for(
    project: Project,
) -> None:
    for args in (("runs", "list"), ("events", "list"), ("users", "list"), ("audit", "verify")):
        result = project.run(*args)
        assert result.returncode == 2, args
        assert f"no database at {project.path / 'opsloom.db'}" in result.stderr, args
        assert "--db" in result.stderr
    assert not (project.path / "opsloom.db").exists()
    project.ok("db", "upgrade")
    assert project.json("runs", "list") == []


def test_start_wait_timeout__one_line_naming_the_run(project: Project) -> None:
    args = ("start", "approve", "--run-id", "w-1", "--wait", "--timeout", "0.5")
    result = project.run(*args, "--app", "flows:app", "--db", project.db)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "run w-1 did not end within 0.5s" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_version__prints_the_package_version(project: Project) -> None:
    assert project.ok("--version").startswith("opsloom ")


def test_up__port_in_use_exits_with_message(project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = project.run(
            "up",
            "--app",
            "flows:app",
            "--db",
            project.db,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_runs_and_workflows_pause_resume(project: Project) -> None:
    for run_id in ("r-1", "r-2"):
        project.ok("start", "approve", "--run-id", run_id, "--app", "flows:app", "--db", project.db)
    assert project.json("runs", "pause", "r-1", "--db", project.db)["paused"] == "run"
    paused = project.json("workflows", "pause", "approve", "--db", project.db)
    assert paused == {"workflow": "approve", "runs": ["r-2"]}
    listed = project.json("workflows", "paused", "--db", project.db)
    assert [p["workflow"] for p in listed] == ["approve"]
    assert project.json("workflows", "resume", "approve", "--db", project.db)["runs"] == ["r-2"]
    assert project.json("runs", "resume", "r-1", "--db", project.db)["paused"] is None
    again = project.run("runs", "resume", "r-1", "--db", project.db)
    assert again.returncode == 1 and "not paused" in again.stderr
    unknown = project.run("workflows", "pause", "nope", "--db", project.db)
    assert unknown.returncode == 2 and "nope" in unknown.stderr


CHANGED = FLOWS.replace(
    "        x = await ctx.step(add_one, x)",
    "        x = await ctx.step(add_two, x)",
).replace(
    '@app.workflow(name="chain")',
    '@app.step()\ndef add_two(x: int) -> int:\n    return x + 2\n\n\n@app.workflow(name="chain")',
)


def test_replay__fails_the_check_when_the_code_changed(project: Project) -> None:
    done = project.json(
        "start", "chain", "--input", "1", "--wait", "--app", "flows:app", "--db", project.db
    )
    assert project.json("replay", "--app", "flows:app", "--db", project.db) == {
        "replayed": 1,
        "failed": [],
    }
    (project.path / "changed.py").write_text(CHANGED)
    result = project.run("replay", "--app", "changed:app", "--db", project.db, "--json")
    assert result.returncode == 1, result.stderr
    (failure,) = json.loads(result.stdout)["failed"]
    assert failure["run_id"] == done["run_id"] and failure["result"] == "nondeterminism"
    assert (failure["seq"], failure["expected"], failure["got"]) == (
        1,
        "step add_one",
        "step add_two",
    )
    table = project.run("replay", "--app", "changed:app", "--db", project.db)
    assert table.returncode == 1 and "1 would fail" in table.stdout
