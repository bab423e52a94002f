"""``opsloom validate``: problem lines, summary, ``--json`` and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from opsloom.cli.main import cli

runner = CliRunner()

VALID = """\
document:
  dsl: '1.0.3'
  namespace: ops
  name: restart-service
  version: '1.0.0'
do:
  - announce:
      set:
        message: ${ "restarting " + .service }
  - finish:
      set:
        done: true
      then: end
"""

INVALID = """\
document:
  dsl: '1.0.3'
  namespace: ops
  name: broken
  version: '1.0.0'
do:
  - announce:
      set:
        message: ${ "restarting " + }
      then: nowhere
"""

CATALOGED = """\
document:
  dsl: '1.0.3'
  namespace: ops
  name: cataloged
  version: '1.0.0'
do:
  - note:
      call: no-such-function:9.9.9@default
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_validate__valid_files_exit_0(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yaml", VALID)
    two = write(
        tmp_path,
        "two.json",
        json.dumps(
            {
                "document": {"dsl": "1.0.3", "namespace": "ops", "name": "two", "version": "1.0.0"},
                "do": [{"wait": {"wait": "PT1S"}}],
            }
        ),
    )
    result = runner.invoke(cli, ["validate", str(one), str(two)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "2 files checked: all valid\n"


def test_validate__prints_each_problem_with_its_position_and_exits_1(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", VALID)
    bad = write(tmp_path, "bad.yaml", INVALID)
    result = runner.invoke(cli, ["validate", str(good), str(bad)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{bad}:9:9: /do/0/announce/set/message: invalid jq expression: ")
    assert lines[1].startswith(f"{bad}:10:7: /do/0/announce/then: unknown task 'nowhere'")
    assert lines[2] == "2 files checked: 2 problems in 1 of them"
    assert len(lines) == 3


def test_validate__json_lists_problem_objects(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", INVALID)
    result = runner.invoke(cli, ["validate", "--json", str(bad)])
    assert result.exit_code == 1
    problems = json.loads(result.stdout)
    assert [(p["line"], p["column"], p["path"]) for p in problems] == [
        (9, 9, "/do/0/announce/set/message"),
        (10, 7, "/do/0/announce/then"),
    ]
    assert all(p["source"] == str(bad) for p in problems)
    assert set(problems[0]) == {"source", "line", "column", "path", "message"}


def test_validate__json_of_valid_files_is_an_empty_list(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["validate", "--json", str(write(tmp_path, "a.yaml", VALID))])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_validate__checks_calls_against_the_default_catalog(tmp_path: Path) -> None:
    path = write(tmp_path, "cataloged.yaml", CATALOGED)
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert (
        f"{path}:8:7: /do/0/note/call: unknown function 'no-such-function' version 9.9.9 "
        "in the default catalog"
    ) in result.stdout


APPROVAL_CALL = """\
document:
  dsl: '1.0.3'
  namespace: ops
  name: change
  version: '1.0.0'
do:
  - approve:
      call: approval:1.0.0@default
      with:
        title: ${ "restart " + .service }
        requester: ${ .who }
        stages:
          - name: leads
            groups: [sre-leads]
            mode: ${ .quorum }
          - name: owners
            mode: most
            sla: -5
"""


def test_validate__checks_catalog_call_arguments_but_not_runtime_expressions(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "change.yaml", APPROVAL_CALL)
    result = runner.invoke(cli, ["validate", "--json", str(path)])
    assert result.exit_code == 1
    # The first thing wrong in the arguments, named with where it is; the values that are
    # runtime expressions (title, requester, the first stage's mode) are not judged.
    assert json.loads(result.stdout) == [
        {
            "source": str(path),
            "line": 17,
            "column": 13,
            "path": "/do/0/approve/with/stages/1/mode",
            "message": "bad argument for approval:1.0.0: 'most' is not valid under any of "
            "the given schemas",
        },
        {
            "source": str(path),
            "line": 18,
            "column": 13,
            "path": "/do/0/approve/with/stages/1/sla",
            "message": "bad argument for approval:1.0.0: -5 is less than or equal to the "
            "minimum of 0",
        },
    ]
    fixed = APPROVAL_CALL.replace("mode: most", "mode: all").replace("sla: -5", "sla: 300")
    assert runner.invoke(cli, ["validate", str(write(tmp_path, "ok.yaml", fixed))]).exit_code == 0


def test_validate__missing_file_is_a_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(cli, ["validate", str(missing)])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{missing}:1:1: /: cannot read the file")


def test_validate__syntax_error_points_at_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "syntax.yaml", "document:\n  dsl: '1.0.3'\n name: x\n")
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{path}:3:2: /: invalid YAML")


def test_validate__needs_a_file() -> None:
    result = runner.invoke(cli, ["validate"])
    assert result.exit_code == 2
