"""``opsloom --server URL --token T``: run commands against a running server, no database."""

from __future__ import annotations

import json
import subprocess

import pytest
from peers import opsloom, wait_until
from webserver import Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def remote(server: Server, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One ``opsloom`` command sent to ``server`` with ``user``'s token (no --db anywhere)."""
    return opsloom(
        "--server",
        server.url,
        "--token",
        server.tokens[user],
        *args,
        env={"PATH": "/usr/bin:/bin", "OPSLOOM_DATABASE_URL": "sqlite:///nowhere/not-a.db"},
    )


def test_remote__start_wait_show_and_list_through_the_api(server: Server) -> None:
    started = remote(server, "olga", "start", "tick", "--input", '{"start": 1}', "--wait", "--json")
    assert started.returncode == 0, started.stderr
    result = json.loads(started.stdout)
    assert result["status"] == "completed"
    assert result["output"] == {"count": 3}
    shown = remote(server, "vic", "runs", "show", result["run_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)
    assert run["status"] == "completed"
    assert [s["name"] for s in run["steps"]][-1].endswith("count")
    listed = remote(server, "vic", "runs", "list", "--workflow", "tick", "--json")
    assert result["run_id"] in [r["id"] for r in json.loads(listed.stdout)]


def test_remote__roles_and_errors_are_the_servers(server: Server) -> None:
    waiting = server.start("change", "remote-cli")
    wait_until(lambda: server.status(waiting) == "waiting", "the run to wait", 30)
    refused = remote(server, "vic", "runs", "cancel", waiting)
    assert refused.returncode == 1
    assert "403" in refused.stderr and "operator" in refused.stderr
    missing = remote(server, "vic", "runs", "show", "no-such-run")
    assert missing.returncode == 2, missing.stderr
    assert "404" in missing.stderr
    cancelled = remote(server, "olga", "runs", "cancel", waiting, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert waiting in json.loads(cancelled.stdout)["cancelled"]
    database_only = remote(server, "olga", "users", "list")
    assert database_only.returncode == 1
    assert "--server" in database_only.stderr


def test_remote__run_ids_with_url_characters_reach_their_run(server: Server) -> None:
    # Runs that triggers start are named `trigger:ID#KEY`; a `#` sent unencoded would end the path.
    run_id = "trigger:remote#alert/1?b=%2F"
    started = remote(server, "olga", "start", "tick", "--run-id", run_id, "--wait", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["run_id"] == run_id
    shown = remote(server, "vic", "runs", "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == run_id
    retried = remote(server, "olga", "runs", "retry", run_id)
    assert retried.returncode != 0 and "404" not in retried.stderr
