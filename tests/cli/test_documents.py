"""``opsloom run``, ``opsloom deploy`` and ``opsloom start NAMESPACE/NAME[:VERSION]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsloom.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]

HELLO = """
document:
  dsl: '1.0.3'
  namespace: ops
  name: hello
  version: '{version}'
do:
  - greet:
      set:
        greeting: ${{ "{word} " + .name }}
"""

FAILING = """
document:
  dsl: '1.0.3'
  namespace: ops
  name: failing
  version: '1.0.0'
do:
  - check:
      raise:
        error:
          type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
          status: 500
          title: Check failed
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_run__prints_the_output_as_json(runner: CliRunner, tmp_path: Path) -> None:
    doc = write(tmp_path, "hello.yaml", HELLO.format(version="1.0.0", word="hello"))
    result = runner.invoke(cli, ["run", str(doc), "--input", '{"name": "ada"}'])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"greeting": "hello ada"}


def test_run__a_fault_prints_the_error_object_and_fails(runner: CliRunner, tmp_path: Path) -> None:
    doc = write(tmp_path, "failing.yaml", FAILING)
    result = runner.invoke(cli, ["run", str(doc)])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "type": "https://serverlessworkflow.io/spec/1.0.0/errors/runtime",
        "status": 500,
        "title": "Check failed",
        "instance": "/do/0/check",
    }


def test_run__an_invalid_document_lists_its_problems(runner: CliRunner, tmp_path: Path) -> None:
    doc = write(tmp_path, "bad.yaml", "document:\n  dsl: '1.0.3'\ndo: 3\n")
    result = runner.invoke(cli, ["run", str(doc)])
    assert result.exit_code == 2
    assert "bad.yaml:" in result.stderr


def test_deploy_then_start__runs_the_deployed_version(runner: CliRunner, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ops.db'}"
    v1 = write(tmp_path, "v1.yaml", HELLO.format(version="1.0.0", word="hello"))
    v2 = write(tmp_path, "v2.yaml", HELLO.format(version="2.0.0", word="hi"))
    for doc in (v1, v2):
        result = runner.invoke(cli, ["deploy", str(doc), "--db", db])
        assert result.exit_code == 0, result.output
        assert "deployed ops/hello" in result.stdout
    again = runner.invoke(cli, ["deploy", str(v1), "--db", db])
    assert again.exit_code == 0 and "already deployed" in again.stdout
    changed = write(tmp_path, "v1b.yaml", HELLO.format(version="1.0.0", word="bye"))
    refused = runner.invoke(cli, ["deploy", str(changed), "--db", db])
    assert refused.exit_code == 2 and "already deployed with another text" in refused.stderr

    db_args = ["--db", db]

    def start(reference: str) -> object:
        result = runner.invoke(
            cli,
            [
                "start",
                reference,
                "--input",
                '{"name": "bo"}',
                "--wait",
                "--timeout",
                "20",
                *db_args,
            ],
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert start("ops/hello") == {"greeting": "hi bo"}  # the latest deployed version
    assert start("ops/hello:1.0.0") == {"greeting": "hello bo"}
    missing = runner.invoke(cli, ["start", "ops/nothing", "--db", db])
    assert missing.exit_code == 2 and "no deployed document ops/nothing" in missing.stderr


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "disk-cleanup.yaml",
            {"host": "web-1", "usage": 93},
            {"host": "web-1", "usage": 93, "action": "removed stale files from /var/tmp on web-1"},
        ),
        (
            "incident-triage.yaml",
            {"alert": {"name": "HighErrorRate", "service": "checkout", "errorRate": 0.2}},
            {
                "service": "checkout",
                "severity": "critical",
                "notified": ["#checkout"],
                "paged": True,
                "incident": {
                    "service": "checkout",
                    "reason": "checkout breaches its error budget",
                },
                "opened": True,
            },
        ),
    ],
)
def test_run__example_documents(
    runner: CliRunner, name: str, value: object, expected: object
) -> None:
    result = runner.invoke(
        cli, ["run", str(ROOT / "examples" / name), "--input", json.dumps(value)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected


def test_run__with_registers_the_subflows_it_calls(runner: CliRunner, tmp_path: Path) -> None:
    child = write(tmp_path, "child.yaml", HELLO.format(version="1.0.0", word="hey"))
    parent = write(
        tmp_path,
        "parent.yaml",
        """
document:
  dsl: '1.0.3'
  namespace: ops
  name: parent
  version: '1.0.0'
do:
  - delegate:
      run:
        workflow:
          namespace: ops
          name: hello
          version: '1.0.0'
          input:
            name: ${ .who }
""",
    )
    result = runner.invoke(
        cli, ["run", str(parent), "--with", str(child), "--input", '{"who": "kim"}']
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"greeting": "hey kim"}
