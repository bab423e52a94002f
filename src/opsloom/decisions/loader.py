"""Reading decision tables from YAML or JSON, with every problem reported where it is written.

The format (one table per file)::

    name: approval-policy          # letters, digits, '_', '-', '.'
    version: "1.2.0"               # a string
    description: Which approval stages a production change needs.
    hitPolicy: COLLECT             # UNIQUE (default) | FIRST | PRIORITY | ANY | COLLECT
    aggregation: COUNT             # COLLECT only, optional: SUM | MIN | MAX | COUNT
    inputs:
      - name: risk
        expression: .risk          # jq over the input document
      - name: environment
        expression: .environment
    outputs:
      - name: stage
        values: [security, change-board, peer-review]   # optional; required by PRIORITY
    rules:
      - id: high-risk              # optional, default rule-<n> (1-based)
        description: risky changes go to the change board
        when: [">= 0.7", production]      # one unary test per input
        then: [change-board]              # one value per output

Validation reports (as ``file:line:column: /pointer: message``) unknown keys and hit
policies, rules whose ``when``/``then`` do not have one entry per input/output, unary tests
that do not parse, jq that does not compile or uses a variable other than ``$input``,
``PRIORITY`` without any output ``values``, an ``aggregation`` outside ``COLLECT`` (or with
several outputs, or literal outputs that are not numbers), literal outputs outside their
column's ``values``, and the hit-policy violations that can be seen without an input: two
``UNIQUE`` rules whose tests overlap in every column, and two ``ANY`` rules that overlap with
different literal outputs. Tests written in jq cannot be compared, so their rules are checked
when an input matches them (see :func:`opsloom.decisions.evaluation.evaluate`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import jq

from opsloom.decisions.conflict import conflicts
from opsloom.expr.diagnostic import Problem, pointer
from opsloom.expr.evaluator import Evaluator, ExpressionError, is_expression, strip
from opsloom.expr.position import parse_text
from opsloom.model.decision import (
    Aggregation,
    Cell,
    DecisionTable,
    Expression,
    HitPolicy,
    InputColumn,
    InvalidDecisionTableError,
    OutputCell,
    OutputColumn,
    Rule,
)
from opsloom.model.unary import UnaryTestSyntaxError, from_cell

_TOP = ("name", "version", "description", "hitPolicy", "aggregation", "inputs", "outputs", "rules")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_NOT_A_TABLE = (
    "a decision table is a mapping with 'name', 'version', 'inputs', 'outputs' and 'rules'"
)
_JQ_WHERE = re.compile(r"^(.*?) at <top-level>, line (\d+), column (\d+)")
# Builtins that may run without bound, user functions (recursion) and reading further inputs.
_LOOPING = re.compile(
    r"(?<![$.\w])(range|recurse|recurse_down|while|until|repeat|def|combinations|input|inputs)"
    r"\b(?!\s*:)"
)
_UNDEFINED = re.compile(r"\$(\w+) is not defined")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")

#: Where a value sits in the table: keys and indexes from the top.
Location = list[str | int]


def load_table_file(path: str | Path) -> DecisionTable:
    """Load and validate the table in a YAML or JSON file.

    Raises:
        InvalidDecisionTableError: the file cannot be read or the table is not valid.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise InvalidDecisionTableError(
            [Problem(source, 1, 1, "", f"cannot read the file: {exc}")]
        ) from None
    return load_table(text, source)


def load_table(text: str, source: str = "<string>") -> DecisionTable:
    """Load and validate a table from YAML or JSON text.

    Raises:
        InvalidDecisionTableError: the table is not valid; every problem is listed.
    """
    parsed = parse_text(text, source)
    # The reader words its top-level complaints for workflow documents; tables say their own.
    problems = [p for p in parsed.problems if not (p.path == "" and "'document'" in p.message)]
    if not isinstance(parsed.data, dict) and not any(p.path == "" for p in problems):
        problems.append(Problem(source, 1, 1, "", _NOT_A_TABLE))
    if problems:
        raise InvalidDecisionTableError(problems)
    return table_from_data(parsed.data, source, parsed.positions, text)


def table_from_data(
    data: Any,
    source: str = "<data>",
    positions: dict[str, tuple[int, int]] | None = None,
    text: str = "",
) -> DecisionTable:
    """Validate already-parsed table data (positions, when known, locate the problems).

    Raises:
        InvalidDecisionTableError: the table is not valid; every problem is listed.
    """
    return _Loader(source, positions or {}, text).load(data)


class _Loader:
    def __init__(self, source: str, positions: dict[str, tuple[int, int]], text: str) -> None:
        self.source = source
        self.positions = positions
        self.lines = text.splitlines()
        self.problems: list[Problem] = []
        self.evaluator = Evaluator()

    # --- reporting -------------------------------------------------------------------------

    def where(self, path: Location) -> tuple[int, int]:
        parts = list(path)
        while True:
            found = self.positions.get(pointer(parts))
            if found is not None or not parts:
                return found or (1, 1)
            parts.pop()

    def problem(
        self, path: Location, message: str, offset: int | None = None, cell: str = ""
    ) -> None:
        line, column = self.where(path)
        if offset is not None and cell and 0 < line <= len(self.lines):
            # Point inside the cell when it is written verbatim on its line (plain or quoted).
            text = self.lines[line - 1]
            start = column - 1
            if text[start : start + 1] in ("'", '"'):
                start += 1
            if text[start : start + len(cell)] == cell:
                column = start + offset + 1
        self.problems.append(Problem(self.source, line, column, pointer(path), message))

    # --- the table -------------------------------------------------------------------------

    def load(self, data: Any) -> DecisionTable:
        if not isinstance(data, dict):
            self.problem([], _NOT_A_TABLE)
            raise InvalidDecisionTableError(self.problems)
        for key in data:
            if key not in _TOP:
                self.problem([key], f"unknown key {key!r}; a table has {', '.join(_TOP)}")
        name = self.identifier(data, "name", _NAME, "letters, digits, '_', '-' and '.'")
        version = self.identifier(data, "version", _VERSION, "a string such as '1.0.0'")
        description = self.text(data, ["description"])
        policy = self.hit_policy(data)
        aggregation = self.aggregation(data, policy)
        inputs = self.inputs(data.get("inputs"))
        outputs = self.outputs(data.get("outputs"), policy, aggregation)
        rules = self.rules(data.get("rules"), inputs, outputs, policy, aggregation)
        if not self.problems:
            self.check_overlaps(rules, policy)
        if self.problems:
            raise InvalidDecisionTableError(self.problems, table=name)
        assert policy is not None and inputs is not None and outputs is not None
        return DecisionTable(
            name=name,
            version=version,
            hit_policy=policy,
            inputs=tuple(column for column, _ in inputs),
            outputs=outputs,
            rules=tuple(rule for rule, _ in rules),
            aggregation=aggregation,
            description=description,
            source=self.source,
        )

    def identifier(
        self, data: dict[str, Any], key: str, pattern: re.Pattern[str], what: str
    ) -> str:
        value = data.get(key)
        if value is None:
            self.problem([], f"the table has no {key!r}")
            return ""
        if not isinstance(value, str):
            self.problem([key], f"{key!r} must be a string ({what}); quote it")
            return str(value)
        if not pattern.match(value):
            self.problem([key], f"{key!r} {value!r} is not valid: use {what}")
        return value

    def text(self, data: dict[str, Any], path: Location) -> str:
        value = data.get(str(path[-1]))
        if value is None:
            return ""
        if not isinstance(value, str):
            self.problem(path, f"{path[-1]!r} must be a string")
            return ""
        return value

    def hit_policy(self, data: dict[str, Any]) -> HitPolicy | None:
        value = data.get("hitPolicy", "UNIQUE")
        try:
            return HitPolicy(value)
        except ValueError:
            known = ", ".join(p.value for p in HitPolicy)
            self.problem(["hitPolicy"], f"unknown hit policy {value!r}; use one of {known}")
            return None

    def aggregation(self, data: dict[str, Any], policy: HitPolicy | None) -> Aggregation | None:
        if "aggregation" not in data or data["aggregation"] is None:
            return None
        value = data["aggregation"]
        try:
            aggregation = Aggregation(value)
        except ValueError:
            known = ", ".join(a.value for a in Aggregation)
            self.problem(["aggregation"], f"unknown aggregation {value!r}; use one of {known}")
            return None
        if policy is not None and policy is not HitPolicy.COLLECT:
            self.problem(
                ["aggregation"],
                f"'aggregation' applies to the COLLECT hit policy only, not {policy.value}",
            )
            return None
        return aggregation

    def compile(self, text: Any, path: Location) -> Expression | None:
        if not isinstance(text, str) or not text.strip():
            self.problem(path, "expected a jq expression (a non-empty string)")
            return None
        try:
            compiled = self.evaluator.compile(text)
        except ExpressionError:
            self.problem(path, f"jq does not compile: {_jq_syntax(strip(text))}")
            return None
        looping = _LOOPING.search(_STRING.sub('""', strip(text)))
        if looping:
            # jq runs holding the interpreter lock: an endless loop would stall every run of
            # the worker, and no decision needs one.
            self.problem(
                path,
                f"{looping.group(1)!r} is not allowed in a decision table's jq: decisions "
                "must not loop or recurse (use a list test, any/all, or a step before deciding)",
            )
            return None
        unknown = _unknown_variable(strip(text))
        if unknown is not None:
            self.problem(
                path,
                f"unknown variable ${unknown}: a decision table's jq sees only $input "
                "(the input document) and the variables it binds itself",
            )
            return None
        variables = ("input",) if "input" in compiled.variables else ()
        return Expression(text, compiled.program, variables)

    def mappings(self, value: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
        if value is None:
            self.problem([], f"the table has no {key!r}")
            return []
        if not isinstance(value, list) or not value:
            self.problem([key], f"{key!r} must be a non-empty list")
            return []
        items: list[tuple[int, dict[str, Any]]] = []
        for index, item in enumerate(value):
            if isinstance(item, dict):
                items.append((index, item))
            else:
                self.problem([key, index], f"each item of {key!r} must be a mapping")
        return items

    def names(self, item: dict[str, Any], path: Location, seen: dict[str, int]) -> str:
        name = item.get("name")
        if not isinstance(name, str) or not name:
            self.problem(path, "expected a 'name' (a non-empty string)")
            return ""
        if name in seen:
            self.problem([*path, "name"], f"the name {name!r} is already used (item {seen[name]})")
        seen.setdefault(name, int(path[-1]))
        return name

    def inputs(self, value: Any) -> list[tuple[InputColumn, Location]] | None:
        columns: list[tuple[InputColumn, Location]] = []
        seen: dict[str, int] = {}
        ok = value is not None
        for index, item in self.mappings(value, "inputs"):
            path: Location = ["inputs", index]
            self.unknown(item, path, ("name", "expression", "description"))
            name = self.names(item, path, seen)
            expression = self.compile(item.get("expression"), [*path, "expression"])
            if expression is None or not name:
                ok = False
                continue
            columns.append((InputColumn(name, expression), path))
        return columns if ok and columns else None

    def outputs(
        self, value: Any, policy: HitPolicy | None, aggregation: Aggregation | None
    ) -> tuple[OutputColumn, ...] | None:
        columns: list[OutputColumn] = []
        seen: dict[str, int] = {}
        for index, item in self.mappings(value, "outputs"):
            path: Location = ["outputs", index]
            self.unknown(item, path, ("name", "values", "description"))
            name = self.names(item, path, seen)
            values = item.get("values")
            if values is not None and (not isinstance(values, list) or not values):
                self.problem([*path, "values"], "'values' must be a non-empty list")
                values = None
            columns.append(OutputColumn(name, None if values is None else tuple(values)))
        if not columns:
            return None
        if policy is HitPolicy.PRIORITY and all(c.values is None for c in columns):
            self.problem(
                ["outputs"],
                "PRIORITY needs the allowed 'values' of its outputs, listed from the highest "
                "priority to the lowest",
            )
        if aggregation is not None and len(columns) != 1:
            self.problem(
                ["aggregation"],
                f"{aggregation.value} aggregates a single output; the table has {len(columns)}",
            )
        return tuple(columns)

    def unknown(self, item: dict[str, Any], path: Location, known: tuple[str, ...]) -> None:
        for key in item:
            if key not in known:
                self.problem([*path, key], f"unknown key {key!r}; expected {', '.join(known)}")

    # --- rules -----------------------------------------------------------------------------

    def rules(
        self,
        value: Any,
        inputs: list[tuple[InputColumn, Location]] | None,
        outputs: tuple[OutputColumn, ...] | None,
        policy: HitPolicy | None,
        aggregation: Aggregation | None,
    ) -> list[tuple[Rule, Location]]:
        rules: list[tuple[Rule, Location]] = []
        ids: dict[str, int] = {}
        for index, item in self.mappings(value, "rules"):
            path: Location = ["rules", index]
            self.unknown(item, path, ("id", "description", "when", "then"))
            rule_id = item.get("id", f"rule-{index + 1}")
            if not isinstance(rule_id, str) or not rule_id:
                self.problem([*path, "id"], "'id' must be a non-empty string")
                rule_id = f"rule-{index + 1}"
            if rule_id in ids:
                self.problem(
                    [*path, "id"], f"the rule id {rule_id!r} is already used by rule {ids[rule_id]}"
                )
            ids.setdefault(rule_id, index + 1)
            description = self.text(item, [*path, "description"])
            cells = self.cells(item.get("when"), path, inputs)
            values = self.values(item.get("then"), path, outputs, aggregation)
            if cells is not None and values is not None:
                rules.append((Rule(rule_id, cells, values, description), path))
        return rules

    def row(
        self, value: Any, path: Location, key: str, width: int | None, what: str
    ) -> list[Any] | None:
        column = "input" if key == "when" else "output"
        if value is None:
            self.problem(
                path,
                f"the rule has no {key!r} (one {what} per {column})",
            )
            return None
        if not isinstance(value, list):
            self.problem([*path, key], f"{key!r} must be a list with one {what} per column")
            return None
        if width is not None and len(value) != width:
            self.problem(
                [*path, key],
                f"{key!r} has {len(value)} {what}{'s' if len(value) != 1 else ''} but the table "
                f"has {width} {column}{'s' if width != 1 else ''}",
            )
            return None
        return value

    def cells(
        self, value: Any, path: Location, inputs: list[tuple[InputColumn, Location]] | None
    ) -> tuple[Cell, ...] | None:
        row = self.row(value, path, "when", None if inputs is None else len(inputs), "test")
        if row is None:
            return None
        cells: list[Cell] = []
        ok = True
        for index, raw in enumerate(row):
            where: Location = [*path, "when", index]
            try:
                test = from_cell(raw)
            except UnaryTestSyntaxError as exc:
                self.problem(
                    where,
                    f"invalid test {raw!r}: {exc.message}",
                    exc.offset,
                    raw if isinstance(raw, str) else "",
                )
                ok = False
                continue
            expression = None
            if test.kind == "jq":
                expression = self.compile(test.expression, where)
                ok = ok and expression is not None
            cells.append(Cell(test, expression))
        return tuple(cells) if ok and inputs is not None else None

    def values(
        self,
        value: Any,
        path: Location,
        outputs: tuple[OutputColumn, ...] | None,
        aggregation: Aggregation | None,
    ) -> tuple[OutputCell, ...] | None:
        row = self.row(value, path, "then", None if outputs is None else len(outputs), "value")
        if row is None:
            return None
        cells: list[OutputCell] = []
        ok = True
        # Without valid output columns the values are still checked on their own.
        columns = outputs or tuple(OutputColumn(str(index)) for index in range(len(row)))
        for index, (raw, column) in enumerate(zip(row, columns, strict=True)):
            where: Location = [*path, "then", index]
            if is_expression(raw):
                expression = self.compile(raw, where)
                ok = ok and expression is not None
                cells.append(OutputCell(expression=expression))
                continue
            if isinstance(raw, float) and not math.isfinite(raw):
                self.problem(where, f"{raw} is not a JSON number")
                ok = False
            if column.values is not None and column.rank(raw) is None:
                self.problem(
                    where,
                    f"{raw!r} is not one of the values of {column.name!r}: {list(column.values)}",
                )
                ok = False
            if aggregation in (Aggregation.SUM, Aggregation.MIN, Aggregation.MAX) and (
                not isinstance(raw, (int, float)) or isinstance(raw, bool)
            ):
                self.problem(where, f"{aggregation.value} needs numbers; {raw!r} is not one")
                ok = False
            cells.append(OutputCell(value=raw))
        return tuple(cells) if ok and outputs is not None else None

    # --- static hit-policy checks ----------------------------------------------------------

    def check_overlaps(self, rules: list[tuple[Rule, Location]], policy: HitPolicy | None) -> None:
        if policy is None:
            return
        for later, earlier in conflicts([rule for rule, _ in rules], policy):
            rule, path = rules[later]
            line = self.where(list(rules[earlier][1]))[0]
            first = f"rule {rule.id!r} can match the same input as rule {rules[earlier][0].id!r}"
            if policy is HitPolicy.UNIQUE:
                self.problem(
                    path,
                    f"{first} (line {line}): UNIQUE allows one matching rule; make their tests "
                    "exclusive or use FIRST, PRIORITY or COLLECT",
                )
            else:
                self.problem(
                    path,
                    f"{first} (line {line}) with different outputs: ANY needs overlapping rules "
                    "to agree",
                )


def _unknown_variable(body: str) -> str | None:
    """The first variable ``body`` uses without binding it, other than ``$input``."""
    try:
        jq.compile(f"null as $input | {body}")
    except ValueError as exc:
        found = _UNDEFINED.search(str(exc))
        return found.group(1) if found else "?"
    return None


def _jq_syntax(body: str) -> str:
    """jq's complaint about ``body`` alone, located in it (not in the wrapped program)."""
    try:
        jq.compile(body)
    except ValueError as exc:
        first = str(exc).replace("jq: error: ", "").strip().splitlines()[0]
        where = _JQ_WHERE.match(first)
        if where:
            what, line, column = where.groups()
            at = f"column {column}" if line == "1" else f"line {line}, column {column}"
            return f"{what} (at {at} of {body!r})"
        return first.rstrip(":")
    return f"{body!r} cannot be used here"
