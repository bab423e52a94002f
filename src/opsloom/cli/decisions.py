"""``opsloom decisions``: check decision tables and run their test cases.

``opsloom decisions validate FILE...`` prints each problem as ``file:line:column: /pointer:
message`` and exits 1 when a table is invalid. ``opsloom decisions test TABLE --cases FILE``
evaluates each case of a YAML or JSON list ``[{name?, input, expect}]`` — ``expect`` is the
table's output (``null`` for no match, a list for ``COLLECT``, a number with an aggregation) or
``{error: "substring"}`` when the decision must fail with a message containing it — and prints
``PASS name`` or ``FAIL name: expected … got …`` per case, then a summary; it exits 1 when a
case fails.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from opsloom.decisions.evaluation import evaluate
from opsloom.decisions.loader import load_table_file
from opsloom.expr.diagnostic import Problem
from opsloom.expr.position import parse_text
from opsloom.model.decision import DecisionError, DecisionTable, equal

decisions_cli = typer.Typer(
    help="Check decision tables and run their test cases.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print stable JSON for scripts.")]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one test case."""

    name: str
    passed: bool
    expected: Any
    got: Any
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON object (``--json``)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "expected": self.expected,
            "got": self.got,
            "error": self.error,
        }

    def line(self) -> str:
        """``PASS name`` or ``FAIL name: expected … got …``."""
        if self.passed:
            return f"PASS {self.name}"
        got = f"error: {self.error}" if self.error is not None else _show(self.got)
        return f"FAIL {self.name}: expected {_expectation(self.expected)} got {got}"


def run_case(table: DecisionTable, index: int, case: Any) -> CaseResult:
    """Evaluate one case of a cases file against ``table``."""
    if not isinstance(case, dict) or "input" not in case or "expect" not in case:
        return CaseResult(
            f"case {index + 1}",
            False,
            None,
            None,
            "a case is a mapping with 'input' and 'expect' (and optionally 'name')",
        )
    name = str(case.get("name") or f"case {index + 1}")
    expected = case["expect"]
    wants_error = isinstance(expected, dict) and set(expected) == {"error"}
    try:
        output = evaluate(table, case["input"]).output
    except DecisionError as exc:
        message = str(exc)
        passed = wants_error and str(expected["error"]) in message
        return CaseResult(name, passed, expected, None, message)
    return CaseResult(name, not wants_error and equal(output, expected), expected, output)


@decisions_cli.command("test")
def test_command(
    table_file: Annotated[Path, typer.Argument(metavar="TABLE", help="The decision table file.")],
    cases: Annotated[
        Path, typer.Option("--cases", help="YAML or JSON list of {name?, input, expect}.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Run test cases against a decision table: one PASS/FAIL line per case."""
    try:
        table = load_table_file(table_file)
    except DecisionError as exc:
        _print_problems(getattr(exc, "problems", []), as_json, str(exc))
        raise typer.Exit(1) from None
    items = _read_cases(cases)
    results = [run_case(table, index, case) for index, case in enumerate(items)]
    failed = sum(1 for result in results if not result.passed)
    if as_json:
        payload = {
            "table": table.name,
            "version": table.version,
            "cases": [result.to_dict() for result in results],
            "passed": len(results) - failed,
            "failed": failed,
        }
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    else:
        for result in results:
            sys.stdout.write(result.line() + "\n")
        plural = "s" if len(results) != 1 else ""
        sys.stdout.write(
            f"{table.reference}: {len(results)} case{plural}, "
            f"{len(results) - failed} passed, {failed} failed\n"
        )
    if failed or not results:
        raise typer.Exit(1)


@decisions_cli.command("validate")
def validate_command(
    files: Annotated[
        list[Path],
        typer.Argument(help="Decision tables (YAML or JSON) to check.", show_default=False),
    ],
    as_json: JsonOption = False,
) -> None:
    """Check decision tables: syntax, columns, unary tests, jq, hit-policy violations.

    Cases files (``NAME.cases.yaml``, run with ``opsloom decisions test``) are skipped, so a
    glob over a folder of tables and their cases checks the tables.
    """
    problems: list[Problem] = []
    invalid = 0
    skipped = [path for path in files if is_cases_file(path)]
    files = [path for path in files if not is_cases_file(path)]
    for path in files:
        try:
            load_table_file(path)
        except DecisionError as exc:
            invalid += 1
            problems.extend(getattr(exc, "problems", []))
    if as_json:
        sys.stdout.write(json.dumps([p.to_dict() for p in problems], indent=2) + "\n")
    else:
        for problem in problems:
            sys.stdout.write(f"{problem}\n")
        tables = f"{len(files)} table{'s' if len(files) != 1 else ''}"
        if invalid:
            count = len(problems)
            sys.stdout.write(
                f"{tables} checked: {count} problem{'s' if count != 1 else ''} "
                f"in {invalid} of them\n"
            )
        else:
            sys.stdout.write(f"{tables} checked: all valid\n")
        if skipped:
            names = ", ".join(path.name for path in skipped)
            sys.stdout.write(f"skipped cases files (run with 'opsloom decisions test'): {names}\n")
    if invalid:
        raise typer.Exit(1)


def is_cases_file(path: Path) -> bool:
    """Whether ``path`` names a cases file (``NAME.cases.yaml``, ``.yml`` or ``.json``)."""
    return path.name.lower().endswith((".cases.yaml", ".cases.yml", ".cases.json"))


def _read_cases(path: Path) -> list[Any]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        _fail(f"cannot read {source}: {exc}")
    parsed = parse_text(text, source)
    # The reader expects a mapping at the top; a cases file is a list, so only keep the rest.
    problems = [p for p in parsed.problems if p.path != "" or "top level" not in p.message]
    if problems:
        _fail("\n".join(str(p) for p in problems))
    if not isinstance(parsed.data, list):
        _fail(f"{source}: a cases file is a list of {{name, input, expect}}")
    return list(parsed.data)


def _print_problems(problems: list[Problem], as_json: bool, message: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps([p.to_dict() for p in problems], indent=2) + "\n")
    else:
        sys.stdout.write(message + "\n")


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


def _expectation(expected: Any) -> str:
    if isinstance(expected, dict) and set(expected) == {"error"}:
        return f"an error containing {json.dumps(str(expected['error']))}"
    return _show(expected)


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
