"""Decision tables: rules that map an input document to outputs under a DMN hit policy.

A table has input columns (each a jq expression over the input document), output columns and
rules. A rule has one unary test per input column (see :mod:`opsloom.decisions.unary`) and one
value per output column; it *matches* when every test accepts its column's value. The hit
policy says what the matching rules produce:

- ``UNIQUE``: at most one rule may match; its outputs (``None`` when none matches). Two
  matching rules are an error, never a silent pick.
- ``FIRST``: the first matching rule in table order.
- ``PRIORITY``: the matching rule whose outputs come first in the output columns' ``values``
  lists (compared column by column, in column order); earlier rules win ties.
- ``ANY``: several rules may match if they all give the same outputs; different outputs are an
  error.
- ``COLLECT``: the outputs of every matching rule, in table order; with an ``aggregation``
  (``SUM``, ``MIN``, ``MAX``, ``COUNT``) of its single output column, a number instead
  (``COUNT`` of nothing is 0; ``SUM``, ``MIN`` and ``MAX`` of nothing are ``None``).

Tables are loaded and validated by :mod:`opsloom.decisions.loader`; :func:`evaluate` runs
one. jq programs are compiled once, when the table is loaded, and cannot see the process
environment (``$ENV`` and ``env`` are empty objects).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from opsloom.decisions.unary import UnaryTest, same
from opsloom.errors import OpsloomError
from opsloom.expr.evaluator import ExpressionError, run_program

if TYPE_CHECKING:
    from opsloom.expr.diagnostic import Problem


class HitPolicy(StrEnum):
    """How the matching rules of a table become its result."""

    UNIQUE = "UNIQUE"
    FIRST = "FIRST"
    PRIORITY = "PRIORITY"
    ANY = "ANY"
    COLLECT = "COLLECT"


class Aggregation(StrEnum):
    """What a ``COLLECT`` table computes from the values of its single output column."""

    SUM = "SUM"
    MIN = "MIN"
    MAX = "MAX"
    COUNT = "COUNT"


class DecisionError(OpsloomError):
    """A decision table cannot give a result for an input (or cannot be used at all).

    Attributes:
        table: name of the table.
        rules: ids of the rules involved, if any.
        input: the input document that was being decided, if any.
    """

    code = "decision_error"

    def __init__(
        self,
        message: str,
        *,
        table: str = "",
        rules: tuple[str, ...] = (),
        input: Any = None,
    ) -> None:
        super().__init__(message)
        self.table = table
        self.rules = rules
        self.input = input


class InvalidDecisionTableError(DecisionError):
    """A decision table cannot be loaded; ``problems`` lists every finding with its position."""

    code = "invalid_decision_table"

    def __init__(self, problems: list[Problem], table: str = "") -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"invalid decision table ({count} problem{'s' if count != 1 else ''})"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]), table=table)


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled jq expression; ``$input`` is the decision's input document."""

    text: str
    program: Any  # the jq binding's program object (the binding has no type information)
    variables: tuple[str, ...] = ()

    def run(self, value: Any, document: Any) -> Any:
        """The first result of the expression over ``value`` (``None`` when it yields none).

        Raises:
            ExpressionError: jq failed.
        """
        args = {name: document for name in self.variables}
        return run_program(self.program, value, args)


@dataclass(frozen=True, slots=True)
class InputColumn:
    """An input of the table: ``name`` and the jq ``expression`` that extracts its value."""

    name: str
    expression: Expression


@dataclass(frozen=True, slots=True)
class OutputColumn:
    """An output of the table; ``values`` lists the allowed values, in priority order."""

    name: str
    values: tuple[Any, ...] | None = None

    def rank(self, value: Any) -> int | None:
        """Position of ``value`` in ``values`` (``None`` when absent or when there is no list)."""
        for index, allowed in enumerate(self.values or ()):
            if equal(allowed, value):
                return index
        return None


@dataclass(frozen=True, slots=True)
class Cell:
    """A rule's test for one input column (jq tests carry their compiled program)."""

    test: UnaryTest
    expression: Expression | None = None


@dataclass(frozen=True, slots=True)
class OutputCell:
    """A rule's value for one output column: a JSON literal or a jq expression."""

    value: Any = None
    expression: Expression | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table."""

    id: str
    cells: tuple[Cell, ...]
    outputs: tuple[OutputCell, ...]
    description: str = ""


@dataclass(frozen=True)
class DecisionTable:
    """A loaded, validated decision table (see :mod:`opsloom.decisions.loader`)."""

    name: str
    version: str
    hit_policy: HitPolicy
    inputs: tuple[InputColumn, ...]
    outputs: tuple[OutputColumn, ...]
    rules: tuple[Rule, ...]
    aggregation: Aggregation | None = None
    description: str = ""
    source: str = "<string>"

    @property
    def reference(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of evaluating a table for one input.

    Attributes:
        table: the table's name.
        version: the table's version.
        hit_policy: the table's hit policy.
        matched: ids of the rules that matched, in table order (``FIRST`` stops at the first).
        selected: ids of the rules whose outputs make the result (``PRIORITY``: the winner).
        output: ``UNIQUE``/``FIRST``/``PRIORITY``/``ANY``: an object of output values, or
            ``None`` when no rule matched; ``COLLECT``: a list of such objects, or a number
            with an aggregation.
    """

    table: str
    version: str
    hit_policy: HitPolicy
    matched: tuple[str, ...]
    selected: tuple[str, ...]
    output: Any

    def to_dict(self) -> dict[str, Any]:
        """The decision as a JSON object (what ``decide`` returns to workflows)."""
        return {
            "table": self.table,
            "version": self.version,
            "hitPolicy": str(self.hit_policy),
            "matched": list(self.matched),
            "selected": list(self.selected),
            "output": self.output,
        }


def equal(a: Any, b: Any) -> bool:
    """JSON equality, deep: ``1 == 1.0``, ``true != 1``, objects regardless of key order."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return same(a, b)


def evaluate(table: DecisionTable, input: Any) -> Decision:
    """Decide ``input`` (a JSON document) with ``table``.

    Raises:
        DecisionError: the input is not JSON, a jq expression failed, or the matching rules
            violate the hit policy (``UNIQUE`` with several matches, ``ANY`` with different
            outputs, an output value outside its column's ``values``, a non-number to
            aggregate); the error names the table, the rules involved and the input.
    """
    try:
        json.dumps(input, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DecisionError(
            f"decision table {table.reference}: the input is not a JSON document: {exc}",
            table=table.name,
        ) from None
    values = [_input_value(table, column, input) for column in table.inputs]
    matched: list[Rule] = []
    for rule in table.rules:
        if _matches(table, rule, values, input):
            matched.append(rule)
            if table.hit_policy is HitPolicy.FIRST:
                break
    outputs = [_outputs(table, rule, input) for rule in matched]
    ids = tuple(rule.id for rule in matched)
    selected, output = _apply_policy(table, matched, outputs, input)
    return Decision(table.name, table.version, table.hit_policy, ids, selected, output)


def _apply_policy(
    table: DecisionTable, matched: list[Rule], outputs: list[dict[str, Any]], input: Any
) -> tuple[tuple[str, ...], Any]:
    ids = tuple(rule.id for rule in matched)
    policy = table.hit_policy
    if policy is HitPolicy.COLLECT:
        if table.aggregation is None:
            return ids, outputs
        return ids, _aggregate(table, matched, outputs, input)
    if not matched:
        return (), None
    if policy is HitPolicy.UNIQUE and len(matched) > 1:
        raise _violation(table, ids, input, "matched several rules; UNIQUE allows at most one")
    if policy is HitPolicy.ANY:
        for rule, output in zip(matched[1:], outputs[1:], strict=True):
            if not equal(output, outputs[0]):
                raise _violation(
                    table,
                    (matched[0].id, rule.id),
                    input,
                    f"matched rules with different outputs ({_show(outputs[0])} and "
                    f"{_show(output)}); ANY allows several matches only when they agree",
                )
        return ids, outputs[0]
    if policy is HitPolicy.PRIORITY:
        ranked = [(_priority(table, output), index) for index, output in enumerate(outputs)]
        best = min(ranked)[1]
        return (matched[best].id,), outputs[best]
    return (matched[0].id,), outputs[0]


def _priority(table: DecisionTable, output: dict[str, Any]) -> tuple[int, ...]:
    ranks: list[int] = []
    for column in table.outputs:
        if column.values is not None:
            rank = column.rank(output[column.name])
            ranks.append(len(column.values) if rank is None else rank)
    return tuple(ranks)


def _aggregate(
    table: DecisionTable, matched: list[Rule], outputs: list[dict[str, Any]], input: Any
) -> Any:
    column = table.outputs[0].name
    numbers: list[int | float] = []
    for rule, output in zip(matched, outputs, strict=True):
        value = output[column]
        if table.aggregation is not Aggregation.COUNT and (
            not isinstance(value, (int, float)) or isinstance(value, bool)
        ):
            raise _violation(
                table,
                (rule.id,),
                input,
                f"gave {column} = {_show(value)}, which {table.aggregation} cannot aggregate "
                "(it needs numbers)",
            )
        numbers.append(value)
    if table.aggregation is Aggregation.COUNT:
        return len(numbers)
    if not numbers:
        return None
    if table.aggregation is Aggregation.SUM:
        return sum(numbers)
    if table.aggregation is Aggregation.MIN:
        return min(numbers)
    return max(numbers)


def _input_value(table: DecisionTable, column: InputColumn, input: Any) -> Any:
    try:
        return column.expression.run(input, input)
    except ExpressionError as exc:
        raise DecisionError(
            f"decision table {table.reference}: input {column.name!r} "
            f"({column.expression.text}) failed: {exc.detail}; input: {_show(input)}",
            table=table.name,
            input=input,
        ) from None


def _matches(table: DecisionTable, rule: Rule, values: list[Any], input: Any) -> bool:
    for column, cell, value in zip(table.inputs, rule.cells, values, strict=True):
        if cell.expression is None:
            if not cell.test.matches(value):
                return False
            continue
        try:
            result = cell.expression.run(value, input)
        except ExpressionError as exc:
            raise DecisionError(
                f"decision table {table.reference}: the test {cell.test.text!r} of rule "
                f"{rule.id!r} on input {column.name!r} = {_show(value)} failed: {exc.detail}; "
                f"input: {_show(input)}",
                table=table.name,
                rules=(rule.id,),
                input=input,
            ) from None
        if result is None or result is False:
            return False
    return True


def _outputs(table: DecisionTable, rule: Rule, input: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for column, cell in zip(table.outputs, rule.outputs, strict=True):
        value = cell.value
        if cell.expression is not None:
            try:
                value = cell.expression.run(input, input)
            except ExpressionError as exc:
                raise DecisionError(
                    f"decision table {table.reference}: output {column.name!r} of rule "
                    f"{rule.id!r} ({cell.expression.text}) failed: {exc.detail}; "
                    f"input: {_show(input)}",
                    table=table.name,
                    rules=(rule.id,),
                    input=input,
                ) from None
            if column.values is not None and column.rank(value) is None:
                raise _violation(
                    table,
                    (rule.id,),
                    input,
                    f"gave {column.name} = {_show(value)}, which is not one of its values "
                    f"{_show(list(column.values))}",
                )
        result[column.name] = value
    return result


def _violation(
    table: DecisionTable, rules: tuple[str, ...], input: Any, what: str
) -> DecisionError:
    names = ", ".join(repr(r) for r in rules)
    noun = "rule" if len(rules) == 1 else "rules"
    return DecisionError(
        f"decision table {table.reference} ({table.hit_policy}): {what}: {noun} {names}; "
        f"input: {_show(input)}",
        table=table.name,
        rules=rules,
        input=input,
    )


def _show(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
