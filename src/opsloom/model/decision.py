"""Decision tables: rules that map an input document to outputs under a DMN hit policy.

A table has input columns (each a jq expression over the input document), output columns and
rules. A rule has one unary test per input column (see :mod:`opsloom.model.unary`) and one
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

These are the types of a table and of its result. Tables are loaded and validated by
:mod:`opsloom.decisions.loader`; :func:`opsloom.decisions.evaluation.evaluate` runs one. jq
programs are compiled once, when the table is loaded, and cannot see the process environment
(``$ENV`` and ``env`` are empty objects).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from opsloom.errors import OpsloomError
from opsloom.expr.evaluator import run_program
from opsloom.model.unary import UnaryTest, same

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
