"""``opsloom connections`` and ``opsloom connectors`` (Typer's runner, a temporary SQLite file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vendors import slack_fake

from opsloom.cli.connectors import reflow
from opsloom.cli.main import cli

runner = CliRunner()
TOKEN = "xoxb-cli-secret-token"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def test_connections__add_list_show_test_call_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert invoke("db", "upgrade", "--db", db)[0] == 0
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with slack_fake() as fake:
        code, output = invoke(
            "connections",
            "add",
            "ops-slack",
            "--connector",
            "slack",
            "--set-file",
            f"token={token_file}",
            "--set",
            f"api_url={fake.url}/api",
            "--set",
            "breaker.failures=3",
            "--db",
            db,
        )
        assert code == 0, output
        code, output = invoke("connections", "list", "--db", db, "--json")
        assert code == 0, output
        [row] = json.loads(output)
        assert row["secrets"] == ["token"] and row["settings"]["breaker"]["failures"] == 3
        assert row["breaker"]["state"] == "closed"
        code, output = invoke("connections", "show", "ops-slack", "--db", db)
        assert code == 0 and TOKEN not in output
        code, output = invoke("connections", "test", "ops-slack", "--db", db)
        assert code == 0 and "Subarachnoid" in output, output
        code, output = invoke(
            "connectors",
            "call",
            "slack.post_message",
            "--connection",
            "ops-slack",
            "--with",
            '{"channel": "C1", "text": "from a runbook"}',
            "--db",
            db,
        )
        assert code == 0, output
        assert json.loads(output)["channel"] == "C1"
        assert fake.last().form["text"] == "from a runbook"
        assert fake.problems == []
    code, output = invoke("connectors", "list", "--json", "--db", db)
    listed = {c["name"]: c for c in json.loads(output)}
    assert "slack.post_message" in listed["slack"]["actions"]
    assert listed["slack"]["connections"] == [{"name": "ops-slack", "breaker": row["breaker"]}]
    code, output = invoke("connections", "remove", "ops-slack", "--db", db)
    assert code == 0
    code, output = invoke("connections", "remove", "ops-slack", "--db", db)
    assert code == 2 and "no connection" in output


def test_connections__bad_input_is_named(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert invoke("db", "upgrade", "--db", db)[0] == 0
    code, output = invoke("connections", "add", "x", "--connector", "slack", "--db", db)
    assert code == 2 and "token" in output and "Field required" in output
    code, output = invoke(
        "connections", "add", "x", "--connector", "nope", "--set", "a=b", "--db", db
    )
    assert code == 2 and "no connector 'nope'" in output
    code, output = invoke(
        "connections", "add", "x", "--connector", "nope[aws]", "--set", "a=b", "--db", db
    )
    assert code == 2 and "no connector 'nope[aws]'" in output  # text, not markup
    code, output = invoke(
        "connectors", "call", "slack.post_message", "--connection", "x", "--with", "[]", "--db", db
    )
    assert code == 2 and "JSON object" in output


def test_connectors_show__help_and_schemas() -> None:
    code, output = invoke("connectors", "show", "pagerduty")
    assert code == 0, output
    assert "pagerduty.trigger" in output and "pagerduty-trigger:1.0.0@default" in output
    code, output = invoke("connectors", "show", "jira", "--json")
    described = json.loads(output)
    assert described["secrets"] == ["api_token"]
    create = next(a for a in described["actions"] if a["id"] == "jira.create_issue")
    assert "summary" in create["input"]["required"]


def test_connectors_show__docstrings_reflow_to_the_terminal_width() -> None:
    code, output = invoke("connectors", "show", "pagerduty")
    assert code == 0, output
    # The docstring breaks "(ack, resolve," and "note)." over two source lines.
    assert "(ack, resolve, note)." in output
    text = "One paragraph\nwrapped by hand.\n\nItems:\n- first\n  continued\n- second\n>>> code()"
    assert reflow(text) == (
        "One paragraph wrapped by hand.\n\nItems:\n- first continued\n- second\n>>> code()"
    )


def test_validate__documents_may_call_connector_actions(tmp_path: Path) -> None:
    doc = tmp_path / "tell.yaml"
    text = """document: {dsl: '1.0.3', namespace: ops, name: tell, version: '1.0.0'}
do:
  - tell:
      call: slack-post-message:1.0.0@default
      with: {connection: ops-slack, channel: '#inc', text: hi}
"""
    doc.write_text(text)
    assert invoke("validate", str(doc)) == (0, "1 file checked: all valid\n")
    doc.write_text(text.replace("slack-post-message", "slack-post-nothing"))
    code, output = invoke("validate", str(doc))
    assert code == 1 and "unknown function 'slack-post-nothing'" in output
