"""``opsloom decisions test`` and ``opsloom decisions validate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsloom.cli.decisions import decisions_cli

runner = CliRunner()

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "decisions"

TABLE = """\
name: sizes
version: "1"
hitPolicy: UNIQUE
inputs:
  - name: n
    expression: .n
outputs:
  - name: size
rules:
  - when: ["< 10"]
    then: [small]
  - when: ["[10..100]"]
    then: [medium]
  - when: ["${ . > 100 }"]
    then: [large]
  - when: ["${ . > 1000 }"]
    then: [huge]
"""

CASES = """\
- name: small
  input: {n: 3}
  expect: {size: small}
- name: wrong on purpose
  input: {n: 50}
  expect: {size: large}
- input: {n: -1000}
  expect: {size: small}
- name: huge is ambiguous
  input: {n: 5000}
  expect: {error: "matched several rules"}
- name: expected an error
  input: {n: 1}
  expect: {error: "anything"}
- name: nothing matches null
  input: {}
  expect: null
"""


@pytest.mark.parametrize("name", ["approval-policy", "alert-routing"])
def test_decisions_test__example_cases_pass(name: str) -> None:
    result = runner.invoke(
        decisions_cli,
        ["test", str(EXAMPLES / f"{name}.yaml"), "--cases", str(EXAMPLES / f"{name}.cases.yaml")],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines and all(line.startswith("PASS ") for line in lines[:-1])
    assert lines[-1].endswith(" passed, 0 failed")


def test_decisions_test__a_failing_case_exits_1_with_a_fail_line(tmp_path: Path) -> None:
    (tmp_path / "sizes.yaml").write_text(TABLE)
    (tmp_path / "cases.yaml").write_text(CASES)
    result = runner.invoke(
        decisions_cli,
        ["test", str(tmp_path / "sizes.yaml"), "--cases", str(tmp_path / "cases.yaml")],
    )
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "PASS small",
        'FAIL wrong on purpose: expected {"size": "large"} got {"size": "medium"}',
        "PASS case 3",
        "PASS huge is ambiguous",
        'FAIL expected an error: expected an error containing "anything" got {"size": "small"}',
        "PASS nothing matches null",
        "sizes:1: 6 cases, 4 passed, 2 failed",
    ]


def test_decisions_test__json_output(tmp_path: Path) -> None:
    (tmp_path / "sizes.yaml").write_text(TABLE)
    (tmp_path / "cases.json").write_text(
        json.dumps(
            [
                {"name": "ok", "input": {"n": 1}, "expect": {"size": "small"}},
                {"name": "boom", "input": {"n": 2000}, "expect": {"size": "huge"}},
            ]
        )
    )
    result = runner.invoke(
        decisions_cli,
        ["test", str(tmp_path / "sizes.yaml"), "--cases", str(tmp_path / "cases.json"), "--json"],
    )
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert (report["table"], report["passed"], report["failed"]) == ("sizes", 1, 1)
    boom = report["cases"][1]
    assert boom["passed"] is False and boom["got"] is None
    assert "matched several rules" in boom["error"]


def test_decisions_test__invalid_table_or_cases_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(TABLE.replace("hitPolicy: UNIQUE", "hitPolicy: MOST"))
    (tmp_path / "cases.yaml").write_text(CASES)
    result = runner.invoke(
        decisions_cli,
        ["test", str(tmp_path / "bad.yaml"), "--cases", str(tmp_path / "cases.yaml")],
    )
    assert result.exit_code == 1
    assert "bad.yaml:3:1: /hitPolicy: unknown hit policy 'MOST'" in result.output
    (tmp_path / "sizes.yaml").write_text(TABLE)
    (tmp_path / "notalist.yaml").write_text("input: {}\n")
    result = runner.invoke(
        decisions_cli,
        ["test", str(tmp_path / "sizes.yaml"), "--cases", str(tmp_path / "notalist.yaml")],
    )
    assert result.exit_code == 2
    assert "a cases file is a list" in result.output


def test_decisions_validate__problems_and_summary(tmp_path: Path) -> None:
    overlapping = TABLE.replace('"[10..100]"', '"[5..100]"')
    (tmp_path / "overlap.yaml").write_text(overlapping)
    result = runner.invoke(
        decisions_cli,
        ["validate", str(EXAMPLES / "approval-policy.yaml"), str(tmp_path / "overlap.yaml")],
    )
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(
        f"{tmp_path / 'overlap.yaml'}:12:5: /rules/1: rule 'rule-2' can match the same input "
        "as rule 'rule-1' (line 10)"
    )
    assert lines[1] == "2 tables checked: 1 problem in 1 of them"
    result = runner.invoke(
        decisions_cli, ["validate", "--json", str(EXAMPLES / "alert-routing.yaml")]
    )
    assert result.exit_code == 0 and json.loads(result.output) == []


def test_decisions_validate__a_glob_with_cases_files_checks_the_tables_and_skips_the_cases() -> (
    None
):
    files = sorted(str(path) for path in EXAMPLES.glob("*.yaml"))
    result = runner.invoke(decisions_cli, ["validate", *files])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "4 tables checked: all valid",
        "skipped cases files (run with 'opsloom decisions test'): "
        "alert-routing.cases.yaml, approval-policy.cases.yaml, change-risk.cases.yaml, "
        "compliance-findings.cases.yaml",
    ]
